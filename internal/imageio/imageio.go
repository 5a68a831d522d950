// Package imageio loads and saves the images pdmflow works on as planar
// 8-bit RGB: PNG, JPEG and (the first frame of) GIF files in, PNG files out.
//
// Every colour model the standard decoders produce is converted to RGB:
// gray is copied to the three channels; 16-bit samples are rounded to the
// nearest 8-bit value ((v*255 + 32767) / 65535); alpha is dropped, keeping
// the un-premultiplied colour (8-bit premultiplied colours convert as
// color.NRGBAModel does, 16-bit ones as color.NRGBA64Model does and are then
// rounded); YCbCr and CMYK convert with color.YCbCrToRGB and
// color.CMYKToRGB (chroma is upsampled by replication, as image/jpeg
// stores it, not interpolated as libjpeg does).
//
// Decoding never panics on bad input: unreadable, corrupt, truncated,
// empty, oversized (more than MaxPixels) and unsupported files give errors
// of the form "imageio: <name>: ...".
package imageio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif"  // registers the GIF decoder
	_ "image/jpeg" // registers the JPEG decoder
	"image/png"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// MaxPixels is the largest width*height Decode accepts. The size is read
// from the file's header before anything is decoded, so a small file that
// claims a huge size cannot exhaust memory.
const MaxPixels = 1 << 28

// Image is an 8-bit RGB image stored planar, channel-major: Pix holds the
// H x W red plane, then the green plane, then the blue plane (3*H*W bytes;
// pixel (x, y) of channel c is Pix[(c*H+y)*W+x]).
type Image struct {
	W, H int
	Pix  []uint8
}

// newImage returns a black w x h image.
func newImage(w, h int) *Image { return &Image{W: w, H: h, Pix: make([]uint8, 3*w*h)} }

// extensions are the file name extensions List looks for.
var extensions = []string{".png", ".jpg", ".jpeg", ".gif"}

const supported = "supported formats: PNG, JPEG, GIF"

// Load reads and decodes the image file at path.
func Load(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("imageio: %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	return Decode(f, path)
}

// Decode reads a PNG, JPEG or GIF image from r; name (usually the file's
// path) only labels the errors.
func Decode(r io.Reader, name string) (*Image, error) {
	return decode(r, name, MaxPixels)
}

func decode(r io.Reader, name string, maxPixels int64) (*Image, error) {
	img, err := decodeChecked(r, name, maxPixels)
	if err != nil {
		return nil, err
	}
	return fromImage(img), nil
}

// decodeChecked decodes an image with every check of Decode, and returns
// it as the decoder made it.
func decodeChecked(r io.Reader, name string, maxPixels int64) (image.Image, error) {
	// A file is read twice (header, then pixels) instead of into memory:
	// the decoder's image is then all a big file costs.
	var open func() io.Reader
	if f, ok := r.(io.ReadSeeker); ok {
		open = func() io.Reader {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return seekErrReader{err}
			}
			return bufio.NewReaderSize(f, 1<<16)
		}
		if n, err := f.Seek(0, io.SeekEnd); err == nil && n == 0 {
			return nil, fmt.Errorf("imageio: %s: empty file (%s)", name, supported)
		}
	} else {
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("imageio: %s: reading: %w", name, unwrapPath(err))
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("imageio: %s: empty file (%s)", name, supported)
		}
		open = func() io.Reader { return bytes.NewReader(data) }
	}
	cfg, format, err := decodeConfig(open())
	if err != nil {
		return nil, decodeError(name, format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("imageio: %s: %s image has zero size (%dx%d)", name, strings.ToUpper(format), cfg.Width, cfg.Height)
	}
	if n := int64(cfg.Width) * int64(cfg.Height); n > maxPixels {
		return nil, fmt.Errorf("imageio: %s: %s image of %dx%d = %d pixels is larger than the limit of %d pixels", name, strings.ToUpper(format), cfg.Width, cfg.Height, n, maxPixels)
	}
	img, format, err := decodeImage(open())
	if err != nil {
		return nil, decodeError(name, format, err)
	}
	b := img.Bounds()
	if b.Empty() {
		return nil, fmt.Errorf("imageio: %s: %s image has zero size (%dx%d)", name, strings.ToUpper(format), b.Dx(), b.Dy())
	}
	if int64(b.Dx())*int64(b.Dy()) > maxPixels {
		return nil, fmt.Errorf("imageio: %s: %s image of %dx%d pixels is larger than the limit of %d pixels", name, strings.ToUpper(format), b.Dx(), b.Dy(), maxPixels)
	}
	return img, nil
}

// Info is what an image file's header says.
type Info struct {
	W, H   int
	Format string // "png", "jpeg" or "gif"
}

