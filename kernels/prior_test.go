package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
)

func randKernels(r *rand.Rand, n, ks, plane int) []float64 {
	k := make([]float64, n*ks*ks*plane)
	for i := range k {
		k[i] = r.Float64()
	}
	return k
}

func to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// close32 compares a float32 result with the float64 one: relative error
// at most tol of max(1e-3, |want|).
func close32(t *testing.T, what string, got32, want float64, tol float64) {
	t.Helper()
	if e := math.Abs(got32-want) / math.Max(1e-3, math.Abs(want)); e > tol || math.IsNaN(e) {
		t.Errorf("%s: float32 %.9g, float64 %.9g (relative error %.3g > %.3g)", what, got32, want, e, tol)
	}
}

func closeSlices32(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	scale := 0.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(v))
	}
	for i, v := range want {
		if e := math.Abs(float64(got[i])-v) / math.Max(scale, 1e-30); e > tol || math.IsNaN(e) {
			t.Fatalf("%s[%d]: float32 %.9g, float64 %.9g (error %.3g of the largest %.3g > %.3g)", what, i, got[i], v, e, scale, tol)
		}
	}
}

// checkGrad runs gradcheck on one parameter with the default step and a
// tolerance of 1e-7.
func checkGrad(t *testing.T, name string, loss func() float64, x, dx []float64) {
	t.Helper()
	worst, err := gradcheck.Check(loss, []gradcheck.Param{{Name: name, Value: x, Grad: dx}}, gradcheck.Options{Tol: 1e-7})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: worst %s", name, worst)
}

func TestKernelSmoothValues(t *testing.T) {
	// ks 2, one tap of 1: the pairs (0,0)-(0,1) and (0,0)-(1,0) differ by 1.
	if got := KernelSmooth(1, 2, 1, []float64{1, 0, 0, 0}); got != 2 {
		t.Errorf("2x2 corner tap: %g, want 2", got)
	}
	// ks 3: a centre delta has four neighbours; a box has none; a ramp
	// 0,1,2 along the rows differs by 1 in 6 horizontal pairs. The mean of
	// the delta and the ramp is (4+6)/2.
	delta := []float64{0, 0, 0, 0, 1, 0, 0, 0, 0}
	box := []float64{1, 1, 1, 1, 1, 1, 1, 1, 1}
	ramp := []float64{0, 1, 2, 0, 1, 2, 0, 1, 2}
	for _, tc := range []struct {
		name string
		n    int
		k    []float64
		want float64
	}{
		{"delta", 1, delta, 4},
		{"box", 1, box, 0},
		{"ramp", 1, ramp, 6},
		{"delta+ramp", 2, append(append([]float64(nil), delta...), ramp...), 5},
	} {
		if got := KernelSmooth(tc.n, 3, 1, tc.k); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("%s: %g, want %g", tc.name, got, tc.want)
		}
	}
	// The transposed ramp costs the same (vertical pairs).
	if got := KernelSmooth(1, 3, 1, []float64{0, 0, 0, 1, 1, 1, 2, 2, 2}); got != 6 {
		t.Errorf("vertical ramp: %g, want 6", got)
	}
}

// TestKernelSmoothRingVsGaussian: a "ring" of isolated taps costs far more
// than a smooth kernel of the same mass.
func TestKernelSmoothRingVsGaussian(t *testing.T) {
	const ks, c = 21, 10
	ring := make([]float64, ks*ks)
	gauss := make([]float64, ks*ks)
	var taps int
	for i := 0; i < 24; i++ {
		a := 2 * math.Pi * float64(i) / 24
		u, v := c+int(math.Round(7*math.Sin(a))), c+int(math.Round(7*math.Cos(a)))
		if i%2 == 0 && ring[u*ks+v] == 0 { // every other point: isolated taps
			ring[u*ks+v] = 1
			taps++
		}
	}
	var s float64
	for u := 0; u < ks; u++ {
		for v := 0; v < ks; v++ {
			g := math.Exp(-(float64((u-c)*(u-c) + (v-c)*(v-c))) / (2 * 2 * 2))
			gauss[u*ks+v] = g
			s += g
		}
	}
	for i := range ring {
		ring[i] /= float64(taps)
		gauss[i] /= s
	}
	r, g := KernelSmooth(1, ks, 1, ring), KernelSmooth(1, ks, 1, gauss)
	// Isolated taps of mass 1/taps: 4 pairs each, 4/taps = 1/3.
	if math.Abs(r-4/float64(taps)) > 1e-12 {
		t.Errorf("ring of %d isolated taps: %g, want %g", taps, r, 4/float64(taps))
	}
	if r < 50*g {
		t.Errorf("ring %g, gaussian(sigma 2) %g: the ring should cost far more", r, g)
	}
	t.Logf("ring %g, gaussian %g (x%.0f)", r, g, r/g)
}

