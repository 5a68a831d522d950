package imageio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// slow converts img with the At-based oracle.
func slow(img image.Image) *Image {
	b := img.Bounds()
	im := newImage(b.Dx(), b.Dy())
	n := im.W * im.H
	fromImageSlow(img, im.Pix[:n], im.Pix[n:2*n], im.Pix[2*n:])
	return im
}

func randBytes(r *rand.Rand, p []uint8) {
	for i := range p {
		p[i] = uint8(r.IntN(256))
	}
}

// testImages returns one image of every type fromImage has a fast path for,
// with random contents and awkward sizes.
func testImages(r *rand.Rand) map[string]image.Image {
	rect := image.Rect(0, 0, 13, 7)
	m := map[string]image.Image{}
	g := image.NewGray(rect)
	randBytes(r, g.Pix)
	m["gray"] = g
	g16 := image.NewGray16(rect)
	randBytes(r, g16.Pix)
	m["gray16"] = g16
	nrgba := image.NewNRGBA(rect)
	randBytes(r, nrgba.Pix)
	m["nrgba"] = nrgba
	rgba := image.NewRGBA(rect)
	for i := 0; i < len(rgba.Pix); i += 4 {
		a := uint8(r.IntN(256))
		if i%8 == 0 {
			a = 255
		}
		for k := range 3 {
			rgba.Pix[i+k] = uint8(r.IntN(int(a) + 1)) // valid premultiplied colours
		}
		rgba.Pix[i+3] = a
	}
	m["rgba"] = rgba
	nrgba64 := image.NewNRGBA64(rect)
	randBytes(r, nrgba64.Pix)
	m["nrgba64"] = nrgba64
	rgba64 := image.NewRGBA64(rect)
	for y := range rect.Dy() {
		for x := range rect.Dx() {
			a := uint16(r.IntN(65536))
			switch x % 3 {
			case 0:
				a = 0xffff
			case 1:
				a = uint16(r.IntN(3)) // includes 0
			}
			c := color.RGBA64{uint16(r.IntN(int(a) + 1)), uint16(r.IntN(int(a) + 1)), uint16(r.IntN(int(a) + 1)), a}
			rgba64.SetRGBA64(x, y, c)
		}
	}
	m["rgba64"] = rgba64
	for _, ratio := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		ycc := image.NewYCbCr(rect, ratio)
		randBytes(r, ycc.Y)
		randBytes(r, ycc.Cb)
		randBytes(r, ycc.Cr)
		m["ycbcr"+ratio.String()] = ycc
	}
	cmyk := image.NewCMYK(rect)
	randBytes(r, cmyk.Pix)
	m["cmyk"] = cmyk
	pal := color.Palette{color.RGBA{10, 20, 30, 255}, color.NRGBA{200, 100, 50, 0}, color.NRGBA{1, 2, 3, 128}, color.RGBA{40, 20, 10, 128}, color.Gray16{0x1234}}
	p := image.NewPaletted(rect, pal)
	for i := range p.Pix {
		p.Pix[i] = uint8(r.IntN(len(pal)))
	}
	m["paletted"] = p
	a16 := image.NewAlpha16(rect)
	randBytes(r, a16.Pix)
	m["alpha16 (slow path)"] = a16
	return m
}

func TestFastPathsMatchOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for name, img := range testImages(r) {
		check := func(what string, img image.Image) {
			got, want := fromImage(img), slow(img)
			if got.W != want.W || got.H != want.H || !bytes.Equal(got.Pix, want.Pix) {
				t.Errorf("%s%s: fast path differs from the At-based conversion", name, what)
			}
		}
		check("", img)
		// A sub-image whose bounds do not start at the origin.
		if s, ok := img.(interface {
			SubImage(image.Rectangle) image.Image
		}); ok {
			check(" sub-image", s.SubImage(image.Rect(3, 1, 12, 6)))
		}
	}
}

