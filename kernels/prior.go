package kernels

import (
	"fmt"
	"math"
)

// Priors on learned blur kernels against collapse and degenerate kernels
// (issue 13), and the discriminator's minibatch standard deviation. Each is
// a plain reference function with its backward; values are accumulated in
// float64.
//
// Kernels are laid out as n x ks*ks x plane: plane 1 is one kernel per
// sample (N x ks*ks, row-major taps), plane h*w one kernel per sample and
// pixel (N x ks*ks x h x w, tap t of pixel p of sample i at
// k[(i*ks*ks+t)*plane+p]). Means are over the n*plane kernels.

func kernelLen(name string, n, ks, plane, l int) {
	if n < 1 || ks < 1 || plane < 1 || l != n*ks*ks*plane {
		panic(fmt.Sprintf("kernels: %s: %d values for %d kernels of %dx%d taps x %d pixels", name, l, n, ks, ks, plane))
	}
}

// KernelSmooth returns the mean over the kernels of
//
//	sum_{u,v} (k[u,v+1]-k[u,v])^2 + (k[u+1,v]-k[u,v])^2
//
// over the pairs of horizontally and vertically adjacent taps inside the
// ks x ks window. A kernel of isolated taps (a sparse "ring") costs far more
// than a smooth one of the same mass.
func KernelSmooth[T Float](n, ks, plane int, k []T) float64 {
	kernelLen("KernelSmooth", n, ks, plane, len(k))
	var s float64
	kk := ks * ks
	for i := 0; i < n; i++ {
		base := k[i*kk*plane : (i+1)*kk*plane]
		for u := 0; u < ks; u++ {
			for v := 0; v < ks; v++ {
				a := base[(u*ks+v)*plane:][:plane]
				if v+1 < ks {
					b := base[(u*ks+v+1)*plane:][:plane]
					for p, x := range a {
						d := float64(b[p]) - float64(x)
						s += d * d
					}
				}
				if u+1 < ks {
					b := base[((u+1)*ks+v)*plane:][:plane]
					for p, x := range a {
						d := float64(b[p]) - float64(x)
						s += d * d
					}
				}
			}
		}
	}
	return s / float64(n*plane)
}

// KernelSmoothBackward writes dk = g * d KernelSmooth / dk.
func KernelSmoothBackward[T Float](n, ks, plane int, g float64, dk, k []T) {
	kernelLen("KernelSmoothBackward", n, ks, plane, len(k))
	sameLen("KernelSmoothBackward", len(dk), len(k))
	kk := ks * ks
	c := 2 * g / float64(n*plane)
	acc := make([]float64, kk*plane)
	for i := 0; i < n; i++ {
		base := k[i*kk*plane : (i+1)*kk*plane]
		clear(acc)
		for u := 0; u < ks; u++ {
			for v := 0; v < ks; v++ {
				ia := (u*ks + v) * plane
				if v+1 < ks {
					smoothPair(acc, base, ia, ia+plane, plane, c)
				}
				if u+1 < ks {
					smoothPair(acc, base, ia, ia+ks*plane, plane, c)
				}
			}
		}
		out := dk[i*kk*plane : (i+1)*kk*plane]
		for j, v := range acc {
			out[j] = T(v)
		}
	}
}

// smoothPair adds the gradient of c/2 * (k[ib] - k[ia])^2 over a plane.
func smoothPair[T Float](acc []float64, k []T, ia, ib, plane int, c float64) {
	for p := 0; p < plane; p++ {
		d := c * (float64(k[ib+p]) - float64(k[ia+p]))
		acc[ib+p] += d
		acc[ia+p] -= d
	}
}

// radiusWeights returns max(0, |(u,v)-(cy,cx)| - r0)^2 for every tap.
func radiusWeights(ks int, cy, cx, r0 float64) []float64 {
	w := make([]float64, ks*ks)
	for u := 0; u < ks; u++ {
		for v := 0; v < ks; v++ {
			d := math.Hypot(float64(u)-cy, float64(v)-cx) - r0
			if d > 0 {
				w[u*ks+v] = d * d
			}
		}
	}
	return w
}

