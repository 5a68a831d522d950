package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
)

func TestConv2DAgainstTorch(t *testing.T) {
	var v struct {
		Cases []struct {
			B, Cin, Cout, H, W, K, Stride int
			X, Wt, Bias, Y, R, Dx, Dw, Db []float64
		}
	}
	// The JSON keys are lower-case; map them explicitly.
	var raw struct {
		Cases []map[string]any `json:"cases"`
	}
	loadVectors(t, "conv2d.json", &raw)
	for _, c := range raw.Cases {
		f := func(k string) []float64 {
			a := c[k].([]any)
			out := make([]float64, len(a))
			for i, x := range a {
				out[i] = x.(float64)
			}
			return out
		}
		i := func(k string) int { return int(c[k].(float64)) }
		_ = v
		s := ConvShape{N: i("B"), C: i("Cin"), H: i("H"), W: i("W"), K: i("Cout"), KH: i("k"), KW: i("k"), Stride: i("stride"), Pad: i("k") / 2}
		x, w, b, r := f("x"), f("w"), f("b"), f("r")
		_, _, ny := s.Sizes()
		name := fmt.Sprintf("%+v", s)
		for _, fast := range []bool{false, true} {
			y := make([]float64, ny)
			dx, dw, db := make([]float64, len(x)), make([]float64, len(w)), make([]float64, len(b))
			if fast {
				Conv2D(s, y, x, w, b, Act{})
				Conv2DBackwardData(s, dx, w, r)
				Conv2DBackwardFilter(s, dw, x, r)
				BiasGrad(s.N, s.K, s.OutH()*s.OutW(), db, r)
			} else {
				Conv2DRef(s, y, x, w, b, Act{})
				Conv2DBackwardRef(s, dx, dw, db, x, w, r)
			}
			assertClose(t, name+" y", y, f("y"), 1e-9)
			assertClose(t, name+" dx", dx, f("dx"), 1e-9)
			assertClose(t, name+" dw", dw, f("dw"), 1e-9)
			assertClose(t, name+" db", db, f("db"), 1e-9)
		}
	}
}

var convShapes = []ConvShape{
	{N: 1, C: 1, H: 1, W: 1, K: 1, KH: 1, KW: 1, Stride: 1},
	{N: 2, C: 3, H: 7, W: 5, K: 4, KH: 3, KW: 3, Stride: 1, Pad: 1},
	{N: 3, C: 5, H: 9, W: 11, K: 7, KH: 3, KW: 3, Stride: 2, Pad: 1},
	{N: 1, C: 4, H: 8, W: 8, K: 3, KH: 4, KW: 4, Stride: 2, Pad: 1},
	{N: 5, C: 6, H: 4, W: 3, K: 2, KH: 1, KW: 1, Stride: 1},
	{N: 2, C: 2, H: 6, W: 7, K: 3, KH: 5, KW: 3, Stride: 1, Pad: 2},
	{N: 3, C: 3, H: 13, W: 10, K: 33, KH: 3, KW: 3, Stride: 1, Pad: 1},
	{N: 2, C: 16, H: 1, W: 1, K: 20, KH: 1, KW: 1, Stride: 1},
	{N: 1, C: 2, H: 3, W: 3, K: 2, KH: 3, KW: 3, Stride: 1, Pad: 0},
	{N: 4, C: 8, H: 12, W: 12, K: 8, KH: 3, KW: 3, Stride: 3, Pad: 2},
}