// ReadInfo reads the header of the image file at path, without decoding
// its pixels, with Load's checks on it (a recognised format, a non-zero
// size, at most MaxPixels): a job can check every input before it writes
// anything. A file whose pixels are corrupt still fails later, in Load or
// Open.
func ReadInfo(path string) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("imageio: %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	var cfg image.Config
	var format string
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("decoder panicked: %v", p)
			}
		}()
		cfg, format, err = image.DecodeConfig(bufio.NewReader(f))
	}()
	if err != nil {
		return Info{}, decodeError(path, format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Info{}, fmt.Errorf("imageio: %s: %s image has zero size (%dx%d)", path, strings.ToUpper(format), cfg.Width, cfg.Height)
	}
	if n := int64(cfg.Width) * int64(cfg.Height); n > MaxPixels {
		return Info{}, fmt.Errorf("imageio: %s: %s image of %dx%d = %d pixels is larger than the limit of %d pixels", path, strings.ToUpper(format), cfg.Width, cfg.Height, n, int64(MaxPixels))
	}
	return Info{W: cfg.Width, H: cfg.Height, Format: format}, nil
}

// Picture is a decoded image kept as its decoder made it (8-bit RGBA,
// YCbCr, gray, ...), from which planar regions are cut on demand: a job
// that works on an image region by region holds the decoder's pixels
// once, not a planar copy besides them.
type Picture struct {
	W, H int
	img  image.Image
}

// Open reads and decodes the image file at path with Load's checks.
func Open(path string) (*Picture, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("imageio: %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	img, err := decodeChecked(f, path, MaxPixels)
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	return &Picture{W: b.Dx(), H: b.Dy(), img: img}, nil
}

// Region returns the w x h rectangle of the picture whose top-left corner
// is (x0, y0), converted as Load converts a whole image (Load's result,
// cropped). The rectangle must lie inside the picture.
func (p *Picture) Region(x0, y0, w, h int) *Image {
	if x0 < 0 || y0 < 0 || w < 1 || h < 1 || x0+w > p.W || y0+h > p.H {
		panic(fmt.Sprintf("imageio: Region: %dx%d at (%d, %d) is not inside the %dx%d picture", w, h, x0, y0, p.W, p.H))
	}
	o := p.img.Bounds().Min
	r := image.Rect(o.X+x0, o.Y+y0, o.X+x0+w, o.Y+y0+h)
	if sub, ok := p.img.(interface {
		SubImage(image.Rectangle) image.Image
	}); ok {
		return fromImage(sub.SubImage(r))
	}
	return fromImage(p.img).Crop(x0, y0, w, h)
}

// Quantize8 is how FromPlanarFloat turns one value into 8 bits: clamped to
// [0, 1], times 255, rounded half away from zero; NaN is 0.
func Quantize8(v float32) uint8 {
	switch f := float64(v); {
	case f >= 1:
		return 255
	case f > 0:
		return uint8(math.Round(f * 255))
	}
	return 0
}

// NewImage returns a black w x h image (3*w*h bytes).
func NewImage(w, h int) *Image { return newImage(w, h) }

// decodeConfig and decodeImage call the standard decoders, turning a panic
// in one of them (there should be none) into an error.
// seekErrReader fails every read with err (a file that could not be rewound).
type seekErrReader struct{ err error }

func (e seekErrReader) Read([]byte) (int, error) { return 0, e.err }

func decodeConfig(r io.Reader) (cfg image.Config, format string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder panicked: %v", p)
		}
	}()
	return image.DecodeConfig(r)
}

func decodeImage(r io.Reader) (img image.Image, format string, err error) {
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("decoder panicked: %v", p)
		}
	}()
	return image.Decode(r)
}

func decodeError(name, format string, err error) error {
	switch {
	case errors.Is(err, image.ErrFormat):
		return fmt.Errorf("imageio: %s: not a recognised image file (%s)", name, supported)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return fmt.Errorf("imageio: %s: truncated %s file: %w", name, strings.ToUpper(format), err)
	}
	return fmt.Errorf("imageio: %s: corrupt %s file: %w", name, strings.ToUpper(format), err)
}

