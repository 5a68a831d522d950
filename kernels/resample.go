package kernels

import (
	"fmt"
	"math"
)

// UpsampleNearestRef is the reference of UpsampleNearest: for each of
// planes planes of h x w,
//
//	y[p, i, j] = x[p, i/r, j/r]      (0 <= i < h*r, 0 <= j < w*r)
//
// which is PyTorch's F.interpolate(x, scale_factor=r, mode='nearest') for
// an integer factor r (the source index floor(i/r)).
func UpsampleNearestRef[T Float](planes, h, w, r int, y, x []T) {
	checkUpsample("UpsampleNearestRef", planes, h, w, r, len(y), len(x))
	for p := 0; p < planes; p++ {
		for i := 0; i < h*r; i++ {
			for j := 0; j < w*r; j++ {
				y[(p*h*r+i)*w*r+j] = x[(p*h+i/r)*w+j/r]
			}
		}
	}
}

// UpsampleNearest is UpsampleNearestRef, row by row: each source row is
// widened once and copied to its r output rows; planes run in parallel.
func UpsampleNearest[T Float](planes, h, w, r int, y, x []T) {
	checkUpsample("UpsampleNearest", planes, h, w, r, len(y), len(x))
	wr := w * r
	parallelFor(planes, 1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			src := x[p*h*w : (p+1)*h*w]
			dst := y[p*h*r*wr : (p+1)*h*r*wr]
			for i := 0; i < h; i++ {
				row := dst[i*r*wr : (i*r+1)*wr]
				for j, v := range src[i*w : (i+1)*w] {
					for k := 0; k < r; k++ {
						row[j*r+k] = v
					}
				}
				for k := 1; k < r; k++ {
					copy(dst[(i*r+k)*wr:(i*r+k+1)*wr], row)
				}
			}
		}
	})
}

// UpsampleNearestBackward is the gradient of UpsampleNearest: each input
// pixel receives the sum of the gradients of the r x r output pixels it
// was copied to,
//
//	dx[p, a, b] = sum_{u, v < r} dy[p, a*r+u, b*r+v].
//
// The formula is its own reference; the gradient is checked against
// central differences.
func UpsampleNearestBackward[T Float](planes, h, w, r int, dx, dy []T) {
	checkUpsample("UpsampleNearestBackward", planes, h, w, r, len(dy), len(dx))
	wr := w * r
	parallelFor(planes, 1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			src := dy[p*h*r*wr : (p+1)*h*r*wr]
			dst := dx[p*h*w : (p+1)*h*w]
			for a := 0; a < h; a++ {
				for b := 0; b < w; b++ {
					var s T
					for u := 0; u < r; u++ {
						row := src[(a*r+u)*wr+b*r:][:r]
						for _, v := range row {
							s += v
						}
					}
					dst[a*w+b] = s
				}
			}
		}
	})
}

func checkUpsample(name string, planes, h, w, r, ly, lx int) {
	if planes < 0 || h < 1 || w < 1 || r < 1 || lx != planes*h*w || ly != lx*r*r {
		panic(fmt.Sprintf("kernels: %s: %d and %d elements for %d planes of %dx%d upsampled by %d", name, ly, lx, planes, h, w, r))
	}
}

// MaxPool2Ref is the reference of MaxPool2: a 2x2 max-pool of stride 2
// without padding over planes planes of h x w (PyTorch's MaxPool2d(2, 2):
// output (h/2) x (w/2), a trailing odd row or column dropped),
//
//	y[p, i, j] = max_{u, v < 2} x[p, 2i+u, 2j+v],
//
// the first maximum in row-major order winning a tie (which decides where
// MaxPool2Backward sends the gradient), as PyTorch's CPU kernel; NaN
// propagates.
func MaxPool2Ref[T Float](planes, h, w int, y, x []T) {
	checkPool("MaxPool2Ref", planes, h, w, len(y), len(x))
	oh, ow := h/2, w/2
	for p := 0; p < planes; p++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				_, v := argmax2(x[p*h*w:(p+1)*h*w], w, 2*i, 2*j)
				y[(p*oh+i)*ow+j] = v
			}
		}
	}
}

// argmax2 returns the index within the plane and the value of the first
// maximum of the 2x2 window at (i, j), a NaN counting as the maximum.
func argmax2[T Float](plane []T, w, i, j int) (int, T) {
	best := i*w + j
	m := plane[best]
	for _, k := range [3]int{i*w + j + 1, (i+1)*w + j, (i+1)*w + j + 1} {
		if v := plane[k]; v > m || math.IsNaN(float64(v)) && !math.IsNaN(float64(m)) {
			best, m = k, v
		}
	}
	return best, m
}

// MaxPool2 is MaxPool2Ref with the planes in parallel.
func MaxPool2[T Float](planes, h, w int, y, x []T) {
	checkPool("MaxPool2", planes, h, w, len(y), len(x))
	oh, ow := h/2, w/2
	parallelFor(planes, 1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			plane := x[p*h*w : (p+1)*h*w]
			out := y[p*oh*ow : (p+1)*oh*ow]
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					_, out[i*ow+j] = argmax2(plane, w, 2*i, 2*j)
				}
			}
		}
	})
}

// MaxPool2Backward is the gradient of MaxPool2: each output's gradient goes
// to the input pixel that was its maximum (the first, on a tie); every
// other pixel gets zero. x is the pooled input.
func MaxPool2Backward[T Float](planes, h, w int, dx, x, dy []T) {
	checkPool("MaxPool2Backward", planes, h, w, len(dy), len(x))
	if len(dx) != len(x) {
		panic(fmt.Sprintf("kernels: MaxPool2Backward: dx has %d elements, x %d", len(dx), len(x)))
	}
	oh, ow := h/2, w/2
	parallelFor(planes, 1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			plane := x[p*h*w : (p+1)*h*w]
			d := dx[p*h*w : (p+1)*h*w]
			clear(d)
			g := dy[p*oh*ow : (p+1)*oh*ow]
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					k, _ := argmax2(plane, w, 2*i, 2*j)
					d[k] += g[i*ow+j]
				}
			}
		}
	})
}

func checkPool(name string, planes, h, w, ly, lx int) {
	if planes < 0 || h < 2 || w < 2 || lx != planes*h*w || ly != planes*(h/2)*(w/2) {
		panic(fmt.Sprintf("kernels: %s: %d and %d elements for %d planes of %dx%d pooled 2x2", name, ly, lx, planes, h, w))
	}
}
