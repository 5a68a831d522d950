package kernels

import (
	"fmt"
	"math"
)

// Softmax normalises x, viewed as outer x dim x inner, along the middle
// axis: y[o,d,i] = exp(x[o,d,i] - m) / sum_d' exp(x[o,d',i] - m) with m the
// maximum over d. inner is 1 for the last axis; the kernel network's
// channel softmax over N x KS*KS x h x w has outer N, dim KS*KS, inner h*w.
// Reference and fast path are the same code: it is a few passes over memory.
func Softmax[T Float](outer, dim, inner int, y, x []T) {
	if len(x) != outer*dim*inner || len(y) != len(x) {
		panic(fmt.Sprintf("kernels: Softmax: %d and %d elements for %dx%dx%d", len(x), len(y), outer, dim, inner))
	}
	for o := 0; o < outer; o++ {
		base := o * dim * inner
		for i := 0; i < inner; i++ {
			m := math.Inf(-1)
			for d := 0; d < dim; d++ {
				m = math.Max(m, float64(x[base+d*inner+i]))
			}
			var sum float64
			for d := 0; d < dim; d++ {
				e := math.Exp(float64(x[base+d*inner+i]) - m)
				y[base+d*inner+i] = T(e)
				sum += e
			}
			inv := 1 / sum
			for d := 0; d < dim; d++ {
				y[base+d*inner+i] = T(float64(y[base+d*inner+i]) * inv)
			}
		}
	}
}

// SoftmaxBackward writes dx = y * (dy - sum_d(dy * y)) for the softmax y
// computed by Softmax with the same layout. dx may alias dy.
func SoftmaxBackward[T Float](outer, dim, inner int, dx, y, dy []T) {
	if len(y) != outer*dim*inner || len(dy) != len(y) || len(dx) != len(y) {
		panic(fmt.Sprintf("kernels: SoftmaxBackward: %d, %d, %d elements for %dx%dx%d", len(dx), len(y), len(dy), outer, dim, inner))
	}
	for o := 0; o < outer; o++ {
		base := o * dim * inner
		for i := 0; i < inner; i++ {
			var dot T
			for d := 0; d < dim; d++ {
				dot += dy[base+d*inner+i] * y[base+d*inner+i]
			}
			for d := 0; d < dim; d++ {
				j := base + d*inner + i
				dx[j] = y[j] * (dy[j] - dot)
			}
		}
	}
}