// unwrapPath drops the operation and path of an *fs.PathError, which the
// callers' messages already name.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fromImage converts any image to planar RGB, with fast paths for the types
// the standard decoders return.
func fromImage(img image.Image) *Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	im := newImage(w, h)
	n := w * h
	R, G, B := im.Pix[:n], im.Pix[n:2*n], im.Pix[2*n:]
	switch m := img.(type) {
	case *image.Gray:
		for y := range h {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			copy(R[y*w:], row)
			copy(G[y*w:], row)
			copy(B[y*w:], row)
		}
	case *image.Gray16:
		for y := range h {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:2*w]
			for x := range w {
				v := round16(uint32(row[2*x])<<8 | uint32(row[2*x+1]))
				R[y*w+x], G[y*w+x], B[y*w+x] = v, v, v
			}
		}
	case *image.NRGBA:
		for y := range h {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			for x := range w {
				i := y*w + x
				R[i], G[i], B[i] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.RGBA:
		for y := range h {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			for x := range w {
				i := y*w + x
				p := row[4*x : 4*x+4]
				if p[3] == 0xff {
					R[i], G[i], B[i] = p[0], p[1], p[2]
				} else {
					R[i], G[i], B[i] = rgb8(color.RGBA{p[0], p[1], p[2], p[3]})
				}
			}
		}
	case *image.NRGBA64:
		for y := range h {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:8*w]
			for x := range w {
				i, p := y*w+x, row[8*x:8*x+8]
				R[i] = round16(uint32(p[0])<<8 | uint32(p[1]))
				G[i] = round16(uint32(p[2])<<8 | uint32(p[3]))
				B[i] = round16(uint32(p[4])<<8 | uint32(p[5]))
			}
		}
	case *image.RGBA64:
		for y := range h {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:8*w]
			for x := range w {
				i, p := y*w+x, row[8*x:8*x+8]
				r := uint32(p[0])<<8 | uint32(p[1])
				g := uint32(p[2])<<8 | uint32(p[3])
				bb := uint32(p[4])<<8 | uint32(p[5])
				a := uint32(p[6])<<8 | uint32(p[7])
				R[i], G[i], B[i] = round16(unpremul16(r, a)), round16(unpremul16(g, a)), round16(unpremul16(bb, a))
			}
		}
	case *image.YCbCr:
		for y := range h {
			for x := range w {
				i := y*w + x
				yi := m.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				R[i], G[i], B[i] = color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			}
		}
	case *image.CMYK:
		fromCMYK(m, R, G, B)
	case *image.Paletted:
		// Indices past the palette (which the decoders do not produce) are
		// black.
		var lut [256][3]uint8
		for k, c := range m.Palette {
			if k == len(lut) {
				break
			}
			lut[k][0], lut[k][1], lut[k][2] = rgb8(c)
		}
		for y := range h {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			for x, k := range row {
				i := y*w + x
				R[i], G[i], B[i] = lut[k][0], lut[k][1], lut[k][2]
			}
		}
	default:
		fromImageSlow(img, R, G, B)
	}
	return im
}

// fromCMYK converts a CMYK image (Adobe CMYK and YCCK JPEGs) to the planes.
func fromCMYK(m *image.CMYK, R, G, B []uint8) {
	b := m.Bounds()
	w := b.Dx()
	for y := range b.Dy() {
		row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
		for x := range w {
			i, p := y*w+x, row[4*x:4*x+4]
			R[i], G[i], B[i] = color.CMYKToRGB(p[0], p[1], p[2], p[3])
		}
	}
}

// fromImageSlow converts any image pixel by pixel through At; it is the
// oracle of the fast paths.
func fromImageSlow(img image.Image, R, G, B []uint8) {
	b := img.Bounds()
	w := b.Dx()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			i := (y-b.Min.Y)*w + x - b.Min.X
			R[i], G[i], B[i] = rgb8(img.At(x, y))
		}
	}
}

// rgb8 is the 8-bit RGB of a colour with its alpha dropped (see the package
// comment).
func rgb8(c color.Color) (r, g, b uint8) {
	switch c := c.(type) {
	case nil:
		return 0, 0, 0
	case color.NRGBA:
		return c.R, c.G, c.B
	case color.RGBA:
		if c.A == 0xff {
			return c.R, c.G, c.B
		}
		n := color.NRGBAModel.Convert(c).(color.NRGBA)
		return n.R, n.G, n.B
	case color.Gray:
		return c.Y, c.Y, c.Y
	case color.YCbCr:
		return color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
	case color.NYCbCrA:
		return color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
	case color.CMYK:
		return color.CMYKToRGB(c.C, c.M, c.Y, c.K)
	case color.RGBA64:
		a := uint32(c.A)
		return round16(unpremul16(uint32(c.R), a)), round16(unpremul16(uint32(c.G), a)), round16(unpremul16(uint32(c.B), a))
	}
	n := color.NRGBA64Model.Convert(c).(color.NRGBA64)
	return round16(uint32(n.R)), round16(uint32(n.G)), round16(uint32(n.B))
}

// unpremul16 un-premultiplies a 16-bit sample v by alpha a as
// color.NRGBA64Model does, saturating colours brighter than their alpha
// (which are not valid premultiplied colours).
func unpremul16(v, a uint32) uint32 {
	switch a {
	case 0xffff:
		return v
	case 0:
		return 0
	}
	return min(v*0xffff/a, 0xffff)
}

