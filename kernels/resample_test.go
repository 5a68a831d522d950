package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
)

func TestUpsampleNearest(t *testing.T) {
	// A known case: one 2x3 plane doubled.
	x := []float64{1, 2, 3, 4, 5, 6}
	want := []float64{
		1, 1, 2, 2, 3, 3,
		1, 1, 2, 2, 3, 3,
		4, 4, 5, 5, 6, 6,
		4, 4, 5, 5, 6, 6,
	}
	got := make([]float64, 24)
	UpsampleNearest(1, 2, 3, 2, got, x)
	if !slices.Equal(got, want) {
		t.Fatalf("UpsampleNearest = %v, want %v", got, want)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ planes, h, w, r int }{{1, 1, 1, 2}, {3, 5, 7, 2}, {6, 4, 3, 3}, {2, 9, 8, 1}} {
		x := randSlice[float32](r, c.planes*c.h*c.w)
		a := make([]float32, len(x)*c.r*c.r)
		b := make([]float32, len(a))
		UpsampleNearest(c.planes, c.h, c.w, c.r, a, x)
		UpsampleNearestRef(c.planes, c.h, c.w, c.r, b, x)
		if !slices.Equal(a, b) {
			t.Fatalf("%+v: fast path differs from the reference", c)
		}
		// The gradient against central differences of sum(y * rr).
		x64 := randSlice[float64](r, c.planes*c.h*c.w)
		rr := randSlice[float64](r, len(x64)*c.r*c.r)
		y := make([]float64, len(rr))
		dx := make([]float64, len(x64))
		UpsampleNearestBackward(c.planes, c.h, c.w, c.r, dx, rr)
		loss := func() float64 { UpsampleNearestRef(c.planes, c.h, c.w, c.r, y, x64); return gradcheck.Dot(y, rr) }
		if _, err := gradcheck.Check(loss, []gradcheck.Param{{Name: "x", Value: x64, Grad: dx}}, gradcheck.Options{}); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
	}
}

func TestMaxPool2(t *testing.T) {
	// A known case: a 3x5 plane (the odd row and column dropped), with a
	// tie in the second window: the first maximum wins the gradient.
	x := []float64{
		1, 5, 2, 2, 9,
		3, 4, 0, 2, 9,
		7, 7, 7, 7, 7,
	}
	y := make([]float64, 2)
	MaxPool2(1, 3, 5, y, x)
	if !slices.Equal(y, []float64{5, 2}) {
		t.Fatalf("MaxPool2 = %v, want [5 2]", y)
	}
	dx := make([]float64, 15)
	MaxPool2Backward(1, 3, 5, dx, x, []float64{10, 20})
	want := make([]float64, 15)
	want[1], want[2] = 10, 20 // the window at column 2 has 2 at (0,2), (0,3) and (1,3): (0,2) wins
	if !slices.Equal(dx, want) {
		t.Fatalf("MaxPool2Backward = %v, want %v", dx, want)
	}
	// NaN propagates.
	MaxPool2(1, 2, 2, y[:1], []float64{1, math.NaN(), 3, 2})
	if !math.IsNaN(y[0]) {
		t.Errorf("max of a window with NaN = %v", y[0])
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ planes, h, w int }{{1, 2, 2}, {4, 6, 8}, {3, 7, 5}, {5, 16, 16}} {
		x := randSlice[float32](r, c.planes*c.h*c.w)
		a := make([]float32, c.planes*(c.h/2)*(c.w/2))
		b := make([]float32, len(a))
		MaxPool2(c.planes, c.h, c.w, a, x)
		MaxPool2Ref(c.planes, c.h, c.w, b, x)
		if !slices.Equal(a, b) {
			t.Fatalf("%+v: fast path differs from the reference", c)
		}
		x64 := randSlice[float64](r, c.planes*c.h*c.w)
		rr := randSlice[float64](r, len(a))
		y := make([]float64, len(a))
		dx := make([]float64, len(x64))
		MaxPool2Backward(c.planes, c.h, c.w, dx, x64, rr)
		loss := func() float64 { MaxPool2Ref(c.planes, c.h, c.w, y, x64); return gradcheck.Dot(y, rr) }
		if _, err := gradcheck.Check(loss, []gradcheck.Param{{Name: "x", Value: x64, Grad: dx}}, gradcheck.Options{}); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
	}
}