// KernelRadius returns the mean over the kernels of
//
//	sum_{u,v} k[u,v] * max(0, |(u,v) - (cy,cx)| - r0)^2
//
// with distances in taps: mass beyond r0 of the centre (cy, cx) costs
// quadratically in its excess distance. It is linear in k.
func KernelRadius[T Float](n, ks, plane int, cy, cx, r0 float64, k []T) float64 {
	kernelLen("KernelRadius", n, ks, plane, len(k))
	w := radiusWeights(ks, cy, cx, r0)
	kk := ks * ks
	var s float64
	for i := 0; i < n; i++ {
		for t, wt := range w {
			if wt == 0 {
				continue
			}
			for _, x := range k[(i*kk+t)*plane:][:plane] {
				s += wt * float64(x)
			}
		}
	}
	return s / float64(n*plane)
}

// KernelRadiusBackward writes dk = g * d KernelRadius / dk (which does not
// depend on k).
func KernelRadiusBackward[T Float](n, ks, plane int, cy, cx, r0, g float64, dk []T) {
	kernelLen("KernelRadiusBackward", n, ks, plane, len(dk))
	w := radiusWeights(ks, cy, cx, r0)
	kk := ks * ks
	c := g / float64(n*plane)
	for i := 0; i < n; i++ {
		for t, wt := range w {
			v := T(c * wt)
			out := dk[(i*kk+t)*plane:][:plane]
			for p := range out {
				out[p] = v
			}
		}
	}
}

func pairLen(name string, n, l int) int {
	if n < 2 || n%2 != 0 || l%n != 0 || l == 0 {
		panic(fmt.Sprintf("kernels: %s: %d values in a batch of %d: want an even batch of at least 2 equal samples", name, l, n))
	}
	return l / n
}

// PairAbsDiff returns the mean over the pairs (i, i+n/2), i < n/2, of the
// batch x (n samples of len(x)/n values each) and over the values of
// |x_i - x_{i+n/2}|: the distance between the two halves of a batch that
// mode seeking compares (for kernels and for their latents alike).
func PairAbsDiff[T Float](n int, x []T) float64 {
	m := pairLen("PairAbsDiff", n, len(x))
	half := len(x) / 2
	var s float64
	for j, a := range x[:half] {
		s += math.Abs(float64(a) - float64(x[half+j]))
	}
	return s / float64(n/2*m)
}

// PairAbsDiffBackward writes dx = g * d PairAbsDiff / dx (zero where the
// paired values are equal, as MeanAbsDiffBackward).
func PairAbsDiffBackward[T Float](n int, g float64, dx, x []T) {
	m := pairLen("PairAbsDiffBackward", n, len(x))
	sameLen("PairAbsDiffBackward", len(dx), len(x))
	half := len(x) / 2
	c := T(g / float64(n/2*m))
	for j, a := range x[:half] {
		b := x[half+j]
		switch {
		case a > b:
			dx[j], dx[half+j] = c, -c
		case a < b:
			dx[j], dx[half+j] = -c, c
		default:
			dx[j], dx[half+j] = 0, 0
		}
	}
}

// ModeSeeking returns Mao et al.'s (2019) mode-seeking term
// 1 / (PairAbsDiff(k) / dz + eps) for a batch of n samples k, where dz is
// the PairAbsDiff of the latents they were drawn from. Without a latent
// distance (dz not positive, or NaN) there is nothing to seek: it returns 0.
func ModeSeeking[T Float](n int, dz, eps float64, k []T) float64 {
	d := PairAbsDiff(n, k)
	if !(dz > 0) {
		return 0
	}
	return 1 / (d/dz + eps)
}

