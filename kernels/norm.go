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
	var s float64
	for _, v := range xs {
		s += float64(v)
	}
	mean = s / float64(len(xs))
	var ss float64
	for _, v := range xs {
		d := float64(v) - mean
		ss += d * d
	}
	return mean, 1 / math.Sqrt(ss/float64(len(xs))+eps)
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
	parallelFor(planes, 4, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			xs, ys, gs, ds := x[p*plane:(p+1)*plane], y[p*plane:(p+1)*plane], dy[p*plane:(p+1)*plane], dx[p*plane:(p+1)*plane]
			mean, inv := moments(xs, eps)
			slope := act.slope()
			var sg, sgx float64
			for i, v := range xs {
				g := float64(gs[i])
				if act.Kind != Identity && ys[i] <= 0 {
					g *= slope
				}
				sg += g
				sgx += g * (float64(v) - mean) * inv
			}
			n := float64(plane)
			mg, mgx := sg/n, sgx/n
			for i, v := range xs {
				g := float64(gs[i])
				if act.Kind != Identity && ys[i] <= 0 {
					g *= slope
				}
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
	for ch := 0; ch < c; ch++ {
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
		g, b := float64(gamma[ch]), float64(beta[ch])
		for i := 0; i < n; i++ {
			xs := x[(i*c+ch)*plane:][:plane]
			ys := y[(i*c+ch)*plane:][:plane]
			for j, v := range xs {
				ys[j] = T(g*(float64(v)-mu)*inv + b)
			}
			ActInPlace(act, ys)
		}
	}
}

// batchMoments returns the mean, 1/sqrt(biased var + eps) and the sum of
// squared deviations of channel ch.
func batchMoments[T Float](n, c, plane, ch int, x []T, eps float64) (mu, inv, ss float64) {
	var s float64
	for i := 0; i < n; i++ {
		for _, v := range x[(i*c+ch)*plane:][:plane] {
			s += float64(v)
		}
	}
	m := float64(n * plane)
	mu = s / m
	for i := 0; i < n; i++ {
		for _, v := range x[(i*c+ch)*plane:][:plane] {
			d := float64(v) - mu
			ss += d * d
		}
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
	slope := act.slope()
	grad := func(i, ch, j int) float64 {
		k := (i*c+ch)*plane + j
		g := float64(dy[k])
		if act.Kind != Identity && y[k] <= 0 {
			g *= slope
		}
		return g
	}
	for ch := 0; ch < c; ch++ {
		mu, inv, _ := batchMoments(n, c, plane, ch, x, eps)
		var sg, sgx float64
		for i := 0; i < n; i++ {
			for j, v := range x[(i*c+ch)*plane:][:plane] {
				g := grad(i, ch, j)
				sg += g
				sgx += g * (float64(v) - mu) * inv
			}
		}
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
			xs := x[(i*c+ch)*plane:][:plane]
			ds := dx[(i*c+ch)*plane:][:plane]
			for j, v := range xs {
				xh := (float64(v) - mu) * inv
				ds[j] = T(k * (m*grad(i, ch, j) - sg - xh*sgx))
			}
		}
	}
}

// BatchNormEval applies batch normalisation with fixed statistics (PyTorch's
// eval mode), followed by act:
//
//	y = act(gamma * (x - runMean) / sqrt(runVar + eps) + beta)
func BatchNormEval[T Float](n, c, plane int, eps float64, act Act, y, x, gamma, beta, runMean, runVar []T) {
	if len(x) != n*c*plane || len(y) != len(x) || len(gamma) != c || len(beta) != c || len(runMean) != c || len(runVar) != c {
		panic(fmt.Sprintf("kernels: BatchNormEval: bad lengths for %dx%dx%d", n, c, plane))
	}
	for ch := 0; ch < c; ch++ {
		scale := float64(gamma[ch]) / math.Sqrt(float64(runVar[ch])+eps)
		shift := float64(beta[ch]) - scale*float64(runMean[ch])
		for i := 0; i < n; i++ {
			ys := y[(i*c+ch)*plane:][:plane]
			for j, v := range x[(i*c+ch)*plane:][:plane] {
				ys[j] = T(scale*float64(v) + shift)
			}
			ActInPlace(act, ys)
		}
	}
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
