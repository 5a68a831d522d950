// Package synth builds the demo's data: a set of "real" low-resolution
// images made from photographs with a documented random degradation, the
// high-resolution photographs to degrade, and validation pairs from photos
// used on neither side.
//
// The degradation is a distribution, drawn independently for every LR
// image: an anisotropic Gaussian blur (principal sigmas uniform in
// [SigmaMin, SigmaMax] HR pixels, uniform orientation) centred on the
// middle of each Scale x Scale block (where a sensor pixel integrates
// light, not where PDM's blur samples), x4 subsampling, then
// signal-dependent Gaussian noise n ~ N(0, read^2 + shot^2 * y) with read
// uniform in [ReadMin, ReadMax] and shot uniform in [0, ShotMax] (per image),
// and rounding to 8 bits. PDM is not told any of this.
package synth

import (
	"math"
	"math/rand/v2"

	"github.com/pdmflow/pdmflow/kernels"
)

// Params describe the degradation distribution.
type Params struct {
	Scale      int     `json:"scale"`
	KernelSize int     `json:"kernel_size"`
	SigmaMin   float64 `json:"sigma_min"` // HR pixels
	SigmaMax   float64 `json:"sigma_max"`
	ReadMin    float64 `json:"read_min"` // noise std in [0,1] units
	ReadMax    float64 `json:"read_max"`
	ShotMax    float64 `json:"shot_max"` // std at y = 1 from the signal-dependent part
}

// Default is the demo's distribution.
func Default() Params {
	return Params{Scale: 4, KernelSize: 21, SigmaMin: 1.2, SigmaMax: 3.2, ReadMin: 2.0 / 255, ReadMax: 6.0 / 255, ShotMax: 8.0 / 255}
}

// Draw is one degradation drawn from the distribution.
type Draw struct {
	Sigma1 float64 `json:"sigma1"` // major axis, HR px
	Sigma2 float64 `json:"sigma2"` // minor axis
	Theta  float64 `json:"theta"`  // orientation of the major axis, radians
	Read   float64 `json:"read"`
	Shot   float64 `json:"shot"`
}

// Sample draws one degradation.
func (p Params) Sample(r *rand.Rand) Draw {
	a := p.SigmaMin + (p.SigmaMax-p.SigmaMin)*r.Float64()
	b := p.SigmaMin + (p.SigmaMax-p.SigmaMin)*r.Float64()
	return Draw{
		Sigma1: math.Max(a, b),
		Sigma2: math.Min(a, b),
		Theta:  math.Pi * r.Float64(),
		Read:   p.ReadMin + (p.ReadMax-p.ReadMin)*r.Float64(),
		Shot:   p.ShotMax * r.Float64(),
	}
}

// Kernel returns the draw's blur as a KernelSize^2 kernel in PDM's blur
// convention (kernels.BlurDown samples at HR (s*i, s*j)), shifted by
// (Scale-1)/2 so that it is centred on the middle of each block.
func (p Params) Kernel(d Draw) []float32 {
	ks := p.KernelSize
	c := float64(ks/2) + float64(p.Scale-1)/2
	cos, sin := math.Cos(d.Theta), math.Sin(d.Theta)
	k := make([]float64, ks*ks)
	var sum float64
	for u := 0; u < ks; u++ {
		for v := 0; v < ks; v++ {
			dy, dx := float64(u)-c, float64(v)-c
			a := dx*cos + dy*sin  // along the major axis
			b := -dx*sin + dy*cos // along the minor axis
			w := math.Exp(-0.5 * (a*a/(d.Sigma1*d.Sigma1) + b*b/(d.Sigma2*d.Sigma2)))
			k[u*ks+v] = w
			sum += w
		}
	}
	out := make([]float32, ks*ks)
	for i, w := range k {
		out[i] = float32(w / sum)
	}
	return out
}

// Apply degrades an HR image (3 x h x w in [0,1]) with d, drawing the
// noise from r, and returns the 8-bit-rounded LR image and its size.
func (p Params) Apply(hr []float32, h, w int, d Draw, r *rand.Rand) ([]float32, int, int, error) {
	s := kernels.BlurShape{N: 1, C: 3, H: h, W: w, KS: p.KernelSize, Scale: p.Scale}
	if err := s.Validate(); err != nil {
		return nil, 0, 0, err
	}
	lr := make([]float32, 3*s.OutH()*s.OutW())
	kernels.BlurDown(s, lr, hr, p.Kernel(d))
	for i, y := range lr {
		v := d.Read*d.Read + d.Shot*d.Shot*math.Max(0, float64(y))
		lr[i] = y + float32(math.Sqrt(v)*r.NormFloat64())
	}
	kernels.Quantize8(lr, lr)
	return lr, s.OutH(), s.OutW(), nil
}