// TestKernelSmoothSpatialLayout: N x ks*ks x h x w kernels cost what the
// same N*h*w kernels laid out N*h*w x ks*ks cost, and get the same
// gradients.
func TestKernelSmoothSpatialLayout(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, ks, plane = 2, 3, 5
	sp := randKernels(r, n, ks, plane)
	inv := make([]float64, len(sp))
	idx := func(i, tap, p int) int { return (i*ks*ks+tap)*plane + p }
	for i := 0; i < n; i++ {
		for tap := 0; tap < ks*ks; tap++ {
			for p := 0; p < plane; p++ {
				inv[(i*plane+p)*ks*ks+tap] = sp[idx(i, tap, p)]
			}
		}
	}
	for _, f := range []struct {
		name string
		val  func(plane int, k []float64) float64
		grad func(plane int, dk, k []float64)
	}{
		{"smooth", func(pl int, k []float64) float64 { return KernelSmooth(len(k)/(ks*ks*pl), ks, pl, k) },
			func(pl int, dk, k []float64) { KernelSmoothBackward(len(k)/(ks*ks*pl), ks, pl, 1, dk, k) }},
		{"radius", func(pl int, k []float64) float64 { return KernelRadius(len(k)/(ks*ks*pl), ks, pl, 0.7, 1.2, 0.3, k) },
			func(pl int, dk, k []float64) { KernelRadiusBackward(len(k)/(ks*ks*pl), ks, pl, 0.7, 1.2, 0.3, 1, dk) }},
	} {
		a, b := f.val(plane, sp), f.val(1, inv)
		if math.Abs(a-b) > 1e-14*math.Abs(b) {
			t.Errorf("%s: spatial %g, invariant %g", f.name, a, b)
		}
		da, db := make([]float64, len(sp)), make([]float64, len(inv))
		f.grad(plane, da, sp)
		f.grad(1, db, inv)
		for i := 0; i < n; i++ {
			for tap := 0; tap < ks*ks; tap++ {
				for p := 0; p < plane; p++ {
					if x, y := da[idx(i, tap, p)], db[(i*plane+p)*ks*ks+tap]; math.Abs(x-y) > 1e-15 {
						t.Fatalf("%s: gradient of sample %d tap %d pixel %d: spatial %g, invariant %g", f.name, i, tap, p, x, y)
					}
				}
			}
		}
	}
}

func TestKernelSmoothGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, plane := range []int{1, 3} {
		const n, ks, g = 3, 4, 0.7
		k := randKernels(r, n, ks, plane)
		dk := make([]float64, len(k))
		KernelSmoothBackward(n, ks, plane, g, dk, k)
		checkGrad(t, "smooth", func() float64 { return g * KernelSmooth(n, ks, plane, k) }, k, dk)
		dk32 := make([]float32, len(k))
		KernelSmoothBackward(n, ks, plane, g, dk32, to32(k))
		close32(t, "smooth value", KernelSmooth(n, ks, plane, to32(k)), KernelSmooth(n, ks, plane, k), 1e-6)
		closeSlices32(t, "smooth gradient", dk32, dk, 1e-6)
	}
}

