package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
)

func TestBlurDownAgainstTorch(t *testing.T) {
	var v struct {
		Cases []struct {
			B, C, H, W, Ksize, Scale int
			OutH                     int `json:"out_h"`
			OutW                     int `json:"out_w"`
			X, Logits, Kernel, Y, R  []float64
			DLossDLogits             []float64 `json:"dloss_dlogits"`
		} `json:"cases"`
	}
	loadVectors(t, "blur_downsample.json", &v)
	if len(v.Cases) == 0 {
		t.Fatal("no cases in blur_downsample.json")
	}
	for _, c := range v.Cases {
		s := BlurShape{N: c.B, C: c.C, H: c.H, W: c.W, KS: c.Ksize, Scale: c.Scale}
		if s.OutH() != c.OutH || s.OutW() != c.OutW {
			t.Fatalf("%+v: output %dx%d, torch %dx%d", s, s.OutH(), s.OutW(), c.OutH, c.OutW)
		}
		k := make([]float64, len(c.Logits))
		Softmax(c.B, c.Ksize*c.Ksize, 1, k, c.Logits)
		assertClose(t, fmt.Sprintf("%+v softmax", s), k, c.Kernel, 1e-12)
		for _, fast := range []bool{false, true} {
			name := fmt.Sprintf("%+v fast=%v", s, fast)
			_, _, ny := s.Sizes()
			y := make([]float64, ny)
			dk := make([]float64, len(k))
			if fast {
				BlurDown(s, y, c.X, k)
				BlurDownBackward(s, nil, dk, c.X, k, c.R)
			} else {
				BlurDownRef(s, y, c.X, k)
				BlurDownBackwardRef(s, nil, dk, c.X, k, c.R)
			}
			assertClose(t, name+" y", y, c.Y, 1e-9)
			dl := make([]float64, len(k))
			SoftmaxBackward(c.B, c.Ksize*c.Ksize, 1, dl, k, dk)
			assertClose(t, name+" dloss/dlogits", dl, c.DLossDLogits, 1e-9)
		}
	}
}

var blurShapes = []BlurShape{
	{N: 1, C: 1, H: 1, W: 1, KS: 1, Scale: 1},
	{N: 2, C: 3, H: 12, W: 12, KS: 5, Scale: 2},
	{N: 2, C: 3, H: 13, W: 11, KS: 5, Scale: 3},
	{N: 1, C: 3, H: 24, W: 20, KS: 21, Scale: 4},
	{N: 3, C: 2, H: 11, W: 17, KS: 21, Scale: 4},
	{N: 2, C: 3, H: 9, W: 9, KS: 3, Scale: 1},
	{N: 2, C: 3, H: 10, W: 7, KS: 7, Scale: 4, Spatial: true},
	{N: 1, C: 3, H: 16, W: 16, KS: 9, Scale: 2, Spatial: true},
	{N: 2, C: 1, H: 5, W: 6, KS: 3, Scale: 3, Spatial: true},
}

func TestBlurDownGradientsNumeric(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range blurShapes {
		nx, nk, ny := s.Sizes()
		x, k, rr := randSlice[float64](r, nx), randSlice[float64](r, nk), randSlice[float64](r, ny)
		y := make([]float64, ny)
		loss := func() float64 {
			BlurDown(s, y, x, k)
			return gradcheck.Dot(y, rr)
		}
		dx, dk := make([]float64, nx), make([]float64, nk)
		BlurDownBackward(s, dx, dk, x, k, rr)
		if _, err := gradcheck.Check(loss, []gradcheck.Param{{Name: "x", Value: x, Grad: dx}, {Name: "k", Value: k, Grad: dk}}, gradcheck.Options{Samples: 60, Eps: 1e-5, Seed: 2}); err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
	}
}

func testBlurFastVsRef[T Float](t *testing.T, tol float64) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, w := range []int{1, 2, 3} {
		old := SetWorkers(w)
		for _, s := range blurShapes {
			nx, nk, ny := s.Sizes()
			x, k, dy := randSlice[T](r, nx), randSlice[T](r, nk), randSlice[T](r, ny)
			y, yr := make([]T, ny), make([]T, ny)
			BlurDown(s, y, x, k)
			BlurDownRef(s, yr, x, k)
			dx, dk, dxr, dkr := make([]T, nx), make([]T, nk), make([]T, nx), make([]T, nk)
			for i := range dk {
				dk[i] = 3 // must be overwritten
			}
			BlurDownBackward(s, dx, dk, x, k, dy)
			BlurDownBackwardRef(s, dxr, dkr, x, k, dy)
			for _, c := range []struct {
				name      string
				got, want []T
			}{{"y", y, yr}, {"dx", dx, dxr}, {"dk", dk, dkr}} {
				if e := maxRelErr(c.got, c.want); e > tol {
					t.Fatalf("workers=%d %+v %s: rel err %.3g", w, s, c.name, e)
				}
			}
		}
		SetWorkers(old)
	}
}

