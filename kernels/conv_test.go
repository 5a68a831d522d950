package kernels

import (
	"fmt"
	"math"
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

// convPathShapes reach every path of the fast convolutions: rows of 32
// output pixels read in place (W 32, 64) and panels packed across output
// rows (W 8, 40, odd), stride 2 and 3, padding 0 to 3 (the data gradient
// as a convolution only below the filter size), 1x1 with and without
// stride, channel counts that are and are not multiples of the tile width
// (the filter gradient's in-place panels), filter counts that are not
// multiples of the tile height, and image counts below and above the
// worker count (images over workers, or columns of dw over workers).
var convPathShapes = []ConvShape{
	{N: 2, C: 32, H: 6, W: 32, K: 20, KH: 3, KW: 3, Stride: 1, Pad: 1},
	{N: 3, C: 64, H: 8, W: 8, K: 13, KH: 3, KW: 3, Stride: 1, Pad: 1},
	{N: 1, C: 32, H: 5, W: 64, K: 37, KH: 3, KW: 3, Stride: 1, Pad: 1},
	{N: 1, C: 5, H: 13, W: 11, K: 7, KH: 3, KW: 3, Stride: 2, Pad: 1},
	{N: 4, C: 3, H: 17, W: 9, K: 33, KH: 5, KW: 5, Stride: 1, Pad: 2},
	{N: 2, C: 8, H: 10, W: 12, K: 6, KH: 3, KW: 3, Stride: 1, Pad: 0},
	{N: 5, C: 64, H: 2, W: 32, K: 24, KH: 1, KW: 1, Stride: 1},
	{N: 3, C: 40, H: 6, W: 6, K: 3, KH: 1, KW: 1, Stride: 1},
	{N: 2, C: 4, H: 9, W: 9, K: 5, KH: 1, KW: 1, Stride: 2, Pad: 1},
	{N: 3, C: 6, H: 7, W: 7, K: 4, KH: 3, KW: 3, Stride: 3, Pad: 2},
	{N: 2, C: 16, H: 3, W: 40, K: 24, KH: 3, KW: 3, Stride: 1, Pad: 1},
	{N: 7, C: 32, H: 8, W: 8, K: 12, KH: 3, KW: 3, Stride: 2, Pad: 1},
	{N: 2, C: 3, H: 5, W: 5, K: 4, KH: 3, KW: 3, Stride: 1, Pad: 3},
	{N: 2, C: 3, H: 3, W: 3, K: 2, KH: 3, KW: 3, Stride: 1, Pad: 0},
	{N: 3, C: 2, H: 6, W: 33, K: 3, KH: 2, KW: 4, Stride: 1, Pad: 1},
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

// testConvFastVsRef compares Conv2D, Conv2DBackwardData,
// Conv2DBackwardFilter and BiasGrad with the references on every shape,
// for 1, 2 and 3 workers, every micro-kernel of T, and depth blocks of the
// default size and of 40 (so that most products take several blocks).
func testConvFastVsRef[T Float](t *testing.T, tol float64) {
	r := rand.New(rand.NewPCG(5, 6))
	kernels := []string{"go-4x4"}
	var zero T
	if _, ok := any(zero).(float32); ok {
		kernels = GemmKernels()
		defer UseGemmKernel(GemmKernel())
	}
	defer func(kc int) { gemmKC = kc }(gemmKC)
	nan := T(math.NaN())
	acts := []Act{{Kind: LeakyReLU, Slope: 0.2}, {}, {Kind: ReLU}, {Kind: LeakyReLU, Slope: 1.5}}
	for si, s := range append(append([]ConvShape(nil), convShapes...), convPathShapes...) {
		nx, nw, ny := s.Sizes()
		x, w, b, dy := randSlice[T](r, nx), randSlice[T](r, nw), randSlice[T](r, s.K), randSlice[T](r, ny)
		act := acts[si%len(acts)]
		if si%3 == 2 {
			b = nil
		}
		yr, dxr, dwr, dbr := make([]T, ny), make([]T, nx), make([]T, nw), make([]T, s.K)
		Conv2DRef(s, yr, x, w, b, act)
		Conv2DBackwardRef(s, dxr, dwr, dbr, x, w, dy)
		if b == nil {
			dbr = nil
		}
		for _, kern := range kernels {
			UseGemmKernel(kern)
			for _, kc := range []int{512, 40} {
				gemmKC = kc
				for _, workers := range []int{1, 2, 3} {
					old := SetWorkers(workers)
					// Garbage in the outputs must be overwritten.
					y, dx, dw, db := make([]T, ny), make([]T, nx), make([]T, nw), make([]T, s.K)
					for _, v := range [][]T{y, dx, dw, db} {
						for i := range v {
							v[i] = nan
						}
					}
					Conv2D(s, y, x, w, b, act)
					Conv2DBackwardData(s, dx, w, dy)
					Conv2DBackwardFilter(s, dw, x, dy)
					if b != nil {
						BiasGrad(s.N, s.K, s.OutH()*s.OutW(), db, dy)
					} else {
						db = nil
					}
					SetWorkers(old)
					for _, c := range []struct {
						name      string
						got, want []T
					}{{"y", y, yr}, {"dx", dx, dxr}, {"dw", dw, dwr}, {"db", db, dbr}} {
						if e := maxRelErr(c.got, c.want); !(e <= tol) {
							t.Fatalf("%s kc=%d workers=%d %+v %s: rel err %.3g", kern, kc, workers, s, c.name, e)
						}
					}
				}
			}
		}
	}
}

func TestConv2DFastVsRef(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testConvFastVsRef[float64](t, 1e-12) })
	t.Run("float32", func(t *testing.T) { testConvFastVsRef[float32](t, 1e-5) })
}

