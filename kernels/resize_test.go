package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

type resizeCase struct{ planes, h, w, oh, ow int }

var resizeCases = []resizeCase{
	{1, 1, 1, 1, 1},
	{2, 1, 1, 3, 4},     // 1x1 up
	{1, 5, 7, 1, 1},     // down to 1x1
	{3, 1, 9, 1, 4},     // 1-pixel height
	{2, 8, 1, 3, 1},     // 1-pixel width
	{3, 16, 16, 4, 4},   // x4 down
	{3, 16, 12, 8, 6},   // x2 down
	{2, 13, 11, 4, 3},   // odd, non-integer down
	{2, 7, 9, 28, 36},   // x4 up
	{1, 5, 6, 11, 13},   // non-integer up
	{2, 9, 10, 27, 4},   // up in height, down in width
	{2, 17, 6, 5, 17},   // down in height, up in width
	{1, 12, 12, 12, 12}, // identity
	{2, 12, 10, 12, 7},  // one axis unchanged
	{1, 10, 15, 6, 15},  // the other
	{1, 20, 21, 19, 22}, // nearly identity
	{1, 2, 3, 17, 1},
	{4, 6, 6, 2, 9},
}

func testResizeFastVsRef[T Float](t *testing.T, tol float64) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, c := range resizeCases {
		src := randSlice[T](r, c.planes*c.h*c.w)
		want := make([]T, c.planes*c.oh*c.ow)
		got := make([]T, len(want))
		ResizeBicubicRef(c.planes, c.h, c.w, c.oh, c.ow, want, src)
		for _, workers := range []int{1, 3} {
			old := SetWorkers(workers)
			for i := range got {
				got[i] = T(math.NaN())
			}
			ResizeBicubic(c.planes, c.h, c.w, c.oh, c.ow, got, src)
			SetWorkers(old)
			if e := maxRelErr(got, want); e > tol || math.IsNaN(e) {
				t.Errorf("%+v workers=%d: max error %g > %g", c, workers, e, tol)
			}
		}
	}
}

func TestResizeBicubicFastVsRef(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testResizeFastVsRef[float64](t, 1e-12) })
	t.Run("float32", func(t *testing.T) { testResizeFastVsRef[float32](t, 1e-5) })
}

func TestResizeBicubicConstant(t *testing.T) {
	for _, c := range resizeCases {
		src := make([]float64, c.planes*c.h*c.w)
		for i := range src {
			src[i] = 0.7 + float64(i/(c.h*c.w))
		}
		dst := make([]float64, c.planes*c.oh*c.ow)
		ResizeBicubic(c.planes, c.h, c.w, c.oh, c.ow, dst, src)
		for i, v := range dst {
			if want := 0.7 + float64(i/(c.oh*c.ow)); math.Abs(v-want) > 1e-13 {
				t.Fatalf("%+v: dst[%d] = %.17g, want %.17g", c, i, v, want)
			}
		}
	}
}

// TestResizeBicubicLinearRamp: the cubic kernel with a = -0.5 reproduces
// linear functions, so upsampling a ramp gives the ramp at the output
// pixels' input coordinates (i+0.5)/scale - 0.5, away from the borders where
// the mirroring bends it.
func TestResizeBicubicLinearRamp(t *testing.T) {
	for _, c := range []resizeCase{{1, 10, 12, 20, 24}, {1, 9, 7, 36, 28}, {1, 8, 11, 13, 30}} {
		src := make([]float64, c.h*c.w)
		ramp := func(y, x float64) float64 { return 0.25 + 1.5*y - 0.75*x }
		for y := range c.h {
			for x := range c.w {
				src[y*c.w+x] = ramp(float64(y), float64(x))
			}
		}
		dst := make([]float64, c.oh*c.ow)
		ResizeBicubic(1, c.h, c.w, c.oh, c.ow, dst, src)
		sy, sx := float64(c.oh)/float64(c.h), float64(c.ow)/float64(c.w)
		checked := 0
		for i := range c.oh {
			y := (float64(i)+0.5)/sy - 0.5
			if y < 1 || y > float64(c.h-2) {
				continue
			}
			for j := range c.ow {
				x := (float64(j)+0.5)/sx - 0.5
				if x < 1 || x > float64(c.w-2) {
					continue
				}
				checked++
				if got, want := dst[i*c.ow+j], ramp(y, x); math.Abs(got-want) > 1e-12 {
					t.Fatalf("%+v: (%d,%d) = %.17g, want %.17g", c, i, j, got, want)
				}
			}
		}
		if checked < c.oh*c.ow/4 {
			t.Fatalf("%+v: only %d interior pixels checked", c, checked)
		}
	}
}

