package kernels

import (
	"fmt"
	"math"
)

// InstanceNorm normalises each plane of x (N x C x plane) to zero mean and
// unit variance, then applies act (PyTorch InstanceNorm2d with
// affine=False and no running statistics, eps as given, biased variance):
//
//	y = act((x - mean) / sqrt(var + eps))
//
// Sums are taken in float64. Planes are spread over the cores.
func InstanceNorm[T Float](planes, plane int, eps float64, act Act, y, x []T) {
	if len(x) != planes*plane || len(y) != len(x) {
		panic(fmt.Sprintf("kernels: InstanceNorm: %d and %d elements for %d planes of %d", len(x), len(y), planes, plane))
	}
	parallelFor(planes, 4, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			xs, ys := x[p*plane:(p+1)*plane], y[p*plane:(p+1)*plane]
			mean, inv := moments(xs, eps)
			for i, v := range xs {
				ys[i] = T((float64(v) - mean) * inv)
			}
			ActInPlace(act, ys)
		}
	})
}

// moments returns the mean of xs and 1/sqrt(biased variance + eps).
func moments[T Float](xs []T, eps float64) (mean, invStd float64) {
	mean = sum64(xs) / float64(len(xs))
	return mean, 1 / math.Sqrt(sumSqDev64(xs, mean)/float64(len(xs))+eps)
}