// TestConv2DDeterministic checks that with a given worker count the
// results are bit-identical from run to run, whatever the scheduling.
func TestConv2DDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range []ConvShape{
		{N: 5, C: 32, H: 6, W: 32, K: 20, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 2, C: 32, H: 8, W: 8, K: 12, KH: 3, KW: 3, Stride: 2, Pad: 1},
		{N: 7, C: 5, H: 9, W: 11, K: 33, KH: 3, KW: 3, Stride: 1, Pad: 1},
	} {
		nx, nw, ny := s.Sizes()
		x, w, b, dy := randSlice[float32](r, nx), randSlice[float32](r, nw), randSlice[float32](r, s.K), randSlice[float32](r, ny)
		for _, workers := range []int{2, 3} {
			old := SetWorkers(workers)
			var first [3][]float32
			for run := 0; run < 8; run++ {
				y, dx, dw := make([]float32, ny), make([]float32, nx), make([]float32, nw)
				Conv2D(s, y, x, w, b, Act{Kind: LeakyReLU, Slope: 0.1})
				Conv2DBackwardData(s, dx, w, dy)
				Conv2DBackwardFilter(s, dw, x, dy)
				if run == 0 {
					first = [3][]float32{y, dx, dw}
					// The activation fused into the kernels gives what
					// ActInPlace gives.
					y2 := make([]float32, ny)
					Conv2D(s, y2, x, w, b, Act{})
					ActInPlace(Act{Kind: LeakyReLU, Slope: 0.1}, y2)
					for j := range y2 {
						if math.Float32bits(y2[j]) != math.Float32bits(y[j]) {
							t.Fatalf("workers=%d %+v: fused activation %v, ActInPlace %v at %d", workers, s, y[j], y2[j], j)
						}
					}
					continue
				}
				for i, got := range [][]float32{y, dx, dw} {
					for j := range got {
						if math.Float32bits(got[j]) != math.Float32bits(first[i][j]) {
							t.Fatalf("workers=%d %+v: output %d differs between runs at %d", workers, s, i, j)
						}
					}
				}
			}
			SetWorkers(old)
		}
	}
}

// TestConvBackwardFilterWorkersIndependent checks that the forward pass and both
// gradients give the same bits whatever the worker count, for batches
// smaller and larger than it and than the filter gradient's part count: a
// replay with another --threads trains identically.
func TestConvBackwardFilterWorkersIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, s := range []ConvShape{
		{N: 1, C: 32, H: 6, W: 32, K: 20, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 3, C: 7, H: 9, W: 11, K: 33, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 9, C: 32, H: 8, W: 8, K: 12, KH: 3, KW: 3, Stride: 2, Pad: 1},
		{N: 17, C: 16, H: 5, W: 7, K: 8, KH: 1, KW: 1, Stride: 1},
		{N: 32, C: 8, H: 6, W: 6, K: 16, KH: 3, KW: 3, Stride: 1, Pad: 1},
	} {
		nx, nw, ny := s.Sizes()
		x, w, b, dy := randSlice[float32](r, nx), randSlice[float32](r, nw), randSlice[float32](r, s.K), randSlice[float32](r, ny)
		var first [3][]float32
		for _, workers := range []int{1, 2, 3, 5, 16} {
			old := SetWorkers(workers)
			y, dx, dw := make([]float32, ny), make([]float32, nx), make([]float32, nw)
			Conv2D(s, y, x, w, b, Act{Kind: ReLU})
			Conv2DBackwardData(s, dx, w, dy)
			Conv2DBackwardFilter(s, dw, x, dy)
			SetWorkers(old)
			if first[0] == nil {
				first = [3][]float32{y, dx, dw}
				continue
			}
			for i, got := range [][]float32{y, dx, dw} {
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(first[i][j]) {
						t.Fatalf("%+v: output %d (y, dx, dw) at %d differs with %d workers from 1 worker", s, i, j, workers)
					}
				}
			}
		}
	}
}

