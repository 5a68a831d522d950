package kernels

import "fmt"

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
	s := T(a.slope())
	for i, x := range v {
		if x < 0 {
			v[i] = s * x
		}
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
	s := T(a.slope())
	for i, v := range y {
		if v > 0 {
			dpre[i] = dy[i]
		} else {
			dpre[i] = s * dy[i]
		}
	}
}
