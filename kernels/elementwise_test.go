package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
)

func TestQuantize8(t *testing.T) {
	in := []float64{-0.1, 0, 0.5 / 255, 1.5 / 255, 0.5, 1, 7, math.NaN()}
	want := []float64{0, 0, 0, 2.0 / 255, 128.0 / 255, 1, 1, 0}
	got := make([]float64, len(in))
	Quantize8(got, in)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-15 {
			t.Errorf("Quantize8(%v) = %v, want %v", in[i], got[i], want[i])
		}
	}
}

func TestFourierQuantGradient(t *testing.T) {
	// The sines have a period of 1/255: use a step well below it.
	r := rand.New(rand.NewPCG(1, 1))
	x, rr := randSlice[float64](r, 20), randSlice[float64](r, 20)
	y := make([]float64, 20)
	loss := func() float64 { FourierQuant(y, x); return gradcheck.Dot(y, rr) }
	dx := make([]float64, 20)
	FourierQuantBackward(dx, x, rr)
	if _, err := gradcheck.Check(loss, []gradcheck.Param{{Name: "x", Value: x, Grad: dx}}, gradcheck.Options{Eps: 1e-8, Tol: 1e-5}); err != nil {
		t.Fatal(err)
	}
	// It approximates rounding: near k/255 it is flat and close to k/255.
	FourierQuant(y[:1], []float64{100.0 / 255})
	if math.Abs(y[0]-100.0/255) > 1e-12 {
		t.Errorf("q(100/255) = %v", y[0]*255)
	}
}

func TestLossGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	a, b := randSlice[float64](r, 30), randSlice[float64](r, 30)
	da := make([]float64, 30)
	MeanSquareBackward(da, a, 0.3, 2)
	if _, err := gradcheck.Check(func() float64 { return 2 * MeanSquare(a, 0.3) }, []gradcheck.Param{{Name: "a", Value: a, Grad: da}}, gradcheck.Options{}); err != nil {
		t.Fatal(err)
	}
	MeanAbsDiffBackward(da, a, b, 3)
	if _, err := gradcheck.Check(func() float64 { return 3 * MeanAbsDiff(a, b) }, []gradcheck.Param{{Name: "a", Value: a, Grad: da}}, gradcheck.Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestLSGANAgainstTorch(t *testing.T) {
	var v struct {
		LSGAN struct {
			DReal []float64 `json:"d_real"`
			DFake []float64 `json:"d_fake"`
			G     float64   `json:"g_loss"`
			D     float64   `json:"d_loss"`
		} `json:"lsgan"`
	}
	loadVectors(t, "norm_losses.json", &v)
	g := MeanSquare(v.LSGAN.DFake, 1)
	d := 0.5 * (MeanSquare(v.LSGAN.DReal, 1) + MeanSquare(v.LSGAN.DFake, 0))
	if math.Abs(g-v.LSGAN.G) > 1e-12 || math.Abs(d-v.LSGAN.D) > 1e-12 {
		t.Fatalf("g %v (torch %v), d %v (torch %v)", g, v.LSGAN.G, d, v.LSGAN.D)
	}
}

func TestCentroidPenalty(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	const n, ks = 3, 5
	k := make([]float64, n*ks*ks)
	for i := 0; i < n; i++ {
		var s float64
		for j := 0; j < ks*ks; j++ {
			k[i*ks*ks+j] = r.Float64()
			s += k[i*ks*ks+j]
		}
		for j := 0; j < ks*ks; j++ {
			k[i*ks*ks+j] /= s
		}
	}
	// A delta at (1, 3) has centroid (1, 3): penalty (1-2.5)^2 + (3-2.5)^2.
	delta := make([]float64, ks*ks)
	delta[1*ks+3] = 1
	if got := CentroidPenalty(1, ks, 2.5, delta); math.Abs(got-2.5) > 1e-12 {
		t.Errorf("delta: %g, want 2.5", got)
	}
	dk := make([]float64, len(k))
	CentroidPenaltyBackward(n, ks, 2.5, 0.7, dk, k)
	if _, err := gradcheck.Check(func() float64 { return 0.7 * CentroidPenalty(n, ks, 2.5, k) }, []gradcheck.Param{{Name: "k", Value: k, Grad: dk}}, gradcheck.Options{}); err != nil {
		t.Fatal(err)
	}
}
