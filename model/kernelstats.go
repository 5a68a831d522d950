package model

import "math"

// KernelStats summarises one blur kernel (non-negative, summing to 1) by
// its moments: the centroid relative to the centre tap, in HR pixels, and
// the standard deviations along its principal axes (SigmaMajor >=
// SigmaMinor), from the eigenvalues of its covariance.
type KernelStats struct {
	CY, CX                 float64
	SigmaMajor, SigmaMinor float64
	Angle                  float64 // of the major axis, radians from the x axis
}

// MeasureKernel computes the stats of a ks x ks kernel.
func MeasureKernel(k []float32, ks int) KernelStats {
	var sum, my, mx float64
	c := float64(ks / 2)
	for u := 0; u < ks; u++ {
		for v := 0; v < ks; v++ {
			w := float64(k[u*ks+v])
			sum += w
			my += w * (float64(u) - c)
			mx += w * (float64(v) - c)
		}
	}
	if sum <= 0 {
		return KernelStats{}
	}
	my /= sum
	mx /= sum
	var syy, sxx, sxy float64
	for u := 0; u < ks; u++ {
		for v := 0; v < ks; v++ {
			w := float64(k[u*ks+v]) / sum
			dy, dx := float64(u)-c-my, float64(v)-c-mx
			syy += w * dy * dy
			sxx += w * dx * dx
			sxy += w * dy * dx
		}
	}
	tr, det := sxx+syy, sxx*syy-sxy*sxy
	disc := math.Sqrt(math.Max(0, tr*tr/4-det))
	l1, l2 := tr/2+disc, math.Max(0, tr/2-disc)
	return KernelStats{CY: my, CX: mx, SigmaMajor: math.Sqrt(l1), SigmaMinor: math.Sqrt(l2), Angle: 0.5 * math.Atan2(2*sxy, sxx-syy)}
}

// KernelSpread summarises a batch of kernels: the mean width (geometric
// mean of the principal sigmas) and its standard deviation across the
// batch, the mean anisotropy (major/minor) and the mean centroid. A spread
// near zero means the kernel distribution has collapsed to one kernel.
type KernelSpread struct {
	MeanSigma, StdSigma float64
	MeanAniso           float64
	MeanCY, MeanCX      float64
}

// MeasureKernels computes the spread of n kernels of ks x ks stored one
// after another.
func MeasureKernels(ks []float32, n, size int) KernelSpread {
	var s KernelSpread
	if n == 0 {
		return s
	}
	sig := make([]float64, n)
	for i := 0; i < n; i++ {
		st := MeasureKernel(ks[i*size*size:(i+1)*size*size], size)
		sig[i] = math.Sqrt(st.SigmaMajor * st.SigmaMinor)
		s.MeanSigma += sig[i]
		if st.SigmaMinor > 0 {
			s.MeanAniso += st.SigmaMajor / st.SigmaMinor
		}
		s.MeanCY += st.CY
		s.MeanCX += st.CX
	}
	fn := float64(n)
	s.MeanSigma /= fn
	s.MeanAniso /= fn
	s.MeanCY /= fn
	s.MeanCX /= fn
	for _, v := range sig {
		s.StdSigma += (v - s.MeanSigma) * (v - s.MeanSigma)
	}
	s.StdSigma = math.Sqrt(s.StdSigma / fn)
	return s
}