func TestConv2DGradientsNumeric(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range convShapes {
		nx, nw, ny := s.Sizes()
		x, w, b, rr := randSlice[float64](r, nx), randSlice[float64](r, nw), randSlice[float64](r, s.K), randSlice[float64](r, ny)
		for _, act := range []Act{{}, {Kind: ReLU}, {Kind: LeakyReLU, Slope: 0.2}} {
			y := make([]float64, ny)
			loss := func() float64 {
				Conv2D(s, y, x, w, b, act)
				return gradcheck.Dot(y, rr)
			}
			loss()
			dpre := make([]float64, ny)
			ActBackward(act, dpre, y, rr)
			dx, dw, db := make([]float64, nx), make([]float64, nw), make([]float64, s.K)
			Conv2DBackwardData(s, dx, w, dpre)
			Conv2DBackwardFilter(s, dw, x, dpre)
			BiasGrad(s.N, s.K, s.OutH()*s.OutW(), db, dpre)
			worst, err := gradcheck.Check(loss, []gradcheck.Param{{Name: "x", Value: x, Grad: dx}, {Name: "w", Value: w, Grad: dw}, {Name: "b", Value: b, Grad: db}}, gradcheck.Options{Samples: 40, Eps: 1e-5, Tol: 1e-6, Seed: 1})
			if err != nil {
				t.Fatalf("%+v %v: %v", s, act, err)
			}
			t.Logf("%+v %v worst %s", s, act, worst)
		}
	}
}

func testConvFastVsRef[T Float](t *testing.T, tol float64) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, workers := range []int{1, 2, 3} {
		old := SetWorkers(workers)
		for _, s := range convShapes {
			nx, nw, ny := s.Sizes()
			x, w, b, dy := randSlice[T](r, nx), randSlice[T](r, nw), randSlice[T](r, s.K), randSlice[T](r, ny)
			act := Act{Kind: LeakyReLU, Slope: 0.2}
			y, yr := make([]T, ny), make([]T, ny)
			Conv2D(s, y, x, w, b, act)
			Conv2DRef(s, yr, x, w, b, act)
			dx, dw, dxr, dwr, db, dbr := make([]T, nx), make([]T, nw), make([]T, nx), make([]T, nw), make([]T, s.K), make([]T, s.K)
			// Garbage in the outputs must be overwritten.
			for i := range dx {
				dx[i] = 7
			}
			for i := range dw {
				dw[i] = 7
			}
			Conv2DBackwardData(s, dx, w, dy)
			Conv2DBackwardFilter(s, dw, x, dy)
			BiasGrad(s.N, s.K, s.OutH()*s.OutW(), db, dy)
			Conv2DBackwardRef(s, dxr, dwr, dbr, x, w, dy)
			for _, c := range []struct {
				name      string
				got, want []T
			}{{"y", y, yr}, {"dx", dx, dxr}, {"dw", dw, dwr}, {"db", db, dbr}} {
				if e := maxRelErr(c.got, c.want); e > tol {
					t.Fatalf("workers=%d %+v %s: rel err %.3g", workers, s, c.name, e)
				}
			}
		}
		SetWorkers(old)
	}
}

func TestConv2DFastVsRef(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testConvFastVsRef[float64](t, 1e-12) })
	t.Run("float32", func(t *testing.T) { testConvFastVsRef[float32](t, 1e-5) })
}

func BenchmarkConv2D(b *testing.B) {
	for _, s := range []ConvShape{
		{N: 8, C: 64, H: 32, W: 32, K: 64, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 16, C: 32, H: 64, W: 64, K: 128, KH: 3, KW: 3, Stride: 1, Pad: 1},
	} {
		r := rand.New(rand.NewPCG(1, 1))
		nx, nw, ny := s.Sizes()
		x, w, bias, y := randSlice[float32](r, nx), randSlice[float32](r, nw), randSlice[float32](r, s.K), make([]float32, ny)
		dx, dw := make([]float32, nx), make([]float32, nw)
		name := fmt.Sprintf("%dx%dx%dx%d-k%d", s.N, s.C, s.H, s.W, s.K)
		b.Run("fwd/"+name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Conv2D(s, y, x, w, bias, Act{Kind: ReLU})
			}
			b.ReportMetric(float64(s.FLOPs())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run("bwd-data/"+name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Conv2DBackwardData(s, dx, w, y)
			}
			b.ReportMetric(float64(s.FLOPs())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run("bwd-filter/"+name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Conv2DBackwardFilter(s, dw, x, y)
			}
			b.ReportMetric(float64(s.FLOPs())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
