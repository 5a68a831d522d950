// Package synth builds target LR sets whose degradation is known: "real"
// low-resolution images made from photographs with a documented random
// degradation, the high-resolution photographs to degrade, validation pairs
// from photos used on neither side, and a manifest that records every LR
// image's true degradation (the truth file that package diversity compares
// a learned PDM with).
//
// A distribution (Params) is drawn independently for every LR image: a
// blur from a mixture of kernel families (anisotropic Gaussians, defocus
// disks, linear motion), centred on the middle of each Scale x Scale block
// (where a sensor pixel integrates light, not where PDM's blur samples)
// plus an optional sub-pixel phase, x Scale subsampling, then
// signal-dependent Gaussian noise n ~ N(0, read^2 + shot^2 * y), optionally
// shared between the colour channels and varying in level across the
// image, and rounding to 8 bits. Dists lists the documented distributions;
// the demo uses "default". PDM is told none of it.
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
)

// Blur kernel families.
const (
	Gaussian = "gaussian" // anisotropic Gaussian: principal sigmas and an angle
	Disk     = "disk"     // defocus: a uniform disk of a radius (anti-aliased)
	Motion   = "motion"   // linear motion: a segment of a length and angle, of Gaussian width
)

// Family is one component of a blur mixture.
type Family struct {
	Kind   string  `json:"kind"`
	Weight float64 `json:"weight"` // relative probability in the mixture
	// Gaussian: principal sigmas, each uniform in [SigmaMin, SigmaMax] HR
	// px (the larger is the major axis), at a uniform angle; Iso draws one
	// sigma for both.
	SigmaMin float64 `json:"sigma_min,omitempty"`
	SigmaMax float64 `json:"sigma_max,omitempty"`
	Iso      bool    `json:"iso,omitempty"`
	// Disk: radius uniform in [RadiusMin, RadiusMax] HR px.
	RadiusMin float64 `json:"radius_min,omitempty"`
	RadiusMax float64 `json:"radius_max,omitempty"`
	// Motion: length uniform in [LengthMin, LengthMax] HR px at a uniform
	// angle, the segment blurred by a Gaussian of sigma Width.
	LengthMin float64 `json:"length_min,omitempty"`
	LengthMax float64 `json:"length_max,omitempty"`
	Width     float64 `json:"width,omitempty"`
}

// Noise describes the noise distribution.
type Noise struct {
	// Per image: read noise std uniform in [ReadMin, ReadMax], signal-
	// dependent std at y = 1 uniform in [0, ShotMax] ([0,1] units).
	ReadMin float64 `json:"read_min"`
	ReadMax float64 `json:"read_max"`
	ShotMax float64 `json:"shot_max"`
	// Corr is the fraction of the noise variance that R, G and B share
	// (0: independent channels; luminance-like noise near 1).
	Corr float64 `json:"corr,omitempty"`
	// Vary makes the noise level vary across the image: the std is
	// multiplied by a linear ramp from 1-Vary to 1+Vary along a random
	// direction (0: the same level everywhere).
	Vary float64 `json:"vary,omitempty"`
}

// Params describe a degradation distribution.
type Params struct {
	Name       string   `json:"name"`
	Doc        string   `json:"doc,omitempty"`
	Scale      int      `json:"scale"`
	KernelSize int      `json:"kernel_size"`
	Blur       []Family `json:"blur"`
	// PhaseY, PhaseX move every kernel's centre from the middle of the
	// block by this many HR px (0, 0: aligned as MATLAB's imresize is).
	PhaseY float64 `json:"phase_y,omitempty"`
	PhaseX float64 `json:"phase_x,omitempty"`
	Noise  Noise   `json:"noise"`
}