// Hand-computed MATLAB weights. cubic(t) = 1.5|t|^3 - 2.5|t|^2 + 1 for
// |t| <= 1, -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2 for 1 < |t| <= 2.
//
// Down by 2 (scale 0.5): h(t) = 0.5*cubic(0.5t), kernel width 8. Output x
// (1-based) sits at u = 2x - 0.5, so the non-zero taps are the 8 input
// pixels 2x-4 .. 2x+3 (1-based) at distances u - j = 3.5, 2.5, ..., -3.5;
// cubic(1.75) = -0.0234375, cubic(1.25) = -0.0703125, cubic(0.75) =
// 0.2265625, cubic(0.25) = 0.8671875, which sum to 2 over the 8 taps, so
// after normalisation w = cubic(d/2)/2.
var matlabDown2 = []float64{-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875}

// Down by 4 (scale 0.25): h(t) = 0.25*cubic(0.25t), kernel width 16,
// u = 4x - 1.5, non-zero taps 4x-9 .. 4x+6 (1-based) at distances 7.5 .. -7.5;
// the cubic at the 16 points d/4 = ±1.875, ±1.625, ..., ±0.125 sums to 4, so
// w = cubic(d/4)/4:
//
//	cubic(1.875) = -0.0068359375   cubic(1.625) = -0.0439453125
//	cubic(1.375) = -0.0732421875   cubic(1.125) = -0.0478515625
//	cubic(0.875) =  0.0908203125   cubic(0.625) =  0.3896484375
//	cubic(0.375) =  0.7275390625   cubic(0.125) =  0.9638671875
var matlabDown4 = []float64{
	-0.001708984375, -0.010986328125, -0.018310546875, -0.011962890625,
	0.022705078125, 0.097412109375, 0.181884765625, 0.240966796875,
	0.240966796875, 0.181884765625, 0.097412109375, 0.022705078125,
	-0.011962890625, -0.018310546875, -0.010986328125, -0.001708984375,
}

// Up by 2 (scale 2): plain cubic, u = x/2 + 0.25; output 2m-1 (1-based) has
// taps m-2 .. m+1 at distances 1.75, 0.75, -0.25, -1.25 and output 2m the
// mirror image; the weights already sum to 1.
var matlabUp2Odd = []float64{-0.0234375, 0.2265625, 0.8671875, -0.0703125}

// matlabMirror is MATLAB's 1-based index mirroring, returned 0-based.
func matlabMirror(j, n int) int {
	switch {
	case j < 1:
		return 1 - j - 1
	case j > n:
		return 2*n - j + 1 - 1
	}
	return j - 1
}

func TestResizeBicubicMatlabWeights(t *testing.T) {
	for _, c := range []struct {
		name          string
		in, out       int
		weights       []float64
		first, stride int // 1-based first tap of output x is stride*x + first
	}{
		{"down2", 16, 8, matlabDown2, -4, 2},
		{"down2-odd", 13, 6, nil, 0, 0},
		{"down4", 24, 6, matlabDown4, -9, 4},
		{"up2", 7, 14, nil, 0, 0},
	} {
		r := rand.New(rand.NewPCG(3, 4))
		x := randSlice[float64](r, c.in)
		want := make([]float64, c.out)
		switch {
		case c.weights != nil:
			for o := range c.out {
				for k, wk := range c.weights {
					want[o] += wk * x[matlabMirror(c.stride*(o+1)+c.first+k, c.in)]
				}
			}
		case c.name == "up2":
			for o := range c.out {
				m := o/2 + 1 // 1-based input pixel nearest to output o
				for k, wk := range matlabUp2Odd {
					if o%2 == 0 {
						want[o] += wk * x[matlabMirror(m-2+k, c.in)]
					} else {
						want[o] += wk * x[matlabMirror(m+2-k, c.in)]
					}
				}
			}
		default:
			// 13 -> 6: scale 6/13, kernel width 4*13/6, u = 13x/6 + 0.5*(1-13/6).
			s := 6.0 / 13
			for o := range c.out {
				u := float64(o+1)/s + 0.5*(1-1/s)
				var sum float64
				var acc float64
				for j := int(math.Floor(u-2/s)) - 2; j <= int(math.Ceil(u+2/s))+2; j++ {
					wj := s * bicubicKernel(s*(u-float64(j)))
					sum += wj
					acc += wj * x[matlabMirror(j, c.in)]
				}
				want[o] = acc / sum
			}
		}
		// A 1-D signal along the width, then the same along the height.
		got := make([]float64, c.out)
		ResizeBicubic(1, 1, c.in, 1, c.out, got, x)
		assertClose(t, c.name+" width", got, want, 1e-14)
		ResizeBicubic(1, c.in, 1, c.out, 1, got, x)
		assertClose(t, c.name+" height", got, want, 1e-14)
	}
}