// round16 rounds a 16-bit sample to the nearest 8-bit one.
func round16(v uint32) uint8 { return uint8((v*255 + 32767) / 65535) }

func (im *Image) valid() error {
	switch {
	case im == nil:
		return errors.New("nil image")
	case im.W < 1 || im.H < 1:
		return fmt.Errorf("image has zero size (%dx%d)", im.W, im.H)
	case len(im.Pix) != 3*im.W*im.H:
		return fmt.Errorf("%dx%d image has %d values, want %d", im.W, im.H, len(im.Pix), 3*im.W*im.H)
	}
	return nil
}

// ToNRGBA returns the image as an opaque interleaved *image.NRGBA.
func (im *Image) ToNRGBA() *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, im.W, im.H))
	n := im.W * im.H
	R, G, B := im.Pix[:n], im.Pix[n:2*n], im.Pix[2*n:3*n]
	for i := range n {
		p := m.Pix[4*i : 4*i+4]
		p[0], p[1], p[2], p[3] = R[i], G[i], B[i], 0xff
	}
	return m
}

// Encode writes the image to w as an RGB PNG.
func (im *Image) Encode(w io.Writer) error {
	if err := im.valid(); err != nil {
		return fmt.Errorf("imageio: encode: %w", err)
	}
	if err := png.Encode(w, im.ToNRGBA()); err != nil {
		return fmt.Errorf("imageio: encode: %w", err)
	}
	return nil
}

// Save writes the image to path as a PNG (whatever the extension), through
// a temporary file in the same directory that is renamed over path once
// complete, so that path never holds a partial image.
func (im *Image) Save(path string) (err error) {
	if err := im.valid(); err != nil {
		return fmt.Errorf("imageio: %s: %w", path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("imageio: %s: %w", path, unwrapPath(err))
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("imageio: %s: %w", path, unwrapPath(err))
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	if err := png.Encode(bw, im.ToNRGBA()); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// FromPlanarFloat converts a planar RGB image of floats in [0, 1] (3*h*w
// values, channel-major as Image.Pix) to 8 bits: values are clamped to
// [0, 1], multiplied by 255 and rounded half away from zero; NaN becomes 0.
func FromPlanarFloat(w, h int, pix []float32) *Image {
	if w < 0 || h < 0 || len(pix) != 3*w*h {
		panic(fmt.Sprintf("imageio: FromPlanarFloat: %d values for a %dx%d RGB image", len(pix), w, h))
	}
	im := newImage(w, h)
	for i, v := range pix {
		im.Pix[i] = Quantize8(v)
	}
	return im
}

// Float32 returns the pixels as planar floats in [0, 1] (each value / 255),
// in the layout of Pix.
func (im *Image) Float32() []float32 {
	f := make([]float32, len(im.Pix))
	for i, v := range im.Pix {
		f[i] = float32(v) / 255
	}
	return f
}

// Crop returns a copy of the w x h region with top-left corner (x0, y0),
// which must lie inside the image.
func (im *Image) Crop(x0, y0, w, h int) *Image {
	if x0 < 0 || y0 < 0 || w < 0 || h < 0 || x0+w > im.W || y0+h > im.H {
		panic(fmt.Sprintf("imageio: Crop: region %dx%d at (%d, %d) is not inside the %dx%d image", w, h, x0, y0, im.W, im.H))
	}
	out := newImage(w, h)
	for c := range 3 {
		for y := range h {
			copy(out.Pix[(c*h+y)*w:][:w], im.Pix[(c*im.H+y0+y)*im.W+x0:][:w])
		}
	}
	return out
}

// ModCrop returns a copy of the image cropped on the right and bottom to
// the largest width and height that are multiples of m (as super-resolution
// evaluations do before downscaling by m); a side shorter than m becomes 0.
func (im *Image) ModCrop(m int) *Image {
	if m < 1 {
		panic(fmt.Sprintf("imageio: ModCrop: modulus %d is not positive", m))
	}
	return im.Crop(0, 0, im.W-im.W%m, im.H-im.H%m)
}

// IsImageName reports whether a file name has one of the image extensions
// List looks for.
func IsImageName(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, x := range extensions {
		if ext == x {
			return true
		}
	}
	return false
}

// List returns the paths of the image files (.png, .jpg, .jpeg, .gif, in
// any case) directly in dir, sorted. It is an error if there are none.
func List(dir string) ([]string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("imageio: %s: %w", dir, unwrapPath(err))
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("imageio: %s: not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("imageio: %s: %w", dir, unwrapPath(err))
	}
	var paths []string
	for _, e := range entries {
		if !IsImageName(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			if st, err := os.Stat(p); err != nil || st.IsDir() {
				continue
			}
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("imageio: %s: no images (looked for %s)", dir, strings.Join(extensions, ", "))
	}
	sort.Strings(paths)
	return paths, nil
}