// dists are the documented distributions, by name.
var dists = []Params{
	{Name: "default", Doc: "the demo's: anisotropic Gaussian blur, sigmas in [1.2, 3.2] HR px; read noise 2-6/255, shot noise up to 8/255",
		Blur:  []Family{{Kind: Gaussian, Weight: 1, SigmaMin: 1.2, SigmaMax: 3.2}},
		Noise: Noise{ReadMin: 2.0 / 255, ReadMax: 6.0 / 255, ShotMax: 8.0 / 255}},
	{Name: "narrow", Doc: "near bicubic: isotropic-ish Gaussians, sigmas in [0.7, 1.4] HR px; light noise (1-3/255 read, up to 3/255 shot)",
		Blur:  []Family{{Kind: Gaussian, Weight: 1, SigmaMin: 0.7, SigmaMax: 1.4}},
		Noise: Noise{ReadMin: 1.0 / 255, ReadMax: 3.0 / 255, ShotMax: 3.0 / 255}},
	{Name: "wide", Doc: "strong blur: anisotropic Gaussians, sigmas in [2.2, 4.5] HR px; the default's noise",
		Blur:  []Family{{Kind: Gaussian, Weight: 1, SigmaMin: 2.2, SigmaMax: 4.5}},
		Noise: Noise{ReadMin: 2.0 / 255, ReadMax: 6.0 / 255, ShotMax: 8.0 / 255}},
	{Name: "bimodal", Doc: "two kernel families, half each: sharp isotropic Gaussians (sigma 0.8-1.2) and wide anisotropic ones (sigmas 2.8-3.8); the default's noise",
		Blur: []Family{{Kind: Gaussian, Weight: 1, SigmaMin: 0.8, SigmaMax: 1.2, Iso: true},
			{Kind: Gaussian, Weight: 1, SigmaMin: 2.8, SigmaMax: 3.8}},
		Noise: Noise{ReadMin: 2.0 / 255, ReadMax: 6.0 / 255, ShotMax: 8.0 / 255}},
	{Name: "defocus", Doc: "defocus: uniform disks of radius 1.5-4.0 HR px; the default's noise",
		Blur:  []Family{{Kind: Disk, Weight: 1, RadiusMin: 1.5, RadiusMax: 4.0}},
		Noise: Noise{ReadMin: 2.0 / 255, ReadMax: 6.0 / 255, ShotMax: 8.0 / 255}},
	{Name: "motion", Doc: "linear motion: segments of 3-9 HR px at any angle, width sigma 0.6; the default's noise",
		Blur:  []Family{{Kind: Motion, Weight: 1, LengthMin: 3, LengthMax: 9, Width: 0.6}},
		Noise: Noise{ReadMin: 2.0 / 255, ReadMax: 6.0 / 255, ShotMax: 8.0 / 255}},
	{Name: "phase", Doc: "the default's blur and noise with every kernel centred 1.0 HR px right of and 0.75 below the block's middle",
		Blur:   []Family{{Kind: Gaussian, Weight: 1, SigmaMin: 1.2, SigmaMax: 3.2}},
		PhaseY: 0.75, PhaseX: 1.0,
		Noise: Noise{ReadMin: 2.0 / 255, ReadMax: 6.0 / 255, ShotMax: 8.0 / 255}},
	{Name: "correlated", Doc: "the default's blur; noise 80% shared by R, G and B (luminance noise), read 3-8/255, shot up to 8/255",
		Blur:  []Family{{Kind: Gaussian, Weight: 1, SigmaMin: 1.2, SigmaMax: 3.2}},
		Noise: Noise{ReadMin: 3.0 / 255, ReadMax: 8.0 / 255, ShotMax: 8.0 / 255, Corr: 0.8}},
	{Name: "varying", Doc: "the default's blur; noise whose level ramps across each image from 0.3x to 1.7x, read 3-8/255, shot up to 8/255",
		Blur:  []Family{{Kind: Gaussian, Weight: 1, SigmaMin: 1.2, SigmaMax: 3.2}},
		Noise: Noise{ReadMin: 3.0 / 255, ReadMax: 8.0 / 255, ShotMax: 8.0 / 255, Vary: 0.7}},
	{Name: "mixed", Doc: "as cameras: Gaussians (sigmas 1.0-2.8), disks (radius 1.5-3.5) and motion (3-7 px) in equal parts, phase (0.5, -0.5), noise 80% channel-correlated",
		Blur: []Family{{Kind: Gaussian, Weight: 1, SigmaMin: 1.0, SigmaMax: 2.8},
			{Kind: Disk, Weight: 1, RadiusMin: 1.5, RadiusMax: 3.5},
			{Kind: Motion, Weight: 1, LengthMin: 3, LengthMax: 7, Width: 0.6}},
		PhaseY: 0.5, PhaseX: -0.5,
		Noise: Noise{ReadMin: 2.0 / 255, ReadMax: 6.0 / 255, ShotMax: 8.0 / 255, Corr: 0.8}},
}

func init() {
	for i := range dists {
		dists[i].Scale, dists[i].KernelSize = 4, 21
	}
}

// Dists lists the documented distributions.
func Dists() []Params { return append([]Params(nil), dists...) }

// Dist returns the distribution of a name.
func Dist(name string) (Params, error) {
	for _, d := range dists {
		if d.Name == name {
			return d, nil
		}
	}
	names := make([]string, len(dists))
	for i, d := range dists {
		names[i] = d.Name
	}
	return Params{}, fmt.Errorf("synth: no distribution %q (have %s)", name, strings.Join(names, ", "))
}

// Default is the demo's distribution.
func Default() Params {
	d, _ := Dist("default")
	return d
}