// TestResizeBicubicTaps checks the kill step: down by 2 has P = 10 taps of
// which the outer two are zero for every output.
func TestResizeBicubicTaps(t *testing.T) {
	tb := newResizeTable[float64](16, 8)
	if tb.k != 8 {
		t.Fatalf("down by 2 keeps %d taps, want 8", tb.k)
	}
	assertClose(t, "down2 taps", tb.w[3*8:4*8], matlabDown2, 0)
	if got := fmt.Sprint(tb.idx[:8]); got != "[2 1 0 0 1 2 3 4]" {
		t.Fatalf("first output's taps %s, want [2 1 0 0 1 2 3 4]", got)
	}
	if tb := newResizeTable[float64](9, 9); !tb.identity {
		t.Fatal("9 -> 9 is not the identity")
	}
}

func TestResizeBicubicPanics(t *testing.T) {
	for _, f := range []func(){
		func() { ResizeBicubic(1, 0, 2, 1, 1, make([]float64, 1), nil) },
		func() { ResizeBicubic(1, 2, 2, 1, 1, make([]float64, 1), make([]float64, 3)) },
		func() { ResizeBicubicRef(1, 2, 2, 2, 1, make([]float64, 1), make([]float64, 4)) },
		func() { ResizeBicubicU8(1, 0, 2, 1, 1, make([]float32, 1), nil) },
		func() { ResizeBicubicU8(1, 2, 2, 1, 1, make([]float32, 1), make([]uint8, 3)) },
		func() { ResizeBicubicU8(2, 2, 2, 1, 1, make([]float32, 1), make([]uint8, 8)) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Error("no panic")
				} else if s, _ := r.(string); len(s) < 9 || s[:9] != "kernels: " {
					t.Errorf("panic %v lacks the package prefix", r)
				}
			}()
			f()
		}()
	}
	ResizeBicubicU8(0, 2, 2, 1, 1, nil, nil) // no planes: nothing to do
}

func BenchmarkResizeBicubicDown4(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	src := randSlice[float32](r, 3*512*512)
	dst := make([]float32, 3*128*128)
	for b.Loop() {
		ResizeBicubic(3, 512, 512, 128, 128, dst, src)
	}
}

// resizeAlongHOneTap is resizeAlongH with one tap per pass over the row,
// the order the grouped loop must reproduce bit for bit.
func resizeAlongHOneTap[T Float](planes, h, oh, w int, dst, src []T, t resizeTable[T]) {
	for r := 0; r < planes*oh; r++ {
		p, i := r/oh, r%oh
		plane := src[p*h*w:][:h*w]
		out := dst[r*w:][:w]
		idx, wt := t.idx[i*t.k:][:t.k], t.w[i*t.k:][:t.k]
		for j := range out {
			out[j] = wt[0] * plane[idx[0]*w+j]
		}
		for k := 1; k < t.k; k++ {
			for j := range out {
				out[j] += wt[k] * plane[idx[k]*w+j]
			}
		}
	}
}

// TestResizeAlongHGroupedTaps: the four-taps-per-pass loop gives the same
// bits as one tap per pass, for tap counts that are and are not 1 + 4n.
func TestResizeAlongHGroupedTaps(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, sz := range [][2]int{{128, 32}, {37, 11}, {16, 48}, {9, 3}, {20, 20}} {
		h, oh, w := sz[0], sz[1], 13
		src := make([]float32, 2*h*w)
		for i := range src {
			src[i] = r.Float32()
		}
		tab := newResizeTable[float32](h, oh)
		got, want := make([]float32, 2*oh*w), make([]float32, 2*oh*w)
		resizeAlongH(2, h, oh, w, got, src, tab)
		resizeAlongHOneTap(2, h, oh, w, want, src, tab)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%dx%d -> %d (%d taps): element %d = %g, want %g", h, w, oh, tab.k, i, got[i], want[i])
			}
		}
	}
}

