package kernels

import (
	"fmt"
	"math"
)

func sameLen(name string, n int, ls ...int) {
	for _, l := range ls {
		if l != n {
			panic(fmt.Sprintf("kernels: %s: operand lengths %d and %d differ", name, n, l))
		}
	}
}

// AddScaled writes y = a + s*b element-wise (a residual connection with
// EDSR's residual scale s). y may alias a or b.
func AddScaled[T Float](y, a, b []T, s T) {
	sameLen("AddScaled", len(y), len(a), len(b))
	// Large tensors are split over the cores (each element on its own, so
	// the result does not depend on the split).
	parallelFor(len(y), 1<<16, func(lo, hi int) {
		y, a, b := y[lo:hi], a[lo:hi], b[lo:hi]
		if s == 1 {
			for i := range y {
				y[i] = a[i] + b[i]
			}
			return
		}
		for i := range y {
			y[i] = a[i] + s*b[i]
		}
	})
}

// ChannelAffine writes y[n,c,:] = scale[c]*x[n,c,:] + shift[c] for x of
// shape n x len(scale) x plane (EDSR's mean shift and 255 scaling).
func ChannelAffine[T Float](n, plane int, scale, shift []float64, y, x []T) {
	c := len(scale)
	if len(shift) != c || len(x) != n*c*plane || len(y) != len(x) {
		panic(fmt.Sprintf("kernels: ChannelAffine: bad lengths (%d channels, %d, %d elements)", c, len(x), len(y)))
	}
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			sc, sh := T(scale[ch]), T(shift[ch])
			ys := y[(i*c+ch)*plane:][:plane]
			for j, v := range x[(i*c+ch)*plane:][:plane] {
				ys[j] = sc*v + sh
			}
		}
	}
}

// fourierTerms is the number of sine terms of FourierQuant (pdm-spec §2).
const fourierTerms = 5

// FourierQuant is the smooth approximation of rounding to multiples of
// 1/255 that PDM uses when it has no noise module (pdm-spec §2 step 3):
//
//	q(t) = t + sum_{i=1..5} (-1)^i sin(2*pi*i*255*t) / (pi*i*255)
//
// computed in float64.
func FourierQuant[T Float](y, x []T) {
	sameLen("FourierQuant", len(y), len(x))
	for j, v := range x {
		t := float64(v)
		s := t
		for i := 1; i <= fourierTerms; i++ {
			term := math.Sin(2*math.Pi*float64(i)*255*t) / (math.Pi * float64(i) * 255)
			if i%2 == 1 {
				s -= term
			} else {
				s += term
			}
		}
		y[j] = T(s)
	}
}

// FourierQuantBackward writes dx = dy * q'(x), with
// q'(t) = 1 + sum_{i=1..5} (-1)^i 2 cos(2*pi*i*255*t).
func FourierQuantBackward[T Float](dx, x, dy []T) {
	sameLen("FourierQuantBackward", len(dx), len(x), len(dy))
	for j, v := range x {
		t := float64(v)
		d := 1.0
		for i := 1; i <= fourierTerms; i++ {
			term := 2 * math.Cos(2*math.Pi*float64(i)*255*t)
			if i%2 == 1 {
				d -= term
			} else {
				d += term
			}
		}
		dx[j] = T(float64(dy[j]) * d)
	}
}

// MeanSquare returns mean((x - target)^2), accumulated in float64: the
// LSGAN losses (targets 1 and 0) and the noise regulariser mean(n^2).
func MeanSquare[T Float](x []T, target float64) float64 {
	var s float64
	for _, v := range x {
		d := float64(v) - target
		s += d * d
	}
	return s / float64(len(x))
}

// MeanSquareBackward writes dx = g * 2 (x - target) / len(x).
func MeanSquareBackward[T Float](dx, x []T, target, g float64) {
	sameLen("MeanSquareBackward", len(dx), len(x))
	k := 2 * g / float64(len(x))
	for i, v := range x {
		dx[i] = T(k * (float64(v) - target))
	}
}

// MeanAbsDiff returns mean(|a - b|) (the L1 loss), accumulated in float64.
func MeanAbsDiff[T Float](a, b []T) float64 {
	sameLen("MeanAbsDiff", len(a), len(b))
	var s float64
	for i, v := range a {
		s += math.Abs(float64(v) - float64(b[i]))
	}
	return s / float64(len(a))
}

// MeanAbsDiffBackward writes da = g * sign(a - b) / len(a) (zero where
// a == b, as PyTorch's L1 loss).
func MeanAbsDiffBackward[T Float](da, a, b []T, g float64) {
	sameLen("MeanAbsDiffBackward", len(da), len(a), len(b))
	k := T(g / float64(len(a)))
	for i, v := range a {
		switch {
		case v > b[i]:
			da[i] = k
		case v < b[i]:
			da[i] = -k
		default:
			da[i] = 0
		}
	}
}

// Quantize8 writes round(clamp(x, 0, 1) * 255) / 255 into y: an image
// stored with 8 bits, rounding half to even as torch.round does (the SR
// step's input, pdm-spec §4).
func Quantize8[T Float](y, x []T) {
	sameLen("Quantize8", len(y), len(x))
	for i, v := range x {
		f := math.Min(1, math.Max(0, float64(v)))
		if math.IsNaN(float64(v)) {
			f = 0
		}
		y[i] = T(math.RoundToEven(f*255) / 255)
	}
}

// CentroidPenalty returns the mean over the n kernels k (each ks x ks,
// row-major, summing to 1) of the squared distance between the kernel's
// centroid sum_uv k[u,v]*(u,v) and (c0, c0), in taps. It pins the sub-pixel
// phase of learned kernels, which unpaired adversarial training cannot see.
func CentroidPenalty[T Float](n, ks int, c0 float64, k []T) float64 {
	sameLen("CentroidPenalty", len(k), n*ks*ks)
	var s float64
	for i := 0; i < n; i++ {
		cu, cv := centroid(ks, k[i*ks*ks:(i+1)*ks*ks])
		s += (cu-c0)*(cu-c0) + (cv-c0)*(cv-c0)
	}
	return s / float64(n)
}

func centroid[T Float](ks int, k []T) (cu, cv float64) {
	for u := 0; u < ks; u++ {
		for v := 0; v < ks; v++ {
			w := float64(k[u*ks+v])
			cu += w * float64(u)
			cv += w * float64(v)
		}
	}
	return cu, cv
}

// CentroidPenaltyBackward writes dk = g * d CentroidPenalty / dk.
func CentroidPenaltyBackward[T Float](n, ks int, c0, g float64, dk, k []T) {
	sameLen("CentroidPenaltyBackward", len(dk), len(k), n*ks*ks)
	for i := 0; i < n; i++ {
		cu, cv := centroid(ks, k[i*ks*ks:(i+1)*ks*ks])
		a, b := 2*g*(cu-c0)/float64(n), 2*g*(cv-c0)/float64(n)
		for u := 0; u < ks; u++ {
			for v := 0; v < ks; v++ {
				dk[i*ks*ks+u*ks+v] = T(a*float64(u) + b*float64(v))
			}
		}
	}
}