func BenchmarkConv2D(b *testing.B) {
	for _, s := range []ConvShape{
		{N: 8, C: 64, H: 32, W: 32, K: 64, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 16, C: 32, H: 64, W: 64, K: 128, KH: 3, KW: 3, Stride: 1, Pad: 1},
		// The W1/W2 shapes: EDSR body and NoiseNet (64 -> 64 at 32x32),
		// the EDSR upsampler (64 -> 256 at 64x64), PatchGAN's stride-2
		// and 8x8 layers, a 1x1 layer.
		{N: 32, C: 64, H: 32, W: 32, K: 64, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 32, C: 64, H: 64, W: 64, K: 256, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 32, C: 64, H: 32, W: 32, K: 128, KH: 3, KW: 3, Stride: 2, Pad: 1},
		{N: 32, C: 256, H: 8, W: 8, K: 512, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 32, C: 64, H: 32, W: 32, K: 64, KH: 1, KW: 1, Stride: 1},
	} {
		name := fmt.Sprintf("%dx%dx%dx%d-k%d-%dx%ds%d", s.N, s.C, s.H, s.W, s.K, s.KH, s.KW, s.Stride)
		var x, w, bias, y, dx, dw []float32
		setup := func() {
			if x != nil {
				return
			}
			r := rand.New(rand.NewPCG(1, 1))
			nx, nw, ny := s.Sizes()
			x, w, bias, y = randSlice[float32](r, nx), randSlice[float32](r, nw), randSlice[float32](r, s.K), randSlice[float32](r, ny)
			dx, dw = make([]float32, nx), make([]float32, nw)
		}
		b.Run("fwd/"+name, func(b *testing.B) {
			setup()
			benchFLOPs(b, s.FLOPs(), func() { Conv2D(s, y, x, w, bias, Act{Kind: ReLU}) })
		})
		b.Run("bwd-data/"+name, func(b *testing.B) {
			setup()
			benchFLOPs(b, s.FLOPs(), func() { Conv2DBackwardData(s, dx, w, y) })
		})
		b.Run("bwd-filter/"+name, func(b *testing.B) {
			setup()
			benchFLOPs(b, s.FLOPs(), func() { Conv2DBackwardFilter(s, dw, x, y) })
		})
	}
}

// benchFLOPs runs fn b.N times and reports GFLOP/s of wall time and, as
// cpu-GFLOP/s, per second of this process's CPU time divided by the
// worker count: the figure to compare when other processes share the
// cores.
func benchFLOPs(b *testing.B, flops int64, fn func()) {
	fn() // warm the pools
	c0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fn()
	}
	b.StopTimer()
	cpu := cpuTime() - c0
	total := float64(flops) * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu > 0 {
		b.ReportMetric(total/(cpu.Seconds()/float64(Workers()))/1e9, "cpu-GFLOP/s")
	}
}

// TestTransposeRows checks the transposes of the filter gradient (16x16
// register blocks with AVX-512, 8x8 with AVX2, eight rows at a time, single
// rows) on sizes around the block sizes.
func TestTransposeRows(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 9))
	for _, rows := range []int{1, 7, 8, 9, 15, 16, 17, 33, 64} {
		for _, n := range []int{1, 5, 8, 9, 15, 16, 31, 32, 40} {
			ss, ds := n+3, rows+5
			src := randSlice[float32](r, rows*ss)
			dst := make([]float32, n*ds)
			for i := range dst {
				dst[i] = -7
			}
			transposeRows(dst, ds, src, ss, rows, n)
			for j := 0; j < n; j++ {
				for i := 0; i < ds; i++ {
					want := float32(-7)
					if i < rows {
						want = src[i*ss+j]
					}
					if dst[j*ds+i] != want {
						t.Fatalf("rows %d n %d: dst[%d][%d] = %v, want %v", rows, n, j, i, dst[j*ds+i], want)
					}
				}
			}
		}
	}
}
