package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randPixels8(r *rand.Rand, n int) []uint8 {
	p := make([]uint8, n)
	for i := range p {
		p[i] = uint8(r.IntN(256))
	}
	return p
}

// smoothPixels8 is a random image with spatial structure, so that SSIM is far
// from 0 and noise lowers it gradually.
func smoothPixels8(r *rand.Rand, c, h, w int) []uint8 {
	p := make([]uint8, c*h*w)
	fy, fx, ph := 0.1+0.2*r.Float64(), 0.1+0.2*r.Float64(), r.Float64()*6
	for ch := range c {
		for y := range h {
			for x := range w {
				v := 128 + 90*math.Sin(fy*float64(y)+ph+float64(ch))*math.Cos(fx*float64(x))
				p[(ch*h+y)*w+x] = uint8(v)
			}
		}
	}
	return p
}

// addNoise8 adds uniform noise of amplitude amp, saturating at 0 and 255.
func addNoise8(r *rand.Rand, p []uint8, amp int) []uint8 {
	q := make([]uint8, len(p))
	for i, v := range p {
		q[i] = uint8(min(255, max(0, int(v)+r.IntN(2*amp+1)-amp)))
	}
	return q
}

func TestPSNRKnownValue(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	const c, h, w = 3, 10, 12
	a := randPixels8(r, c*h*w)
	b := make([]uint8, len(a))
	for i, v := range a {
		if v == 255 || (v > 0 && i%2 == 0) {
			b[i] = v - 1
		} else {
			b[i] = v + 1
		}
	}
	// MSE 1: 20*log10(255).
	if got, want := PSNR(a, b, c, h, w, 0), 48.130803608679102; math.Abs(got-want) > 1e-12 {
		t.Fatalf("PSNR = %.15g, want %.15g", got, want)
	}
	// Differences of 2 only outside a 2-pixel border do not count.
	for ch := range c {
		for y := range h {
			for x := range w {
				if y < 2 || y >= h-2 || x < 2 || x >= w-2 {
					b[(ch*h+y)*w+x] = a[(ch*h+y)*w+x] ^ 2
				}
			}
		}
	}
	if got := PSNR(a, b, c, h, w, 2); math.Abs(got-48.130803608679102) > 1e-12 {
		t.Fatalf("cropped PSNR = %.15g", got)
	}
	if got := PSNR(a, a, c, h, w, 0); !math.IsInf(got, 1) {
		t.Fatalf("PSNR of identical images = %g, want +Inf", got)
	}
	if got := PSNR(a, b, c, h, w, 5); !math.IsNaN(got) {
		t.Fatalf("PSNR of an empty crop = %g, want NaN", got)
	}
	if PSNR(a, b, c, h, w, 1) != PSNR(b, a, c, h, w, 1) {
		t.Fatal("PSNR is not symmetric")
	}
}

func TestSSIMAgainstRef(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, s := range []struct{ c, h, w, border int }{
		{1, 11, 11, 0}, {3, 15, 17, 2}, {3, 40, 33, 4}, {2, 150, 21, 0}, {1, 80, 75, 3},
	} {
		n := s.c * s.h * s.w
		a := smoothPixels8(r, s.c, s.h, s.w)
		b := addNoise8(r, a, 30)
		c := randPixels8(r, n)
		for _, pair := range [][2][]uint8{{a, b}, {a, c}, {b, c}} {
			want := ssimRef(pair[0], pair[1], s.c, s.h, s.w, s.border)
			for _, workers := range []int{1, 3} {
				old := SetWorkers(workers)
				got := SSIM(pair[0], pair[1], s.c, s.h, s.w, s.border)
				SetWorkers(old)
				if math.Abs(got-want) > 1e-12 || math.IsNaN(got) {
					t.Fatalf("%+v workers=%d: SSIM %.15g, reference %.15g", s, workers, got, want)
				}
			}
		}
	}
}

func TestSSIMProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const c, h, w = 3, 48, 40
	a := smoothPixels8(r, c, h, w)
	if got := SSIM(a, a, c, h, w, 4); math.Abs(got-1) > 1e-15 {
		t.Fatalf("SSIM(a, a) = %.17g", got)
	}
	prev := 1.0
	for _, amp := range []int{2, 8, 20, 50, 120} {
		b := addNoise8(r, a, amp)
		s := SSIM(a, b, c, h, w, 4)
		if s2 := SSIM(b, a, c, h, w, 4); math.Abs(s2-s) > 1e-15 {
			t.Fatalf("noise %d: SSIM not symmetric: %.17g vs %.17g", amp, s, s2)
		}
		if !(s < prev) || s <= -1 {
			t.Fatalf("noise %d: SSIM %g does not decrease from %g", amp, s, prev)
		}
		prev = s
	}
	// Constant images: the map is (2*m1*m2 + C1) / (m1^2 + m2^2 + C1).
	x, y := make([]uint8, c*h*w), make([]uint8, c*h*w)
	for i := range x {
		x[i], y[i] = 100, 110
	}
	c1 := (0.01 * 255) * (0.01 * 255)
	if got, want := SSIM(x, y, c, h, w, 0), (2*100*110+c1)/(100*100+110*110+c1); math.Abs(got-want) > 1e-9 {
		t.Fatalf("SSIM of constants = %.15g, want %.15g", got, want)
	}
	if got := SSIM(a, a, c, h, w, 15); !math.IsNaN(got) {
		t.Fatalf("SSIM of a 18x10 crop = %g, want NaN", got)
	}
	if got := SSIM(a[:c*10*10], a[:c*10*10], c, 10, 10, 0); !math.IsNaN(got) {
		t.Fatalf("SSIM of a 10x10 image = %g, want NaN", got)
	}
}

// TestFloatMetrics: PSNRFloat and SSIMFloat give PSNR's and SSIM's results
// bit for bit on integer values, and on non-integer planes match a direct
// mean squared error and the reference SSIM.
func TestFloatMetrics(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, s := range []struct{ c, h, w, border int }{{1, 11, 11, 0}, {3, 30, 27, 4}, {1, 70, 90, 2}} {
		a := smoothPixels8(r, s.c, s.h, s.w)
		b := addNoise8(r, a, 25)
		fa, fb := make([]float64, len(a)), make([]float64, len(b))
		for i := range a {
			fa[i], fb[i] = float64(a[i]), float64(b[i])
		}
		if got, want := PSNRFloat(fa, fb, s.c, s.h, s.w, s.border), PSNR(a, b, s.c, s.h, s.w, s.border); got != want {
			t.Errorf("%+v: PSNRFloat %.17g, PSNR %.17g", s, got, want)
		}
		if got, want := SSIMFloat(fa, fb, s.c, s.h, s.w, s.border), SSIM(a, b, s.c, s.h, s.w, s.border); got != want {
			t.Errorf("%+v: SSIMFloat %.17g, SSIM %.17g", s, got, want)
		}
		// Non-integer values (a Y channel's).
		var sse float64
		n := 0
		for i := range fa {
			fa[i] += 0.37 * r.Float64()
			fb[i] -= 0.29 * r.Float64()
			y, x := i/s.w%s.h, i%s.w
			if y >= s.border && y < s.h-s.border && x >= s.border && x < s.w-s.border {
				d := fa[i] - fb[i]
				sse += d * d
				n++
			}
		}
		want := 10 * math.Log10(255*255/(sse/float64(n)))
		if got := PSNRFloat(fa, fb, s.c, s.h, s.w, s.border); math.Abs(got-want) > 1e-10 {
			t.Errorf("%+v: PSNRFloat %.15g, direct %.15g", s, got, want)
		}
		if got, want := SSIMFloat(fa, fb, s.c, s.h, s.w, s.border), ssimRef(fa, fb, s.c, s.h, s.w, s.border); math.Abs(got-want) > 1e-12 {
			t.Errorf("%+v: SSIMFloat %.15g, reference %.15g", s, got, want)
		}
	}
}

func TestMetricPanics(t *testing.T) {
	for _, f := range []func(){
		func() { PSNR(make([]uint8, 3), make([]uint8, 4), 1, 1, 3, 0) },
		func() { SSIM(make([]uint8, 12), make([]uint8, 12), 3, 2, 2, -1) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}

func BenchmarkSSIM(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x := smoothPixels8(r, 3, 512, 512)
	y := addNoise8(r, x, 10)
	for b.Loop() {
		SSIM(x, y, 3, 512, 512, 4)
	}
}
