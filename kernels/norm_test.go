package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
)

func TestInstanceNormLeakyAgainstTorch(t *testing.T) {
	var v struct {
		InstNorm struct {
			Shape       []int
			X, Y, R, Dx []float64
		} `json:"instnorm"`
	}
	loadVectors(t, "norm_losses.json", &v)
	sh := v.InstNorm.Shape
	if len(sh) != 4 {
		t.Fatalf("instnorm shape %v", sh)
	}
	planes, plane := sh[0]*sh[1], sh[2]*sh[3]
	act := Act{Kind: LeakyReLU, Slope: 0.2}
	y := make([]float64, len(v.InstNorm.X))
	InstanceNorm(planes, plane, 1e-5, act, y, v.InstNorm.X)
	assertClose(t, "instnorm y", y, v.InstNorm.Y, 1e-9)
	dx := make([]float64, len(y))
	InstanceNormBackward(planes, plane, 1e-5, act, dx, v.InstNorm.X, y, v.InstNorm.R)
	assertClose(t, "instnorm dx", dx, v.InstNorm.Dx, 1e-9)
}

func TestPixelShuffleAgainstTorch(t *testing.T) {
	var v struct {
		Cases []struct {
			R       int
			InShape []int `json:"in_shape"`
			X, Y    []float64
		}
	}
	loadVectors(t, "pixel_shuffle.json", &v)
	for _, c := range v.Cases {
		n, ch, h, w := c.InShape[0], c.InShape[1]/(c.R*c.R), c.InShape[2], c.InShape[3]
		y := make([]float64, len(c.X))
		PixelShuffle(n, ch, h, w, c.R, y, c.X)
		assertClose(t, "pixel shuffle", y, c.Y, 0)
		x := make([]float64, len(c.X))
		PixelUnshuffle(n, ch, h, w, c.R, x, y)
		assertClose(t, "pixel unshuffle", x, c.X, 0)
	}
}

func TestPixelShuffleInverse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range [][5]int{{1, 1, 1, 1, 1}, {2, 3, 5, 7, 2}, {1, 2, 3, 4, 3}, {3, 1, 2, 2, 4}} {
		n := sh[0] * sh[1] * sh[2] * sh[3] * sh[4] * sh[4]
		x := randSlice[float32](r, n)
		y, back := make([]float32, n), make([]float32, n)
		PixelShuffle(sh[0], sh[1], sh[2], sh[3], sh[4], y, x)
		PixelUnshuffle(sh[0], sh[1], sh[2], sh[3], sh[4], back, y)
		for i := range x {
			if x[i] != back[i] {
				t.Fatalf("%v: unshuffle(shuffle(x)) differs at %d", sh, i)
			}
		}
	}
}

func TestInstanceNormGradientNumeric(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 3))
	for _, act := range []Act{{}, {Kind: ReLU}, {Kind: LeakyReLU, Slope: 0.2}} {
		for _, sh := range [][2]int{{1, 2}, {3, 7}, {6, 25}} {
			n := sh[0] * sh[1]
			x, rr := randSlice[float64](r, n), randSlice[float64](r, n)
			y := make([]float64, n)
			loss := func() float64 { InstanceNorm(sh[0], sh[1], 1e-5, act, y, x); return gradcheck.Dot(y, rr) }
			loss()
			dx := make([]float64, n)
			InstanceNormBackward(sh[0], sh[1], 1e-5, act, dx, x, y, rr)
			if _, err := gradcheck.Check(loss, []gradcheck.Param{{Name: "x", Value: x, Grad: dx}}, gradcheck.Options{Tol: 1e-6}); err != nil {
				t.Fatalf("%v %v: %v", act, sh, err)
			}
		}
	}
}

func TestBatchNormGradientNumeric(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 3))
	for _, act := range []Act{{}, {Kind: ReLU}} {
		for _, sh := range [][3]int{{4, 3, 1}, {2, 5, 6}, {32, 2, 1}} {
			n := sh[0] * sh[1] * sh[2]
			x, rr := randSlice[float64](r, n), randSlice[float64](r, n)
			gamma, beta := randSlice[float64](r, sh[1]), randSlice[float64](r, sh[1])
			y := make([]float64, n)
			loss := func() float64 {
				BatchNormTrain(sh[0], sh[1], sh[2], 1e-5, act, y, x, gamma, beta, nil, nil)
				return gradcheck.Dot(y, rr)
			}
			loss()
			dx, dg, db := make([]float64, n), make([]float64, sh[1]), make([]float64, sh[1])
			BatchNormTrainBackward(sh[0], sh[1], sh[2], 1e-5, act, dx, dg, db, x, gamma, y, rr)
			if _, err := gradcheck.Check(loss, []gradcheck.Param{{Name: "x", Value: x, Grad: dx}, {Name: "gamma", Value: gamma, Grad: dg}, {Name: "beta", Value: beta, Grad: db}}, gradcheck.Options{Tol: 1e-6}); err != nil {
				t.Fatalf("%v %v: %v", act, sh, err)
			}
		}
	}
}