func TestColourModels(t *testing.T) {
	// Gray copies to three channels.
	g := image.NewGray(image.Rect(0, 0, 2, 1))
	g.Pix = []uint8{7, 250}
	if got := fromImage(g).Pix; !bytes.Equal(got, []uint8{7, 250, 7, 250, 7, 250}) {
		t.Errorf("gray: %v", got)
	}
	// 16 bits round to nearest (v/257): 0x7f7f = 127*257 is 127, 0x8080 is
	// 128, 0x807f is 127.996 -> 128, 0x8100 is 128.498 -> 128, 0x8101 is
	// 128.502 -> 129.
	g16 := image.NewGray16(image.Rect(0, 0, 5, 1))
	for x, v := range []uint16{0x7f7f, 0x8080, 0x807f, 0x8100, 0x8101} {
		g16.SetGray16(x, 0, color.Gray16{v})
	}
	if got := fromImage(g16).Pix[:5]; !bytes.Equal(got, []uint8{127, 128, 128, 128, 129}) {
		t.Errorf("gray16: %v", got)
	}
	// Alpha is dropped, keeping the straight colour.
	n := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	n.Pix = []uint8{200, 100, 50, 3}
	if got := fromImage(n).Pix; !bytes.Equal(got, []uint8{200, 100, 50}) {
		t.Errorf("nrgba: %v", got)
	}
	// Premultiplied colours are un-premultiplied as color.NRGBAModel does.
	rg := image.NewRGBA(image.Rect(0, 0, 1, 1))
	rg.Pix = []uint8{64, 32, 0, 128}
	want := color.NRGBAModel.Convert(color.RGBA{64, 32, 0, 128}).(color.NRGBA)
	if got := fromImage(rg).Pix; !bytes.Equal(got, []uint8{want.R, want.G, want.B}) {
		t.Errorf("rgba: %v, want %v", got, want)
	}
	// CMYK converts with color.CMYKToRGB.
	ck := image.NewCMYK(image.Rect(0, 0, 1, 1))
	ck.Pix = []uint8{10, 200, 30, 40}
	r, gg, b := color.CMYKToRGB(10, 200, 30, 40)
	im := newImage(1, 1)
	fromCMYK(ck, im.Pix[0:1], im.Pix[1:2], im.Pix[2:3])
	if !bytes.Equal(im.Pix, []uint8{r, gg, b}) || !bytes.Equal(fromImage(ck).Pix, im.Pix) {
		t.Errorf("cmyk: %v, want %v", im.Pix, []uint8{r, gg, b})
	}
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustDecode(t *testing.T, data []byte, name string) *Image {
	t.Helper()
	im, err := Decode(bytes.NewReader(data), name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return im
}

// TestDecodeFiles round-trips every colour model through the file formats:
// PNG keeps gray, gray16, 16-bit RGB(A), NRGBA and paletted images, GIF is
// paletted, JPEG is YCbCr (lossy, so approximately).
func TestDecodeFiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	imgs := testImages(r)
	for _, name := range []string{"gray", "gray16", "nrgba", "nrgba64", "paletted"} {
		img := imgs[name]
		got := mustDecode(t, encodePNG(t, img), name+".png")
		if want := slow(img); !bytes.Equal(got.Pix, want.Pix) || got.W != 13 || got.H != 7 {
			t.Errorf("%s.png: decoded pixels differ", name)
		}
	}
	// An opaque RGBA64 is stored as 16-bit RGB and decoded as *image.RGBA64.
	rgba64 := image.NewRGBA64(image.Rect(0, 0, 4, 3))
	for i := range rgba64.Pix {
		rgba64.Pix[i] = uint8(r.IntN(256))
		if i%8 >= 6 {
			rgba64.Pix[i] = 0xff
		}
	}
	if got, want := mustDecode(t, encodePNG(t, rgba64), "rgb16.png"), slow(rgba64); !bytes.Equal(got.Pix, want.Pix) {
		t.Error("rgb16.png: decoded pixels differ")
	}

	var buf bytes.Buffer
	pal := imgs["paletted"].(*image.Paletted)
	gp := image.NewPaletted(pal.Rect, color.Palette{color.RGBA{10, 20, 30, 255}, color.RGBA{200, 100, 50, 255}, color.RGBA{0, 0, 0, 0}})
	for i := range gp.Pix {
		gp.Pix[i] = pal.Pix[i] % 3
	}
	if err := gif.Encode(&buf, gp, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := mustDecode(t, buf.Bytes(), "a.gif"), slow(gp); !bytes.Equal(got.Pix, want.Pix) {
		t.Error("a.gif: decoded pixels differ")
	}

	// JPEG: a smooth RGB image survives quality 100 to within a few levels.
	src := image.NewNRGBA(image.Rect(0, 0, 33, 17))
	for y := range 17 {
		for x := range 33 {
			src.SetNRGBA(x, y, color.NRGBA{uint8(7 * x), uint8(13 * y), uint8(200 - 3*x - 2*y), 255})
		}
	}
	buf.Reset()
	if err := jpeg.Encode(&buf, src, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	got, want := mustDecode(t, buf.Bytes(), "a.jpg"), fromImage(src)
	if got.W != 33 || got.H != 17 {
		t.Fatalf("a.jpg: %dx%d", got.W, got.H)
	}
	var maxd int
	for i := range got.Pix {
		maxd = max(maxd, int(got.Pix[i])-int(want.Pix[i]), int(want.Pix[i])-int(got.Pix[i]))
	}
	if maxd > 12 {
		t.Errorf("a.jpg: pixels differ by up to %d", maxd)
	}
	// And grayscale JPEG (decoded as *image.Gray).
	gray := imgs["gray"].(*image.Gray)
	buf.Reset()
	if err := jpeg.Encode(&buf, gray, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	gi := mustDecode(t, buf.Bytes(), "g.jpg")
	n := gi.W * gi.H
	if !bytes.Equal(gi.Pix[:n], gi.Pix[n:2*n]) || !bytes.Equal(gi.Pix[:n], gi.Pix[2*n:]) {
		t.Error("g.jpg: channels of a gray JPEG differ")
	}
}

// pngChunk is a PNG chunk with its length and CRC.
func pngChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	return b.Bytes()
}

// hugePNG is a 57-byte PNG header claiming w x h RGB pixels, with no data.
func hugePNG(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, pngChunk("IHDR", ihdr)...)
	b = append(b, pngChunk("IDAT", nil)...)
	return append(b, pngChunk("IEND", nil)...)
}

func TestDecodeErrors(t *testing.T) {
	small := image.NewNRGBA(image.Rect(0, 0, 5, 4))
	for i := range small.Pix {
		small.Pix[i] = uint8(i * 37)
	}
	good := encodePNG(t, small)
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, small, nil); err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-20] ^= 0xff // inside IDAT: checksum or zlib error
	zeroGIF := []byte("GIF89a\x00\x00\x00\x00\x00\x00\x00;")
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty.png", nil, "empty file"},
		{"text.png", []byte("hello, this is not an image at all"), "supported formats: PNG, JPEG, GIF"},
		{"bmp.bmp", []byte("BM\x3e\x00\x00\x00\x00\x00\x00\x00\x3e\x00\x00\x00"), "not a recognised image file"},
		{"corrupt.png", corrupt, "corrupt PNG file"},
		{"trunc.png", good[:len(good)-30], "PNG"},
		{"trunc.jpg", jb.Bytes()[:jb.Len()/2], "JPEG"},
		{"huge.png", hugePNG(100000, 100000), "10000000000 pixels is larger than the limit of 268435456"},
		{"zero.gif", zeroGIF, "zero size (0x0)"},
	} {
		im, err := Decode(bytes.NewReader(c.data), c.name)
		if err == nil {
			t.Errorf("%s: decoded a %dx%d image", c.name, im.W, im.H)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "imageio: "+c.name+": ") || !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q does not say %q", c.name, msg, c.want)
		}
	}
	// Every truncation of a valid file is an error, never a panic.
	for _, data := range [][]byte{good, jb.Bytes()} {
		for n := range len(data) {
			if _, err := Decode(bytes.NewReader(data[:n]), "t"); err == nil {
				t.Fatalf("a %d-byte prefix of a %d-byte file decoded", n, len(data))
			}
		}
	}
	// Reader errors are reported as such.
	if _, err := Decode(errReader{}, "r"); err == nil || !strings.Contains(err.Error(), "imageio: r: reading: boom") {
		t.Errorf("reader error: %v", err)
	}
	if _, err := decode(bytes.NewReader(good), "limit", 19); err == nil || !strings.Contains(err.Error(), "5x4 = 20 pixels is larger than the limit of 19") {
		t.Errorf("limit: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(5, 6))
	im := newImage(9, 5)
	randBytes(r, im.Pix)
	path := filepath.Join(dir, "out.png")
	if err := im.Save(path); err != nil {
		t.Fatal(err)
	}
	// Overwriting works and leaves no temporary files behind.
	if err := im.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.W != 9 || got.H != 5 || !bytes.Equal(got.Pix, im.Pix) {
		t.Fatal("Save + Load changed the image")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d files after Save", len(entries))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("saved with mode %v", st.Mode())
	}
	var buf bytes.Buffer
	if err := im.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	if back := mustDecode(t, buf.Bytes(), "buf"); !bytes.Equal(back.Pix, im.Pix) {
		t.Fatal("Encode + Decode changed the image")
	}
	nr := im.ToNRGBA()
	if c := nr.NRGBAAt(4, 3); c != (color.NRGBA{im.Pix[3*9+4], im.Pix[45+3*9+4], im.Pix[90+3*9+4], 255}) {
		t.Fatalf("ToNRGBA pixel (4,3) = %v", c)
	}

	missing := filepath.Join(dir, "nope", "x.png")
	if err := im.Save(missing); err == nil || !strings.HasPrefix(err.Error(), "imageio: "+missing+": ") {
		t.Errorf("Save into a missing directory: %v", err)
	}
	if err := (&Image{W: 2, H: 2, Pix: make([]uint8, 5)}).Save(filepath.Join(dir, "bad.png")); err == nil {
		t.Error("saved an image with the wrong number of values")
	}
	if err := (&Image{}).Encode(&buf); err == nil {
		t.Error("encoded a 0x0 image")
	}
	if _, err := Load(missing); err == nil || err.Error() != "imageio: "+missing+": no such file or directory" {
		t.Errorf("Load of a missing file: %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.HasPrefix(err.Error(), "imageio: "+dir+": ") {
		t.Errorf("Load of a directory: %v", err)
	}
}

func TestFloatConversion(t *testing.T) {
	im := &Image{W: 2, H: 1, Pix: []uint8{0, 1, 127, 128, 254, 255}}
	f := im.Float32()
	if f[0] != 0 || f[5] != 1 || math.Abs(float64(f[2])-127.0/255) > 1e-7 {
		t.Fatalf("Float32 = %v", f)
	}
	if back := FromPlanarFloat(2, 1, f); !bytes.Equal(back.Pix, im.Pix) {
		t.Fatalf("FromPlanarFloat(Float32()) = %v", back.Pix)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	got := FromPlanarFloat(3, 1, []float32{-0.2, 1.5, 0.5, nan, inf, -inf, 0.51 / 255, 0.49 / 255, 1.51 / 255})
	if want := []uint8{0, 255, 128, 0, 255, 0, 1, 0, 2}; !bytes.Equal(got.Pix, want) {
		t.Fatalf("FromPlanarFloat = %v, want %v", got.Pix, want)
	}
}

func TestCrop(t *testing.T) {
	im := newImage(7, 5)
	for i := range im.Pix {
		im.Pix[i] = uint8(i)
	}
	c := im.Crop(2, 1, 3, 2)
	want := []uint8{9, 10, 11, 16, 17, 18, 44, 45, 46, 51, 52, 53, 79, 80, 81, 86, 87, 88}
	if c.W != 3 || c.H != 2 || !bytes.Equal(c.Pix, want) {
		t.Fatalf("Crop = %dx%d %v", c.W, c.H, c.Pix)
	}
	c.Pix[0] = 99
	if im.Pix[9] != 9 {
		t.Fatal("Crop does not copy")
	}
	m := im.ModCrop(2)
	if m.W != 6 || m.H != 4 || !bytes.Equal(m.Pix, im.Crop(0, 0, 6, 4).Pix) || m.Pix[6] != 7 {
		t.Fatalf("ModCrop(2) = %dx%d", m.W, m.H)
	}
	if m := im.ModCrop(8); m.W != 0 || m.H != 0 || len(m.Pix) != 0 {
		t.Fatalf("ModCrop(8) = %dx%d", m.W, m.H)
	}
	for _, f := range []func(){func() { im.Crop(5, 0, 3, 1) }, func() { im.Crop(-1, 0, 1, 1) }, func() { im.ModCrop(0) }} {
		func() {
			defer func() {
				if p := recover(); p == nil || !strings.HasPrefix(p.(string), "imageio: ") {
					t.Errorf("panic %v", p)
				}
			}()
			f()
		}()
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.JPG", "a.png", "c.jpeg", "d.Gif", "e.txt", "f.PnG", "png"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		if filepath.Dir(p) != dir {
			t.Errorf("path %s is not in %s", p, dir)
		}
		names = append(names, filepath.Base(p))
	}
	if s := strings.Join(names, " "); s != "a.png b.JPG c.jpeg d.Gif f.PnG" {
		t.Errorf("List = %s", s)
	}
	empty := filepath.Join(dir, "sub.png")
	if _, err := List(empty); err == nil || err.Error() != "imageio: "+empty+": no images (looked for .png, .jpg, .jpeg, .gif)" {
		t.Errorf("empty directory: %v", err)
	}
	if _, err := List(filepath.Join(dir, "missing")); err == nil || !strings.HasPrefix(err.Error(), "imageio: ") {
		t.Errorf("missing directory: %v", err)
	}
	if _, err := List(filepath.Join(dir, "a.png")); err == nil || !strings.HasSuffix(err.Error(), "not a directory") {
		t.Errorf("file as directory: %v", err)
	}
}

// fuzzLimit keeps the fuzzer's images small.
const fuzzLimit = 1 << 18

func FuzzDecode(f *testing.F) {
	img := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 19)
	}
	f.Add(encodePNG(f, img))
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(buf.Bytes()))
	buf.Reset()
	if err := gif.Encode(&buf, img, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(buf.Bytes()))
	f.Add(hugePNG(5000, 5000))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		im, err := decode(bytes.NewReader(data), "fuzz", fuzzLimit)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "imageio: fuzz: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if im.W < 1 || im.H < 1 || im.W*im.H > fuzzLimit || len(im.Pix) != 3*im.W*im.H {
			t.Fatalf("decoded a %dx%d image with %d values", im.W, im.H, len(im.Pix))
		}
		// PNG is lossless: what Encode writes decodes to the same pixels.
		var out bytes.Buffer
		if err := im.Encode(&out); err != nil {
			t.Fatal(err)
		}
		back, err := decode(&out, "again", fuzzLimit)
		if err != nil || !bytes.Equal(back.Pix, im.Pix) {
			t.Fatalf("re-encoded image does not round-trip: %v", err)
		}
	})
}