// Validate reports parameters that cannot be drawn or applied.
func (p Params) Validate() error {
	if p.Scale < 2 || p.Scale > 4 || p.KernelSize < 3 || p.KernelSize%2 == 0 {
		return fmt.Errorf("synth: %s: scale %d and kernel size %d", p.Name, p.Scale, p.KernelSize)
	}
	if len(p.Blur) == 0 {
		return fmt.Errorf("synth: %s: no blur family", p.Name)
	}
	for _, f := range p.Blur {
		ok := f.Weight > 0
		switch f.Kind {
		case Gaussian:
			ok = ok && f.SigmaMin > 0 && f.SigmaMax >= f.SigmaMin
		case Disk:
			ok = ok && f.RadiusMin > 0 && f.RadiusMax >= f.RadiusMin
		case Motion:
			ok = ok && f.LengthMin >= 0 && f.LengthMax >= f.LengthMin && f.Width > 0
		default:
			ok = false
		}
		if !ok {
			return fmt.Errorf("synth: %s: blur family %+v", p.Name, f)
		}
	}
	n := p.Noise
	if n.ReadMin < 0 || n.ReadMax < n.ReadMin || n.ShotMax < 0 || n.Corr < 0 || n.Corr > 1 || n.Vary < 0 || n.Vary >= 1 {
		return fmt.Errorf("synth: %s: noise %+v", p.Name, n)
	}
	return nil
}

// Draw is one degradation drawn from a distribution, with the statistics
// of its kernel and noise that package diversity compares.
type Draw struct {
	Kind   string  `json:"kind"`
	Sigma1 float64 `json:"sigma1,omitempty"` // gaussian: major axis, HR px
	Sigma2 float64 `json:"sigma2,omitempty"` // gaussian: minor axis
	Theta  float64 `json:"theta,omitempty"`  // gaussian, motion: angle of the major axis, radians
	Radius float64 `json:"radius,omitempty"` // disk
	Length float64 `json:"length,omitempty"` // motion
	Read   float64 `json:"read"`
	Shot   float64 `json:"shot"`
	// VaryAngle is the direction of the noise level's ramp (radians).
	VaryAngle float64 `json:"vary_angle,omitempty"`

	// Stats of the kernel (its moments, as model.MeasureKernel measures a
	// learned one) and NoiseStd, the standard deviation of the noise added
	// to the image (before rounding): filled by Apply.
	Stats    model.KernelStats `json:"kernel_stats"`
	NoiseStd float64           `json:"noise_std"`
}

// Sample draws one degradation.
func (p Params) Sample(r *rand.Rand) Draw {
	var total float64
	for _, f := range p.Blur {
		total += f.Weight
	}
	// One family draws nothing for the choice, so that the default's draws
	// (and the demo's data) are those of earlier versions.
	f := p.Blur[len(p.Blur)-1]
	if len(p.Blur) > 1 {
		u := r.Float64() * total
		for _, c := range p.Blur {
			if u < c.Weight {
				f = c
				break
			}
			u -= c.Weight
		}
	}
	d := Draw{Kind: f.Kind}
	uni := func(lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }
	switch f.Kind {
	case Gaussian:
		a := uni(f.SigmaMin, f.SigmaMax)
		b := a
		if !f.Iso {
			b = uni(f.SigmaMin, f.SigmaMax)
		}
		d.Sigma1, d.Sigma2, d.Theta = math.Max(a, b), math.Min(a, b), math.Pi*r.Float64()
	case Disk:
		d.Radius = uni(f.RadiusMin, f.RadiusMax)
	case Motion:
		d.Length, d.Theta = uni(f.LengthMin, f.LengthMax), math.Pi*r.Float64()
	}
	d.Read = uni(p.Noise.ReadMin, p.Noise.ReadMax)
	d.Shot = p.Noise.ShotMax * r.Float64()
	if p.Noise.Vary > 0 {
		d.VaryAngle = 2 * math.Pi * r.Float64()
	}
	return d
}

func (p Params) family(kind string) Family {
	for _, f := range p.Blur {
		if f.Kind == kind {
			return f
		}
	}
	return Family{}
}