// TestTapsMatchesGo: taps gives the bits of the taps summed one at a time
// through memory (the first product alone or added to +0, then each
// further product rounded and added), for 1..20 taps, every length up to
// 70 and lengths around the 64- and 128-wide blocks (vector blocks and
// scalar tail) and strides wider than the rows; and Unit8 gives the
// division's bits for every byte, vector body and tail. The amd64 tests run
// it again on each narrower vector path this CPU has.
func TestTapsMatchesGo(t *testing.T) { checkTapsMatchesGo(t) }

func checkTapsMatchesGo(t *testing.T) {
	t.Helper()
	all := make([]uint8, 256)
	for v := range all {
		all[v] = uint8(v)
	}
	u := make([]float32, 256)
	Unit8(u, all)
	for v, f := range u {
		if f != float32(v)/255 {
			t.Fatalf("Unit8(%d) = %g, want %g", v, f, float32(v)/255)
		}
	}
	r := rand.New(rand.NewPCG(11, 12))
	lengths := []int{}
	for n := 0; n <= 70; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 127, 128, 129, 136, 191, 200, 255, 256, 263, 300)
	for _, n := range lengths {
		for _, k := range []int{1, 2, 3, 4, 5, 8, 13, 20} {
			stride := n + r.IntN(5)
			rows := 1 + r.IntN(30)
			src := randSlice[float32](r, rows*stride+n)
			idx := make([]int, k)
			for i := range idx {
				idx[i] = r.IntN(rows + 1)
			}
			w := randSlice[float32](r, k)
			for _, zero := range []bool{false, true} {
				want := make([]float32, n)
				for j := range want {
					p := w[0] * src[idx[0]*stride+j]
					if zero {
						var z float32
						want[j] = z + p
					} else {
						want[j] = p
					}
				}
				for i := 1; i < k; i++ {
					for j := range want {
						p := w[i] * src[idx[i]*stride+j]
						want[j] += p
					}
				}
				got := randSlice[float32](r, n)
				taps(got, src, idx, stride, w, zero)
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("n=%d k=%d zero=%v j=%d: taps %g, want %g", n, k, zero, j, got[j], want[j])
					}
				}
			}
		}
		u8 := make([]uint8, n)
		for j := range u8 {
			u8[j] = uint8(r.IntN(256))
		}
		got3, want3 := make([]float32, n), make([]float32, n)
		Unit8(got3, u8)
		unit8Go(want3, u8)
		for j := range got3 {
			if math.Float32bits(got3[j]) != math.Float32bits(want3[j]) {
				t.Fatalf("n=%d j=%d: Unit8(%d) = %g, want %g", n, j, u8[j], got3[j], want3[j])
			}
		}
	}
	// The zero flag is not a no-op: -0 products come out +0, on every
	// path (300 outputs: 128-, 64-, 32- and 8-wide blocks and a tail).
	negZero := make([]float32, 300)
	for i := range negZero {
		negZero[i] = float32(math.Copysign(0, -1))
	}
	got := make([]float32, 300)
	for _, k := range []int{1, 2} {
		taps(got, negZero, make([]int, k), 0, []float32{1, 1}, true)
		for j, v := range got {
			if math.Signbit(float64(v)) {
				t.Fatalf("taps with zero kept a -0 at %d of %d (%d taps)", j, len(got), k)
			}
		}
	}
}

// TestResizeAlongWTransposed: the float32 column pass through transposed
// planes gives resizeAlongWRows's bits, down and up, tap counts of every
// remainder.
func TestResizeAlongWTransposed(t *testing.T) {
	if !haveAVX2 {
		t.Skip("resizeAlongWT needs AVX2, which this CPU (or the noasm build) does not have")
	}
	r := rand.New(rand.NewPCG(13, 14))
	for _, sz := range [][3]int{{32, 128, 32}, {9, 37, 11}, {16, 16, 48}, {8, 9, 3}, {21, 20, 20}} {
		h, w, ow := sz[0], sz[1], sz[2]
		src := randSlice[float32](r, 3*h*w)
		tab := newResizeTable[float32](w, ow)
		got, want := make([]float32, 3*h*ow), make([]float32, 3*h*ow)
		resizeAlongWT(3, h, w, ow, got, src, tab)
		resizeAlongWRows(3, h, w, ow, want, src, tab)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%dx%d -> %d (%d taps): element %d = %g, want %g", h, w, ow, tab.k, i, got[i], want[i])
			}
		}
	}
}
