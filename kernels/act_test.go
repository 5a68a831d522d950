package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestActExact checks that the branch-free activation loops give exactly
// the results of the plain ones, zeros, infinities and NaN included.
func TestActExact(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	special := []float64{0, math.Copysign(0, -1), 1, -1, math.Inf(1), math.Inf(-1), math.NaN(), 1e-40, -1e-40}
	for _, a := range []Act{{Kind: ReLU}, {Kind: LeakyReLU, Slope: 0.2}, {Kind: LeakyReLU, Slope: 1.5}} {
		x := append(randSlice[float64](r, 200), special...)
		dy := randSlice[float64](r, len(x))
		for i := range dy[:len(special)] {
			dy[i] = special[len(special)-1-i]
		}
		checkAct(t, a, x, dy)
		x32, dy32 := make([]float32, len(x)), make([]float32, len(x))
		for i := range x {
			x32[i], dy32[i] = float32(x[i]), float32(dy[i])
		}
		checkAct(t, a, x32, dy32)
	}
}

func checkAct[T Float](t *testing.T, a Act, x, dy []T) {
	t.Helper()
	s := T(a.slope())
	got := append([]T(nil), x...)
	ActInPlace(a, got)
	gotB := make([]T, len(x))
	ActBackward(a, gotB, got, dy)
	for i, v := range x {
		want := v
		if v < 0 {
			want = s * v
		}
		if !sameBits(got[i], want) {
			t.Fatalf("%v: act(%v) = %v, want %v", a, v, got[i], want)
		}
		wantB := s * dy[i]
		if got[i] > 0 {
			wantB = dy[i]
		}
		if !sameBits(gotB[i], wantB) {
			t.Fatalf("%v: act'(%v)*%v = %v, want %v", a, got[i], dy[i], gotB[i], wantB)
		}
	}
}

func sameBits[T Float](a, b T) bool {
	if a != a && b != b {
		return true
	}
	return math.Float64bits(float64(a)) == math.Float64bits(float64(b))
}