// Kernel returns the draw's blur as a KernelSize^2 kernel in PDM's blur
// convention (kernels.BlurDown samples at HR (s*i, s*j)): centred
// (Scale-1)/2 taps right of and below the window's centre, on the middle of
// each block, plus the phase. Disks and segments are integrated over 8x8
// points per tap, so that their edges are anti-aliased.
func (p Params) Kernel(d Draw) []float32 {
	ks := p.KernelSize
	cy := float64(ks/2) + float64(p.Scale-1)/2 + p.PhaseY
	cx := float64(ks/2) + float64(p.Scale-1)/2 + p.PhaseX
	k := make([]float64, ks*ks)
	const sub = 8
	switch d.Kind {
	case Disk:
		r2 := d.Radius * d.Radius
		for u := 0; u < ks; u++ {
			for v := 0; v < ks; v++ {
				n := 0
				for a := 0; a < sub; a++ {
					for b := 0; b < sub; b++ {
						dy := float64(u) - 0.5 + (float64(a)+0.5)/sub - cy
						dx := float64(v) - 0.5 + (float64(b)+0.5)/sub - cx
						if dy*dy+dx*dx <= r2 {
							n++
						}
					}
				}
				k[u*ks+v] = float64(n)
			}
		}
	case Motion:
		// A Gaussian of sigma Width at points spaced 1/sub HR px along the
		// segment.
		w := p.family(Motion).Width
		steps := int(math.Ceil(d.Length*sub)) + 1
		cos, sin := math.Cos(d.Theta), math.Sin(d.Theta)
		for i := 0; i < steps; i++ {
			t := -d.Length/2 + d.Length*float64(i)/float64(max(1, steps-1))
			py, px := cy+t*sin, cx+t*cos
			for u := 0; u < ks; u++ {
				for v := 0; v < ks; v++ {
					dy, dx := float64(u)-py, float64(v)-px
					k[u*ks+v] += math.Exp(-(dy*dy + dx*dx) / (2 * w * w))
				}
			}
		}
	default: // gaussian
		cos, sin := math.Cos(d.Theta), math.Sin(d.Theta)
		for u := 0; u < ks; u++ {
			for v := 0; v < ks; v++ {
				dy, dx := float64(u)-cy, float64(v)-cx
				a := dx*cos + dy*sin  // along the major axis
				b := -dx*sin + dy*cos // along the minor axis
				k[u*ks+v] = math.Exp(-0.5 * (a*a/(d.Sigma1*d.Sigma1) + b*b/(d.Sigma2*d.Sigma2)))
			}
		}
	}
	var sum float64
	for _, v := range k {
		sum += v
	}
	out := make([]float32, ks*ks)
	for i, v := range k {
		out[i] = float32(v / sum)
	}
	return out
}

// Apply degrades an HR image (3 x h x w in [0,1]) with d, drawing the
// noise from r, and returns the 8-bit-rounded LR image and its size. It
// fills d's kernel statistics and the standard deviation of the noise it
// added.
func (p Params) Apply(hr []float32, h, w int, d *Draw, r *rand.Rand) ([]float32, int, int, error) {
	s := kernels.BlurShape{N: 1, C: 3, H: h, W: w, KS: p.KernelSize, Scale: p.Scale}
	if err := s.Validate(); err != nil {
		return nil, 0, 0, err
	}
	k := p.Kernel(*d)
	d.Stats = model.MeasureKernel(k, p.KernelSize)
	oh, ow := s.OutH(), s.OutW()
	lr := make([]float32, 3*oh*ow)
	kernels.BlurDown(s, lr, hr, k)
	plane := oh * ow
	var ss float64
	if p.Noise.Corr == 0 && p.Noise.Vary == 0 {
		// Independent, uniform noise, drawn in the order earlier versions
		// drew it (the demo's data stay the same).
		for i, y := range lr {
			v := d.Read*d.Read + d.Shot*d.Shot*math.Max(0, float64(y))
			n := math.Sqrt(v) * r.NormFloat64()
			ss += n * n
			lr[i] = y + float32(n)
		}
		d.NoiseStd = math.Sqrt(ss / float64(len(lr)))
		kernels.Quantize8(lr, lr)
		return lr, oh, ow, nil
	}
	shared := math.Sqrt(p.Noise.Corr)
	own := math.Sqrt(1 - p.Noise.Corr)
	vc, vs := math.Cos(d.VaryAngle), math.Sin(d.VaryAngle)
	diag := math.Hypot(float64(oh-1), float64(ow-1)) / 2
	for i := 0; i < plane; i++ {
		y, x := i/ow, i%ow
		level := 1.0
		if p.Noise.Vary > 0 && diag > 0 {
			// The ramp's position along its direction, -1 .. 1 over the image.
			t := ((float64(x)-float64(ow-1)/2)*vc + (float64(y)-float64(oh-1)/2)*vs) / diag
			level = 1 + p.Noise.Vary*math.Max(-1, math.Min(1, t))
		}
		e := r.NormFloat64()
		for c := 0; c < 3; c++ {
			j := c*plane + i
			v := d.Read*d.Read + d.Shot*d.Shot*math.Max(0, float64(lr[j]))
			n := math.Sqrt(v) * level * (own*r.NormFloat64() + shared*e)
			ss += n * n
			lr[j] += float32(n)
		}
	}
	d.NoiseStd = math.Sqrt(ss / float64(3*plane))
	kernels.Quantize8(lr, lr)
	return lr, oh, ow, nil
}

// Names lists the distributions' names, sorted.
func Names() []string {
	var n []string
	for _, d := range dists {
		n = append(n, d.Name)
	}
	sort.Strings(n)
	return n
}
