package kernels

import (
	"fmt"
	"math"
)

// ActKind names an activation that kernels can fuse into their output.
type ActKind uint8

const (
	Identity ActKind = iota
	ReLU
	LeakyReLU
)

// Act is an activation fused into a kernel's output: Identity, ReLU, or
// LeakyReLU with the given negative-side slope (PatchGAN uses 0.2).
type Act struct {
	Kind  ActKind
	Slope float64
}

// String gives the activation's name, as stored in model configs.
func (a Act) String() string {
	switch a.Kind {
	case Identity:
		return "identity"
	case ReLU:
		return "relu"
	case LeakyReLU:
		return fmt.Sprintf("leakyrelu(%g)", a.Slope)
	}
	return fmt.Sprintf("act(%d)", a.Kind)
}

func (a Act) slope() float64 {
	if a.Kind == LeakyReLU {
		return a.Slope
	}
	return 0
}

// ActInPlace applies a to every element of v.
func ActInPlace[T Float](a Act, v []T) {
	if a.Kind == Identity {
		return
	}
	switch vv := any(v).(type) {
	case []float32:
		actInPlace32(vv, float32(a.slope()))
	case []float64:
		actInPlace64(vv, a.slope())
	default:
		s := T(a.slope())
		for i, x := range v {
			if x < 0 {
				v[i] = s * x
			}
		}
	}
}

// The float32 and float64 loops multiply by 1 or by the slope, chosen with
// a conditional move on the bits: the signs of activations are random
// enough that a branch mispredicts about every other element. x*1 == x
// exactly, so the results are those of the branchy loops.

func actInPlace32(v []float32, s float32) {
	sb, one := math.Float32bits(s), math.Float32bits(1)
	for i, x := range v {
		m := one
		if x < 0 {
			m = sb
		}
		v[i] = x * math.Float32frombits(m)
	}
}

func actInPlace64(v []float64, s float64) {
	sb, one := math.Float64bits(s), math.Float64bits(1)
	for i, x := range v {
		m := one
		if x < 0 {
			m = sb
		}
		v[i] = x * math.Float64frombits(m)
	}
}

// ActBackward writes dpre = dy * a'(pre) into dpre, computing the
// derivative from the activation's output y (for ReLU and LeakyReLU with a
// positive slope the sign of the output is the sign of the input; at zero
// the derivative is taken from the left, as PyTorch does). dpre may alias dy.
func ActBackward[T Float](a Act, dpre, y, dy []T) {
	if len(dpre) != len(y) || len(dy) != len(y) {
		panic(fmt.Sprintf("kernels: ActBackward: lengths %d, %d, %d differ", len(dpre), len(y), len(dy)))
	}
	if a.Kind == Identity {
		copy(dpre, dy)
		return
	}
	switch dp := any(dpre).(type) {
	case []float32:
		actBackward32(dp, any(y).([]float32), any(dy).([]float32), float32(a.slope()))
	case []float64:
		actBackward64(dp, any(y).([]float64), any(dy).([]float64), a.slope())
	default:
		s := T(a.slope())
		for i, v := range y {
			if v > 0 {
				dpre[i] = dy[i]
			} else {
				dpre[i] = s * dy[i]
			}
		}
	}
}

func actBackward32(dpre, y, dy []float32, s float32) {
	sb, one := math.Float32bits(s), math.Float32bits(1)
	dpre, dy = dpre[:len(y)], dy[:len(y)]
	for i, v := range y {
		m := sb
		if v > 0 {
			m = one
		}
		dpre[i] = dy[i] * math.Float32frombits(m)
	}
}

func actBackward64(dpre, y, dy []float64, s float64) {
	sb, one := math.Float64bits(s), math.Float64bits(1)
	dpre, dy = dpre[:len(y)], dy[:len(y)]
	for i, v := range y {
		m := sb
		if v > 0 {
			m = one
		}
		dpre[i] = dy[i] * math.Float64frombits(m)
	}
}