// sum64 returns the sum of xs in float64, in four interleaved partial sums
// (one running sum waits on the latency of every addition).
func sum64[T Float](xs []T) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(xs); i += 4 {
		v := xs[i : i+4 : i+4]
		s0 += float64(v[0])
		s1 += float64(v[1])
		s2 += float64(v[2])
		s3 += float64(v[3])
	}
	for ; i < len(xs); i++ {
		s0 += float64(xs[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// sumSqDev64 returns the sum of (x - mean)^2 over xs in float64.
func sumSqDev64[T Float](xs []T, mean float64) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(xs); i += 4 {
		v := xs[i : i+4 : i+4]
		d0, d1, d2, d3 := float64(v[0])-mean, float64(v[1])-mean, float64(v[2])-mean, float64(v[3])-mean
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(xs); i++ {
		d := float64(xs[i]) - mean
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

// actGradScale returns the factor act'(pre) of the activation's derivative
// given its output y: 1 where y > 0 (or for the identity), the slope
// elsewhere; without a branch, as the signs are random.
type actGradScale struct{ one, slope uint64 }

func newActGradScale(act Act) actGradScale {
	g := actGradScale{one: math.Float64bits(1), slope: math.Float64bits(act.slope())}
	if act.Kind == Identity {
		g.slope = g.one
	}
	return g
}

func (g actGradScale) at(y float64) float64 {
	m := g.slope
	if !(y <= 0) {
		m = g.one
	}
	return math.Float64frombits(m)
}

// gradSums returns sum g and sum g*(x-mu) over one plane, g = dy*act'(y).
func gradSums[T Float](ag actGradScale, xs, ys, dys []T, mu float64) (sg, sgx float64) {
	ys, dys = ys[:len(xs)], dys[:len(xs)]
	var g0, g1, x0, x1 float64
	i := 0
	for ; i+2 <= len(xs); i += 2 {
		a := float64(dys[i]) * ag.at(float64(ys[i]))
		b := float64(dys[i+1]) * ag.at(float64(ys[i+1]))
		g0 += a
		g1 += b
		x0 += a * (float64(xs[i]) - mu)
		x1 += b * (float64(xs[i+1]) - mu)
	}
	for ; i < len(xs); i++ {
		a := float64(dys[i]) * ag.at(float64(ys[i]))
		g0 += a
		x0 += a * (float64(xs[i]) - mu)
	}
	return g0 + g1, x0 + x1
}

// InstanceNormBackward writes dx given the input x, the output y of
// InstanceNorm (for the activation's derivative) and dy:
//
//	g  = dy * act'(y)
//	dx = invStd * (g - mean(g) - xhat * mean(g * xhat))
func InstanceNormBackward[T Float](planes, plane int, eps float64, act Act, dx, x, y, dy []T) {
	if len(x) != planes*plane || len(y) != len(x) || len(dy) != len(x) || len(dx) != len(x) {
		panic(fmt.Sprintf("kernels: InstanceNormBackward: %d, %d, %d, %d elements for %d planes of %d", len(dx), len(x), len(y), len(dy), planes, plane))
	}
	ag := newActGradScale(act)
	parallelFor(planes, 4, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			xs, ys, gs, ds := x[p*plane:(p+1)*plane], y[p*plane:(p+1)*plane], dy[p*plane:(p+1)*plane], dx[p*plane:(p+1)*plane]
			mean, inv := moments(xs, eps)
			sg, sgx := gradSums(ag, xs, ys, gs, mean)
			n := float64(plane)
			mg, mgx := sg/n, sgx*inv/n
			ys, gs, ds = ys[:len(xs)], gs[:len(xs)], ds[:len(xs)]
			for i, v := range xs {
				g := float64(gs[i]) * ag.at(float64(ys[i]))
				xh := (float64(v) - mean) * inv
				ds[i] = T(inv * (g - mg - xh*mgx))
			}
		}
	})
}

// BatchNormTrain is training-mode batch normalisation of x (N x C x plane)
// over the batch and the plane, followed by act:
//
//	y = act(gamma * (x - mean_c) / sqrt(var_c + eps) + beta)
//
// with the biased variance, as PyTorch's BatchNorm2d in train mode. It
// writes the batch mean and the unbiased variance of every channel into
// mean and varUnbiased (for the running statistics; either may be nil).
func BatchNormTrain[T Float](n, c, plane int, eps float64, act Act, y, x, gamma, beta, mean, varUnbiased []T) {
	if len(x) != n*c*plane || len(y) != len(x) || len(gamma) != c || len(beta) != c {
		panic(fmt.Sprintf("kernels: BatchNormTrain: %d, %d, %d, %d elements for %dx%dx%d", len(y), len(x), len(gamma), len(beta), n, c, plane))
	}
	m := n * plane
	// Channels are independent: spread over the cores.
	parallelFor(c, 1, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			mu, inv, ss := batchMoments(n, c, plane, ch, x, eps)
			if mean != nil {
				mean[ch] = T(mu)
			}
			if varUnbiased != nil {
				if m > 1 {
					varUnbiased[ch] = T(ss / float64(m-1))
				} else {
					varUnbiased[ch] = 0
				}
			}
			scale, b := float64(gamma[ch])*inv, float64(beta[ch])
			for i := 0; i < n; i++ {
				xs := x[(i*c+ch)*plane:][:plane]
				ys := y[(i*c+ch)*plane:][:plane]
				for j, v := range xs {
					ys[j] = T((float64(v)-mu)*scale + b)
				}
				ActInPlace(act, ys)
			}
		}
	})
}

// batchMoments returns the mean, 1/sqrt(biased var + eps) and the sum of
// squared deviations of channel ch.
func batchMoments[T Float](n, c, plane, ch int, x []T, eps float64) (mu, inv, ss float64) {
	var s float64
	for i := 0; i < n; i++ {
		s += sum64(x[(i*c+ch)*plane:][:plane])
	}
	m := float64(n * plane)
	mu = s / m
	for i := 0; i < n; i++ {
		ss += sumSqDev64(x[(i*c+ch)*plane:][:plane], mu)
	}
	return mu, 1 / math.Sqrt(ss/m+eps), ss
}

// BatchNormTrainBackward writes dx, dgamma and dbeta (any may be nil) for
// BatchNormTrain given x, gamma, the output y and dy, recomputing the batch
// statistics from x:
//
//	g      = dy * act'(y)
//	dbeta  = sum g,   dgamma = sum g * xhat
//	dx     = gamma * invStd / M * (M*g - dbeta - xhat * dgamma)
func BatchNormTrainBackward[T Float](n, c, plane int, eps float64, act Act, dx, dgamma, dbeta, x, gamma, y, dy []T) {
	if len(x) != n*c*plane || len(y) != len(x) || len(dy) != len(x) || len(gamma) != c {
		panic(fmt.Sprintf("kernels: BatchNormTrainBackward: %d, %d, %d, %d elements for %dx%dx%d", len(x), len(y), len(dy), len(gamma), n, c, plane))
	}
	m := float64(n * plane)
	ag := newActGradScale(act)
	// Channels are independent: spread over the cores. dbeta alone needs
	// no statistics.
	parallelFor(c, 1, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			var mu, inv float64
			if dx != nil || dgamma != nil {
				mu, inv, _ = batchMoments(n, c, plane, ch, x, eps)
			}
			var sg, sgx float64
			for i := 0; i < n; i++ {
				o := (i*c + ch) * plane
				xs, ys, dys := x[o:o+plane], y[o:o+plane], dy[o:o+plane]
				if dx == nil && dgamma == nil {
					for j, v := range dys {
						sg += float64(v) * ag.at(float64(ys[j]))
					}
					continue
				}
				a, b := gradSums(ag, xs, ys, dys, mu)
				sg += a
				sgx += b
			}
			sgx *= inv
			if dbeta != nil {
				dbeta[ch] = T(sg)
			}
			if dgamma != nil {
				dgamma[ch] = T(sgx)
			}
			if dx == nil {
				continue
			}
			k := float64(gamma[ch]) * inv / m
			for i := 0; i < n; i++ {
				o := (i*c + ch) * plane
				xs, ys, dys, ds := x[o:o+plane], y[o:o+plane], dy[o:o+plane], dx[o:o+plane]
				for j, v := range xs {
					xh := (float64(v) - mu) * inv
					ds[j] = T(k * (m*float64(dys[j])*ag.at(float64(ys[j])) - sg - xh*sgx))
				}
			}
		}
	})
}