func TestBatchNormStatistics(t *testing.T) {
	// Channel 0 holds 1..4 over a batch of 2 with planes of 2: mean 2.5,
	// biased variance 1.25, unbiased 5/3.
	x := []float64{1, 2, 10, 10, 3, 4, 10, 10}
	y := make([]float64, len(x))
	mean, uvar := make([]float64, 2), make([]float64, 2)
	BatchNormTrain(2, 2, 2, 0, Act{}, y, x, []float64{1, 1}, []float64{0, 0}, mean, uvar)
	if mean[0] != 2.5 || math.Abs(uvar[0]-5.0/3) > 1e-15 || mean[1] != 10 || uvar[1] != 0 {
		t.Fatalf("mean %v var %v", mean, uvar)
	}
	if want := (1 - 2.5) / math.Sqrt(1.25); math.Abs(y[0]-want) > 1e-15 {
		t.Fatalf("y[0] = %v, want %v", y[0], want)
	}
	// Eval mode with the batch's own biased statistics gives the same output.
	ye := make([]float64, len(x))
	BatchNormEval(2, 2, 2, 0, Act{}, ye, x, []float64{1, 1}, []float64{0, 0}, mean, []float64{1.25, 1})
	for i := 0; i < 2; i++ {
		if math.Abs(ye[i]-y[i]) > 1e-15 || math.Abs(ye[4+i]-y[4+i]) > 1e-15 {
			t.Fatalf("eval %v != train %v", ye, y)
		}
	}
}

func TestCenterPlanes(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	const planes, plane = 4, 9
	x := randSlice[float64](r, planes*plane)
	y := make([]float64, len(x))
	CenterPlanes(planes, plane, y, x)
	for p := 0; p < planes; p++ {
		var s float64
		for _, v := range y[p*plane : (p+1)*plane] {
			s += v
		}
		if math.Abs(s) > 1e-12 {
			t.Errorf("plane %d sums to %g", p, s)
		}
		if d := (x[p*plane] - y[p*plane]) - (x[p*plane+1] - y[p*plane+1]); math.Abs(d) > 1e-12 {
			t.Errorf("plane %d: not a constant shift", p)
		}
	}
	// The gradient of sum(CenterPlanes(x) * w) is CenterPlanes(w).
	w := randSlice[float64](r, planes*plane)
	dx := make([]float64, len(x))
	CenterPlanes(planes, plane, dx, w)
	loss := func() float64 {
		CenterPlanes(planes, plane, y, x)
		var s float64
		for i := range y {
			s += y[i] * w[i]
		}
		return s
	}
	if _, err := gradcheck.Check(loss, []gradcheck.Param{{Name: "x", Value: x, Grad: dx}}, gradcheck.Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestBatchNormBackwardParts checks that dx, dgamma and dbeta asked for one
// at a time (as the model asks) agree with all three at once, on planes
// and channel counts that split unevenly over the workers.
func TestBatchNormBackwardParts(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 3))
	for _, w := range []int{1, 3} {
		old := SetWorkers(w)
		for _, act := range []Act{{}, {Kind: LeakyReLU, Slope: 0.2}} {
			const n, c, plane = 3, 7, 13
			x, dy := randSlice[float32](r, n*c*plane), randSlice[float32](r, n*c*plane)
			gamma, beta := randSlice[float32](r, c), randSlice[float32](r, c)
			y := make([]float32, len(x))
			BatchNormTrain(n, c, plane, 1e-5, act, y, x, gamma, beta, nil, nil)
			dx, dg, db := make([]float32, len(x)), make([]float32, c), make([]float32, c)
			BatchNormTrainBackward(n, c, plane, 1e-5, act, dx, dg, db, x, gamma, y, dy)
			dx1, dg1, db1 := make([]float32, len(x)), make([]float32, c), make([]float32, c)
			BatchNormTrainBackward(n, c, plane, 1e-5, act, dx1, nil, nil, x, gamma, y, dy)
			BatchNormTrainBackward(n, c, plane, 1e-5, act, nil, dg1, nil, x, gamma, y, dy)
			BatchNormTrainBackward(n, c, plane, 1e-5, act, nil, nil, db1, x, gamma, y, dy)
			for _, p := range [][2][]float32{{dx, dx1}, {dg, dg1}, {db, db1}} {
				if e := maxRelErr(p[1], p[0]); !(e <= 1e-6) {
					t.Fatalf("workers %d %v: rel err %.3g", w, act, e)
				}
			}
		}
		SetWorkers(old)
	}
}