func TestKernelRadiusValues(t *testing.T) {
	// ks 3 around the centre (1, 1) with r0 0.5: edge taps at distance 1
	// cost 0.5^2, corners at sqrt(2) cost (sqrt(2)-0.5)^2, the centre 0.
	box := make([]float64, 9)
	for i := range box {
		box[i] = 1.0 / 9
	}
	want := (4*0.25 + 4*(math.Sqrt2-0.5)*(math.Sqrt2-0.5)) / 9
	if got := KernelRadius(1, 3, 1, 1, 1, 0.5, box); math.Abs(got-want) > 1e-15 {
		t.Errorf("box: %.17g, want %.17g", got, want)
	}
	// A delta at (2, 2) around (0, 0) with r0 0: 8 (squared distance).
	delta := make([]float64, 9)
	delta[8] = 1
	if got := KernelRadius(1, 3, 1, 0, 0, 0, delta); math.Abs(got-8) > 1e-14 {
		t.Errorf("corner delta: %g, want 8", got)
	}
	// The same delta around (0, 2) with r0 1: (2-1)^2, weighted by 0.5;
	// the mean with a kernel all inside r0 (cost 0) halves it.
	delta[8] = 0.5
	two := append(append([]float64(nil), delta...), 0, 0, 0.3, 0, 0, 0, 0, 0, 0)
	if got := KernelRadius(2, 3, 1, 0, 2, 1, two); math.Abs(got-0.25) > 1e-15 {
		t.Errorf("two kernels: %g, want 0.25", got)
	}
	// Everything within r0: 0.
	if got := KernelRadius(1, 3, 1, 1, 1, 1.5, box); got != 0 {
		t.Errorf("all inside r0: %g", got)
	}
}

func TestKernelRadiusGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, plane := range []int{1, 4} {
		const n, ks, g = 2, 5, 1.3
		k := randKernels(r, n, ks, plane)
		dk := make([]float64, len(k))
		KernelRadiusBackward(n, ks, plane, 2, 1.5, 0.8, g, dk)
		checkGrad(t, "radius", func() float64 { return g * KernelRadius(n, ks, plane, 2, 1.5, 0.8, k) }, k, dk)
		dk32 := make([]float32, len(k))
		KernelRadiusBackward(n, ks, plane, 2, 1.5, 0.8, g, dk32)
		close32(t, "radius value", KernelRadius(n, ks, plane, 2, 1.5, 0.8, to32(k)), KernelRadius(n, ks, plane, 2, 1.5, 0.8, k), 1e-6)
		closeSlices32(t, "radius gradient", dk32, dk, 1e-6)
	}
}

func TestPairAbsDiffAndModeSeekingValues(t *testing.T) {
	// n 2: one pair, |0-1| + |1-3| over 2 values.
	if got := PairAbsDiff(2, []float64{0, 1, 1, 3}); got != 1.5 {
		t.Errorf("n 2: %g, want 1.5", got)
	}
	// n 4: pairs (0,2) and (1,3), not (0,1) and (2,3).
	x := []float64{0, 10, 1, 10}
	if got := PairAbsDiff(4, x); got != 0.5 {
		t.Errorf("n 4: %g, want 0.5 (samples i and i+n/2 paired)", got)
	}
	// ratio 1.5/0.5 = 3: 1/(3 + 0.01).
	if got := ModeSeeking(2, 0.5, 0.01, []float64{0, 1, 1, 3}); math.Abs(got-1/3.01) > 1e-15 {
		t.Errorf("mode seeking: %g, want %g", got, 1/3.01)
	}
	// Collapsed kernels: 1/eps.
	if got := ModeSeeking(2, 0.5, 1e-5, []float64{1, 2, 1, 2}); math.Abs(got-1e5) > 1e-9 {
		t.Errorf("collapsed: %g, want 1e5", got)
	}
	// No latent distance: nothing to seek.
	dk := []float64{9, 9, 9, 9}
	for _, dz := range []float64{0, math.NaN()} {
		if got := ModeSeeking(2, dz, 0.01, []float64{0, 1, 1, 3}); got != 0 {
			t.Errorf("dz %g: %g, want 0", dz, got)
		}
		ModeSeekingBackward(2, dz, 0.01, 1, dk, []float64{0, 1, 1, 3})
		for _, v := range dk {
			if v != 0 {
				t.Errorf("dz %g: gradient %v, want zeros", dz, dk)
			}
		}
	}
	for _, n := range []int{3, 1, 0} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("batch of %d accepted", n)
				}
			}()
			PairAbsDiff(n, make([]float64, 6))
		}()
	}
}

func TestModeSeekingGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, eps := range []float64{1e-5, 0.1} {
		const n, m, dz, g = 6, 7, 0.8, 0.6
		k := randKernels(r, n, 1, m)
		for i := range k {
			k[i] *= 0.05 // kernel-like magnitudes
		}
		dk := make([]float64, len(k))
		ModeSeekingBackward(n, dz, eps, g, dk, k)
		// The loss is large (about 1/ratio); compare against its scale.
		worst, err := gradcheck.Check(func() float64 { return g * ModeSeeking(n, dz, eps, k) }, []gradcheck.Param{{Name: "k", Value: k, Grad: dk}}, gradcheck.Options{Eps: 1e-8, Tol: 1e-5})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("eps %g: worst %s", eps, worst)
		dk32 := make([]float32, len(k))
		ModeSeekingBackward(n, dz, eps, g, dk32, to32(k))
		close32(t, "mode seeking value", ModeSeeking(n, dz, eps, to32(k)), ModeSeeking(n, dz, eps, k), 1e-5)
		closeSlices32(t, "mode seeking gradient", dk32, dk, 1e-5)
	}
	// Its gradient pushes paired samples apart: one step against it
	// increases PairAbsDiff.
	k := randKernels(r, 4, 1, 3)
	dk := make([]float64, len(k))
	ModeSeekingBackward(4, 1, 1e-5, 1, dk, k)
	before := PairAbsDiff(4, k)
	for i := range k {
		k[i] -= 1e-9 * dk[i]
	}
	if after := PairAbsDiff(4, k); after <= before {
		t.Errorf("a descent step moved PairAbsDiff from %g to %g", before, after)
	}
}

func TestMinibatchStdValues(t *testing.T) {
	// n 2, c 1, one pixel: values 1 and 3, variance 1.
	y := make([]float64, 4)
	s := MinibatchStd(2, 1, 1, y, []float64{1, 3})
	want := math.Sqrt(1 + 1e-8)
	if math.Abs(s-want) > 1e-15 || y[0] != 1 || y[2] != 3 || y[1] != s || y[3] != s {
		t.Errorf("got %v (s %g), want [1 %g 3 %g]", y, s, want, want)
	}
	// n 2, c 2, plane 2: channel 0 differs by 2 (sd 1) at both pixels,
	// channel 1 by 4 (sd 2) at one and not at all (sd 1e-4) at the other.
	x := []float64{
		0, 0, 5, 7, // sample 0: c0, c1
		2, 2, 9, 7, // sample 1
	}
	y = make([]float64, 2*3*2)
	s = MinibatchStd(2, 2, 2, y, x)
	want = (math.Sqrt(1+1e-8)*2 + math.Sqrt(4+1e-8) + 1e-4) / 4
	if math.Abs(s-want) > 1e-15 {
		t.Errorf("s %.17g, want %.17g", s, want)
	}
	for i, v := range []float64{0, 0, 5, 7, s, s, 2, 2, 9, 7, s, s} {
		if y[i] != v {
			t.Fatalf("output %v, want sample-wise x then two values %g", y, s)
		}
	}
	// One sample: no spread, s = sqrt(1e-8).
	y = make([]float64, 4)
	if s := MinibatchStd(1, 1, 2, y, []float64{3, 4}); math.Abs(s-1e-4) > 1e-18 {
		t.Errorf("one sample: %g, want 1e-4", s)
	}
}

func TestMinibatchStdGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, sh := range [][3]int{{4, 3, 5}, {2, 1, 1}, {3, 2, 4}} {
		n, c, plane := sh[0], sh[1], sh[2]
		x := randKernels(r, n, 1, c*plane)
		dy := randKernels(r, n, 1, (c+1)*plane)
		y := make([]float64, len(dy))
		dx := make([]float64, len(x))
		MinibatchStdBackward(n, c, plane, dx, x, dy)
		checkGrad(t, "minibatchstd", func() float64 { MinibatchStd(n, c, plane, y, x); return gradcheck.Dot(y, dy) }, x, dx)
		y32, dx32 := make([]float32, len(y)), make([]float32, len(x))
		MinibatchStd(n, c, plane, y32, to32(x))
		MinibatchStd(n, c, plane, y, x)
		closeSlices32(t, "minibatchstd value", y32, y, 1e-6)
		MinibatchStdBackward(n, c, plane, dx32, to32(x), to32(dy))
		closeSlices32(t, "minibatchstd gradient", dx32, dx, 1e-5)
	}
}