// TestBlurDownFloat32Bits: BlurDown in float32 with one kernel per sample
// (the producer's and W1's case, summed by taps) gives BlurDownRef's bits:
// the taps in its order, every product and sum rounded on its own, so the
// fast path changes no pair a recorded run produced. Shapes of blurShapes
// plus the producer's (HR 128, 21x21 at x4), odd ones and widths past the
// 8-, 32- and 128-wide blocks.
func TestBlurDownFloat32Bits(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	shapes := append([]BlurShape{
		{N: 2, C: 3, H: 128, W: 128, KS: 21, Scale: 4},
		{N: 1, C: 2, H: 37, W: 300, KS: 13, Scale: 3},
		{N: 1, C: 1, H: 23, W: 270, KS: 9, Scale: 2},
	}, blurShapes...)
	for _, s := range shapes {
		if s.Spatial {
			continue
		}
		nx, nk, ny := s.Sizes()
		x, k := randSlice[float32](r, nx), randSlice[float32](r, nk)
		y, want := make([]float32, ny), make([]float32, ny)
		BlurDown(s, y, x, k)
		BlurDownRef(s, want, x, k)
		for i := range y {
			if math.Float32bits(y[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%+v: y[%d] = %g, want %g", s, i, y[i], want[i])
			}
		}
	}
}

func TestBlurDownFastVsRef(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testBlurFastVsRef[float64](t, 1e-12) })
	t.Run("float32", func(t *testing.T) { testBlurFastVsRef[float32](t, 1e-5) })
}

func TestBlurDownValidate(t *testing.T) {
	for _, s := range []BlurShape{
		{N: 1, C: 3, H: 10, W: 30, KS: 21, Scale: 4}, // too small for padding 10
		{N: 1, C: 3, H: 30, W: 30, KS: 4, Scale: 4},  // even kernel
		{N: 1, C: 3, H: 30, W: 30, KS: 5, Scale: 0},
		{N: 0, C: 3, H: 30, W: 30, KS: 5, Scale: 2},
	} {
		if s.Validate() == nil {
			t.Errorf("%+v: accepted", s)
		}
	}
	if err := (BlurShape{N: 1, C: 3, H: 11, W: 11, KS: 21, Scale: 4}).Validate(); err != nil {
		t.Errorf("11x11 with padding 10 rejected: %v", err)
	}
}

func TestSoftmaxGradientNumeric(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][3]int{{2, 5, 1}, {3, 4, 6}, {1, 441, 1}} {
		n := sh[0] * sh[1] * sh[2]
		x, rr := randSlice[float64](r, n), randSlice[float64](r, n)
		y := make([]float64, n)
		loss := func() float64 { Softmax(sh[0], sh[1], sh[2], y, x); return gradcheck.Dot(y, rr) }
		loss()
		dx := make([]float64, n)
		SoftmaxBackward(sh[0], sh[1], sh[2], dx, y, rr)
		if _, err := gradcheck.Check(loss, []gradcheck.Param{{Name: "x", Value: x, Grad: dx}}, gradcheck.Options{Samples: 50}); err != nil {
			t.Fatalf("%v: %v", sh, err)
		}
	}
}

func BenchmarkBlurDown(b *testing.B) {
	s := BlurShape{N: 32, C: 3, H: 128, W: 128, KS: 21, Scale: 4}
	r := rand.New(rand.NewPCG(1, 1))
	nx, nk, ny := s.Sizes()
	x, k, y := randSlice[float32](r, nx), randSlice[float32](r, nk), make([]float32, ny)
	dk := make([]float32, nk)
	b.Run("fwd", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			BlurDown(s, y, x, k)
		}
	})
	b.Run("bwd-kernel", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			BlurDownBackward(s, nil, dk, x, k, y)
		}
	})
}