// BatchNormEval applies batch normalisation with fixed statistics (PyTorch's
// eval mode), followed by act:
//
//	y = act(gamma * (x - runMean) / sqrt(runVar + eps) + beta)
func BatchNormEval[T Float](n, c, plane int, eps float64, act Act, y, x, gamma, beta, runMean, runVar []T) {
	if len(x) != n*c*plane || len(y) != len(x) || len(gamma) != c || len(beta) != c || len(runMean) != c || len(runVar) != c {
		panic(fmt.Sprintf("kernels: BatchNormEval: bad lengths for %dx%dx%d", n, c, plane))
	}
	// Planes are independent: spread over the cores.
	parallelFor(n*c, max(1, 16384/max(1, plane)), func(lo, hi int) {
		for p := lo; p < hi; p++ {
			ch := p % c
			scale := float64(gamma[ch]) / math.Sqrt(float64(runVar[ch])+eps)
			shift := float64(beta[ch]) - scale*float64(runMean[ch])
			ys := y[p*plane : (p+1)*plane]
			for j, v := range x[p*plane : (p+1)*plane] {
				ys[j] = T(scale*float64(v) + shift)
			}
			ActInPlace(act, ys)
		}
	})
}

// CenterPlanes writes y = x minus the mean of each of its planes (planes
// consecutive runs of plane values): a zero-mean constraint. Its gradient
// has the same form (CenterPlanes of dy), since the map is linear and
// symmetric.
func CenterPlanes[T Float](planes, plane int, y, x []T) {
	if len(x) != planes*plane || len(y) != len(x) {
		panic(fmt.Sprintf("kernels: CenterPlanes: %d and %d values for %d planes of %d", len(y), len(x), planes, plane))
	}
	for p := 0; p < planes; p++ {
		xs := x[p*plane : (p+1)*plane]
		var s float64
		for _, v := range xs {
			s += float64(v)
		}
		m := T(s / float64(plane))
		for i, v := range xs {
			y[p*plane+i] = v - m
		}
	}
}