// ModeSeekingBackward writes dk = g * d ModeSeeking / dk: with
// r = PairAbsDiff(k)/dz, d/dk = -1 / (dz (r + eps)^2) * d PairAbsDiff / dk.
func ModeSeekingBackward[T Float](n int, dz, eps, g float64, dk, k []T) {
	if !(dz > 0) {
		pairLen("ModeSeekingBackward", n, len(k))
		sameLen("ModeSeekingBackward", len(dk), len(k))
		clear(dk)
		return
	}
	r := PairAbsDiff(n, k)/dz + eps
	PairAbsDiffBackward(n, -g/(dz*r*r), dk, k)
}

// MinibatchStdEps is added to the batch variance before the square root.
const MinibatchStdEps = 1e-8

// MinibatchStd writes y (n x (c+1) x plane): x (n x c x plane) followed,
// in each sample, by one channel filled with
//
//	s = mean over c and plane of sqrt(var_b(x[:,c,p]) + 1e-8)
//
// (biased variance over the batch), ProGAN's minibatch standard deviation
// (Karras et al. 2018). It returns s.
func MinibatchStd[T Float](n, c, plane int, y, x []T) float64 {
	if n < 1 || c < 1 || plane < 1 || len(x) != n*c*plane || len(y) != n*(c+1)*plane {
		panic(fmt.Sprintf("kernels: MinibatchStd: %d inputs and %d outputs for %d x %d x %d", len(x), len(y), n, c, plane))
	}
	cp := c * plane
	_, sd := minibatchMoments(n, cp, x)
	var s float64
	for _, v := range sd {
		s += v
	}
	s /= float64(cp)
	for i := 0; i < n; i++ {
		copy(y[i*(c+1)*plane:][:cp], x[i*cp:][:cp])
		ys := y[i*(c+1)*plane+cp:][:plane]
		for p := range ys {
			ys[p] = T(s)
		}
	}
	return s
}

// minibatchMoments returns, for every j, the mean over the batch of x[:, j]
// (x is n x cp) and sqrt(its biased variance + MinibatchStdEps).
func minibatchMoments[T Float](n, cp int, x []T) (mean, sd []float64) {
	mean, sd = make([]float64, cp), make([]float64, cp)
	for i := 0; i < n; i++ {
		for j, v := range x[i*cp:][:cp] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		for j, v := range x[i*cp:][:cp] {
			d := float64(v) - mean[j]
			sd[j] += d * d
		}
	}
	for j := range sd {
		sd[j] = math.Sqrt(sd[j]/float64(n) + MinibatchStdEps)
	}
	return mean, sd
}

// MinibatchStdBackward writes dx (n x c x plane) for the gradient dy
// (n x (c+1) x plane) of MinibatchStd's output: dy's first c channels plus,
// through s, G (x[b,j] - mean_j) / (n sd_j c plane), where G is the sum of
// dy's extra channel over the batch and the plane.
func MinibatchStdBackward[T Float](n, c, plane int, dx, x, dy []T) {
	if n < 1 || c < 1 || plane < 1 || len(x) != n*c*plane || len(dx) != len(x) || len(dy) != n*(c+1)*plane {
		panic(fmt.Sprintf("kernels: MinibatchStdBackward: %d inputs, %d gradients, %d output gradients for %d x %d x %d", len(x), len(dx), len(dy), n, c, plane))
	}
	cp := c * plane
	var gs float64
	for i := 0; i < n; i++ {
		for _, v := range dy[i*(c+1)*plane+cp:][:plane] {
			gs += float64(v)
		}
	}
	k := gs / float64(n*cp)
	mean, sd := minibatchMoments(n, cp, x)
	for i := 0; i < n; i++ {
		xs, ds, out := x[i*cp:][:cp], dy[i*(c+1)*plane:][:cp], dx[i*cp:][:cp]
		for j, v := range xs {
			out[j] = T(float64(ds[j]) + k*(float64(v)-mean[j])/sd[j])
		}
	}
}