// TestPictureRegion: a region of an opened picture is the loaded image
// cropped, for each kind of image the decoders return; ReadInfo reads the
// size and format from the header alone.
func TestPictureRegion(t *testing.T) {
	dir := t.TempDir()
	const w, h = 37, 29
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	gray := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			rgba.Set(x, y, color.RGBA{uint8(7 * x), uint8(11 * y), uint8(x * y), 255})
			gray.Set(x, y, color.Gray{uint8(5*x + 3*y)})
		}
	}
	files := map[string]func(*os.File) error{
		"rgba.png": func(f *os.File) error { return png.Encode(f, rgba) },
		"gray.png": func(f *os.File) error { return png.Encode(f, gray) },
		"ycc.jpg":  func(f *os.File) error { return jpeg.Encode(f, rgba, nil) },
	}
	for name, enc := range files {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		info, err := ReadInfo(path)
		if err != nil || info.W != w || info.H != h {
			t.Fatalf("%s: ReadInfo %+v, %v", name, info, err)
		}
		whole, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		pic, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range [][4]int{{0, 0, w, h}, {3, 5, 10, 7}, {w - 1, h - 1, 1, 1}} {
			got, want := pic.Region(r[0], r[1], r[2], r[3]), whole.Crop(r[0], r[1], r[2], r[3])
			if !bytes.Equal(got.Pix, want.Pix) {
				t.Errorf("%s: region %v differs from the loaded image's", name, r)
			}
		}
	}
	bad := filepath.Join(dir, "bad.png")
	os.WriteFile(bad, []byte("not an image"), 0o644)
	if _, err := ReadInfo(bad); err == nil || !strings.Contains(err.Error(), "bad.png") {
		t.Errorf("ReadInfo of garbage: %v", err)
	}
}
