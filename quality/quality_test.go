package quality

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/kernels"
)

// scene is a smooth random RGB image with texture (so that a shift changes
// PSNR and SSIM a lot) of h x w.
func scene(r *rand.Rand, h, w int) []uint8 {
	p := make([]uint8, 3*h*w)
	f := [3][2]float64{}
	for c := range f {
		f[c] = [2]float64{0.15 + 0.3*r.Float64(), 0.15 + 0.3*r.Float64()}
	}
	for c := range 3 {
		for y := range h {
			for x := range w {
				v := 128 + 60*math.Sin(f[c][0]*float64(y)+float64(c))*math.Cos(f[c][1]*float64(x)) + 30*math.Sin(0.05*float64(x*y)) + 10*r.Float64()
				p[(c*h+y)*w+x] = uint8(max(0, min(255, v)))
			}
		}
	}
	return p
}

// shifted returns img moved so that out(y+dy, x+dx) = img(y, x); pixels
// with no source get fill.
func shifted(img []uint8, h, w, dy, dx int, fill uint8) []uint8 {
	out := make([]uint8, len(img))
	for i := range out {
		out[i] = fill
	}
	for c := range 3 {
		for y := range h {
			for x := range w {
				if yy, xx := y+dy, x+dx; yy >= 0 && yy < h && xx >= 0 && xx < w {
					out[(c*h+yy)*w+xx] = img[(c*h+y)*w+x]
				}
			}
		}
	}
	return out
}

// TestY: the BT.601 luma of hand-computed colours: black 16, white 235,
// pure red 16 + 65.481, and a mixed colour.
func TestY(t *testing.T) {
	rgb := []uint8{0, 255, 255, 0, 10 /* G */, 0, 255, 0, 255, 20 /* B */, 0, 255, 0, 0, 30}
	want := []float64{16, 235, 16 + 65.481, 16 + 128.553, 16 + (65.481*10+128.553*20+24.966*30)/255}
	got := Y(rgb, 1, 5)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("Y[%d] = %.15g, want %.15g", i, got[i], want[i])
		}
	}
}

// TestNoShift: without a search, RGB scores are kernels.PSNR and SSIM's
// exactly (today's eval), and Y scores are those of the Y planes; a
// constant Y offset of 1 gives 20 log10(255) dB.
func TestNoShift(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const h, w = 40, 36
	a := scene(r, h, w)
	b := shifted(a, h, w, 1, 0, 128)
	s, err := Compare(a, b, h, w, Options{Border: 4})
	if err != nil {
		t.Fatal(err)
	}
	if s.PSNR != kernels.PSNR(a, b, 3, h, w, 4) || s.SSIM != kernels.SSIM(a, b, 3, h, w, 4) || s.PSNRShift != [2]int{} {
		t.Errorf("RGB %+v", s)
	}
	// Every channel one level up: Y rises by (65.481+128.553+24.966)/255 = 219/255.
	c := make([]uint8, len(a))
	for i, v := range a {
		c[i] = min(v, 254) + 1
		a[i] = c[i] - 1
	}
	s, err = Compare(a, c, h, w, Options{Y: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := 20 * math.Log10(255/(219.0/255)); math.Abs(s.PSNR-want) > 1e-9 {
		t.Errorf("Y PSNR of a one-level offset = %.12g, want %.12g", s.PSNR, want)
	}
	if s.SSIM >= 1 || s.SSIM < 0.99 {
		t.Errorf("Y SSIM of a one-level offset = %g", s.SSIM)
	}
}

// TestShiftSearchAgainstRef: the search (window statistics computed once,
// shifts over the cores) gives CompareShiftRef's scores, which crop both
// images to each shift's overlap and call kernels, within 1e-10, and the
// same shifts: RGB and Y, whole images and centre patches, borders.
func TestShiftSearchAgainstRef(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		h, w int
		o    Options
	}{
		{30, 34, Options{Shift: 3}},
		{30, 34, Options{Shift: 4, Border: 2, Y: true}},
		{48, 40, Options{Shift: 5, Border: 4, Patch: 16}},
		{48, 40, Options{Shift: 6, Border: 3, Patch: 20, Y: true}},
		{25, 25, Options{Shift: 8}}, // overlaps down to 9x9: SSIM skips them
	} {
		a := scene(r, c.h, c.w)
		b := shifted(a, c.h, c.w, 2, -1, 0)
		for i := range b { // and some noise
			b[i] = uint8(max(0, min(255, int(b[i])+r.IntN(9)-4)))
		}
		got, err := Compare(a, b, c.h, c.w, c.o)
		if err != nil {
			t.Fatal(err)
		}
		want := CompareShiftRef(a, b, c.h, c.w, c.o)
		if math.Abs(got.PSNR-want.PSNR) > 1e-10 || math.Abs(got.SSIM-want.SSIM) > 1e-10 || got.PSNRShift != want.PSNRShift || got.SSIMShift != want.SSIMShift {
			t.Errorf("%+v: got %+v, reference %+v", c, got, want)
		}
		if got.PSNRShift != [2]int{-2, 1} {
			t.Errorf("%+v: best PSNR shift %v, the images are offset by (-2, 1)", c, got.PSNRShift)
		}
	}
}

// TestShiftFindsOffset: a reference displaced by (3, -2) is found exactly:
// PSNR +Inf and SSIM 1 at shift (3, -2) (reference (y, x) matches SR
// (y+3, x-2)), with the official protocol's 60x60 patch and 10-pixel
// border, and within a search of +-40.
func TestShiftFindsOffset(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const h, w = 150, 140
	sr := scene(r, h, w)
	ref := shifted(sr, h, w, -3, 2, 0) // ref(y, x) = sr(y+3, x-2)
	s, err := Compare(sr, ref, h, w, Options{Shift: 40, Patch: 60, Border: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(s.PSNR, 1) || s.PSNRShift != [2]int{3, -2} || math.Abs(s.SSIM-1) > 1e-12 || s.SSIMShift != [2]int{3, -2} {
		t.Errorf("%+v", s)
	}
	// Aligned images: shift (0, 0), and the search never scores less than
	// no search.
	noisy := shifted(sr, h, w, 0, 0, 0)
	for i := range noisy {
		noisy[i] = uint8(max(0, min(255, int(noisy[i])+r.IntN(21)-10)))
	}
	s, err = Compare(sr, noisy, h, w, Options{Shift: 5, Border: 4})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := Compare(sr, noisy, h, w, Options{Border: 4})
	if s.PSNRShift != [2]int{} || s.SSIMShift != [2]int{} || s.PSNR < plain.PSNR-1e-12 || s.SSIM < plain.SSIM-1e-12 {
		t.Errorf("aligned: search %+v, plain %+v", s, plain)
	}
}

func TestCompareErrors(t *testing.T) {
	img := make([]uint8, 3*20*20)
	for _, c := range []struct {
		o    Options
		n    int
		want string
	}{
		{Options{Border: -1}, 20, "negative"},
		{Options{Shift: 2, Patch: 5}, 20, "smaller than SSIM"},
		{Options{Border: 10}, 20, "nothing left"},
		{Options{}, 19, "values"},
	} {
		_, err := Compare(img[:3*c.n*c.n], img, c.n, c.n, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
}

func BenchmarkShiftSearchOfficial(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const h, w = 300, 300
	sr := scene(r, h, w)
	ref := shifted(sr, h, w, 1, 1, 0)
	for b.Loop() {
		Compare(sr, ref, h, w, Options{Shift: 40, Patch: 60, Border: 10})
	}
}
