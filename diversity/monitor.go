package diversity

import (
	"fmt"
	"math"
	"sort"

	"github.com/pdmflow/pdmflow/model"
)

// Shape measures how physical one kernel is, against the Gaussian of the
// same moments (same centroid and covariance) on the same grid:
//
//   - Fill is exp(H(k) - H(g)), H the entropy of the taps: about 1 for
//     smooth kernels of any family (a disk is 0.7-0.8, a motion segment
//     0.8), far below 1 for a few isolated taps spread as wide as the
//     Gaussian (a sparse ring of a dozen taps 7 px out is about 0.03).
//   - HFExcess is the fraction of the kernel's energy at frequencies an LR
//     grid of the given scale cannot hold (above its Nyquist frequency on
//     either axis), minus the Gaussian's: what only aliasing explains.
//     Near 0 for smooth kernels; large for sparse or ringing ones.
type Shape struct {
	Fill, HFExcess float64
}

// MeasureShape computes the shape of a ks x ks kernel for an LR grid of
// the given scale.
func MeasureShape(k []float32, ks, scale int) Shape {
	st := model.MeasureKernel(k, ks)
	g := sameMomentGaussian(st, ks)
	kf := make([]float64, len(k))
	var sum float64
	for i, v := range k {
		kf[i] = math.Max(0, float64(v))
		sum += kf[i]
	}
	if sum <= 0 {
		return Shape{}
	}
	for i := range kf {
		kf[i] /= sum
	}
	return Shape{
		Fill:     math.Exp(entropy(kf) - entropy(g)),
		HFExcess: hfFraction(kf, ks, scale) - hfFraction(g, ks, scale),
	}
}

// sameMomentGaussian is the Gaussian with st's centroid and covariance on
// a ks x ks grid, normalised; a degenerate covariance gives the nearest
// taps.
func sameMomentGaussian(st model.KernelStats, ks int) []float64 {
	c := float64(ks / 2)
	cy, cx := c+st.CY, c+st.CX
	s1, s2 := math.Max(st.SigmaMajor, 0.05), math.Max(st.SigmaMinor, 0.05)
	cos, sin := math.Cos(st.Angle), math.Sin(st.Angle)
	g := make([]float64, ks*ks)
	var sum float64
	for u := 0; u < ks; u++ {
		for v := 0; v < ks; v++ {
			dy, dx := float64(u)-cy, float64(v)-cx
			a := dx*cos + dy*sin
			b := -dx*sin + dy*cos
			w := math.Exp(-0.5 * (a*a/(s1*s1) + b*b/(s2*s2)))
			g[u*ks+v] = w
			sum += w
		}
	}
	for i := range g {
		g[i] /= sum
	}
	return g
}

func entropy(p []float64) float64 {
	var h float64
	for _, v := range p {
		if v > 0 {
			h -= v * math.Log(v)
		}
	}
	return h
}

// hfFraction is the fraction of the energy of the kernel's 2-D DFT (on a
// 4*ks grid, zero-padded) at frequencies above 1/(2*scale) cycles per HR
// pixel on either axis. The DFT is separable: rows, then columns.
func hfFraction(k []float64, ks, scale int) float64 {
	n := 4 * ks
	// Row transforms: for each row u of the kernel, its n-point DFT.
	re := make([]float64, ks*n)
	im := make([]float64, ks*n)
	cosT, sinT := make([]float64, n), make([]float64, n)
	for i := range n {
		a := 2 * math.Pi * float64(i) / float64(n)
		cosT[i], sinT[i] = math.Cos(a), math.Sin(a)
	}
	for u := 0; u < ks; u++ {
		for f := 0; f < n; f++ {
			var r, s float64
			for v := 0; v < ks; v++ {
				w := k[u*ks+v]
				if w == 0 {
					continue
				}
				j := (f * v) % n
				r += w * cosT[j]
				s -= w * sinT[j]
			}
			re[u*n+f], im[u*n+f] = r, s
		}
	}
	nyq := float64(n) / float64(2*scale) // frequency index of the LR Nyquist
	var total, high float64
	for fy := 0; fy < n; fy++ {
		for fx := 0; fx < n; fx++ {
			var r, s float64
			for u := 0; u < ks; u++ {
				j := (fy * u) % n
				a, b := re[u*n+fx], im[u*n+fx]
				// (a + ib)(cos - i sin)
				r += a*cosT[j] + b*sinT[j]
				s += b*cosT[j] - a*sinT[j]
			}
			e := r*r + s*s
			total += e
			ay, ax := math.Min(float64(fy), float64(n-fy)), math.Min(float64(fx), float64(n-fx))
			if ay > nyq || ax > nyq {
				high += e
			}
		}
	}
	if total == 0 {
		return 0
	}
	return high / total
}

// Health is what the monitor measured at one step.
type Health struct {
	Step      int     `json:"step"`
	WidthMean float64 `json:"width_mean"` // kernel width, HR px
	WidthStd  float64 `json:"width_std"`  // its spread over kernels of different z
	AnisoStd  float64 `json:"aniso_std"`
	// NoiseStd is the spread of the noise level over the batch's images
	// (the standard deviation of the per-image noise standard deviations).
	NoiseStd float64 `json:"noise_level_std"`
	// PairRatio is the mean L1 distance between the kernels of two
	// latents over the mean distance between the latents: near 0 when
	// every z gives the same kernel.
	PairRatio float64 `json:"pair_ratio"`
	Fill      float64 `json:"fill"`      // mean Shape.Fill
	HFExcess  float64 `json:"hf_excess"` // mean Shape.HFExcess
	// Warnings are the conditions in force (see Monitor).
	Warnings []string `json:"warnings,omitempty"`
}

// MonitorConfig sets the monitor's thresholds.
type MonitorConfig struct {
	// CollapseFraction: a spread (kernel width, noise level) or the pair
	// ratio below this fraction of its running peak is a collapse.
	CollapseFraction float64
	// Warmup is how many observations pass before any warning: the
	// initial kernel is the same for every z.
	Warmup int
	// MinFill and MaxHFExcess: a mean Fill below, or a mean HFExcess above,
	// says the kernels turned sparse and aliasing.
	MinFill, MaxHFExcess float64
	// Persist is how many observations in a row a condition must hold
	// before it is a warning: one batch of 64 kernels (or 16 images) is a
	// noisy measure, and a warning should mean a trend.
	Persist int
}

// DefaultMonitorConfig are thresholds that stay quiet on the documented
// synthetic distributions' true kernels (smooth Gaussians, disks,
// segments) and catch a sparse ring.
func DefaultMonitorConfig() MonitorConfig {
	return MonitorConfig{CollapseFraction: 0.3, Warmup: 4, MinFill: 0.3, MaxHFExcess: 0.25, Persist: 3}
}

// Warning kinds.
const (
	WarnWidthCollapse = "kernel-width-collapse"
	WarnNoiseCollapse = "noise-level-collapse"
	WarnOneKernel     = "one-kernel"
	WarnSparse        = "sparse-kernels"
	WarnAliasing      = "aliasing-kernels"
)

// Monitor follows a PDM's distribution over training without a truth:
// Observe measures a batch of kernels drawn from different latents; its
// warnings compare smoothed measures (each observation averaged with the
// previous smoothed value) with their running peaks and thresholds, and
// fire when a condition held Persist observations in a row. Not safe for
// concurrent use.
type Monitor struct {
	cfg  MonitorConfig
	seen int
	// Smoothed measures (the mean of each observation and the previous
	// smoothed value) and the peaks of the smoothed spreads.
	width, noise, pair, fill, hf  float64
	peakWidth, peakNoise, peakPar float64
	streak                        map[string]int // observations in a row a condition held
}

// NewMonitor makes a monitor.
func NewMonitor(cfg MonitorConfig) *Monitor { return &Monitor{cfg: cfg} }

// Observe measures n kernels of ks x ks (k, one after another) drawn from
// the latents z (n x zDim; n even: kernel i is compared with kernel
// i+n/2), and the per-image noise levels of a batch (nil: none), and says
// which warnings are in force.
func (m *Monitor) Observe(step int, k []float32, n, ks, scale int, z []float32, zDim int, noiseLevels []float64) Health {
	h := Health{Step: step}
	s := FromKernels(k, n, ks, scale)
	h.WidthMean, h.WidthStd = meanStd(s[Width])
	_, h.AnisoStd = meanStd(s[Aniso])
	if len(noiseLevels) > 1 {
		_, h.NoiseStd = meanStd(noiseLevels)
	}
	var dk, dz float64
	half := n / 2
	for i := 0; i < half; i++ {
		a, b := k[i*ks*ks:(i+1)*ks*ks], k[(i+half)*ks*ks:(i+half+1)*ks*ks]
		for t := range a {
			dk += math.Abs(float64(a[t]) - float64(b[t]))
		}
		za, zb := z[i*zDim:(i+1)*zDim], z[(i+half)*zDim:(i+half+1)*zDim]
		for t := range za {
			dz += math.Abs(float64(za[t])-float64(zb[t])) / float64(zDim)
		}
	}
	if dz > 0 {
		h.PairRatio = dk / dz
	}
	for i := 0; i < n; i++ {
		sh := MeasureShape(k[i*ks*ks:(i+1)*ks*ks], ks, scale)
		h.Fill += sh.Fill / float64(n)
		h.HFExcess += sh.HFExcess / float64(n)
	}
	m.seen++
	smooth := func(prev *float64, x float64) float64 {
		if m.seen == 1 {
			*prev = x
		} else {
			*prev = (*prev + x) / 2
		}
		return *prev
	}
	width, noise, pair := smooth(&m.width, h.WidthStd), smooth(&m.noise, h.NoiseStd), smooth(&m.pair, h.PairRatio)
	fill, hf := smooth(&m.fill, h.Fill), smooth(&m.hf, h.HFExcess)
	if m.seen <= m.cfg.Warmup {
		return h
	}
	m.peakWidth = math.Max(m.peakWidth, width)
	m.peakNoise = math.Max(m.peakNoise, noise)
	m.peakPar = math.Max(m.peakPar, pair)
	if m.streak == nil {
		m.streak = map[string]int{}
	}
	f := m.cfg.CollapseFraction
	check := func(kind string, cond bool, format string, args ...any) {
		if !cond {
			m.streak[kind] = 0
			return
		}
		m.streak[kind]++
		if m.streak[kind] >= max(1, m.cfg.Persist) {
			h.Warnings = append(h.Warnings, kind+": "+fmt.Sprintf(format, args...))
		}
	}
	check(WarnWidthCollapse, m.peakWidth > 0 && width < f*m.peakWidth,
		"kernel width spread %.3g HR px is %.0f%% of its peak %.3g", width, 100*width/m.peakWidth, m.peakWidth)
	check(WarnNoiseCollapse, m.peakNoise > 0 && noise < f*m.peakNoise,
		"noise level spread %.3g is %.0f%% of its peak %.3g", noise, 100*noise/m.peakNoise, m.peakNoise)
	check(WarnOneKernel, m.peakPar > 0 && pair < f*m.peakPar,
		"kernels of different z differ by %.3g per unit of z distance, %.0f%% of the peak %.3g: converging to one kernel", pair, 100*pair/m.peakPar, m.peakPar)
	check(WarnSparse, fill < m.cfg.MinFill,
		"kernels fill %.2f of the taps a smooth kernel of their spread fills (below %.2f): sparse taps", fill, m.cfg.MinFill)
	check(WarnAliasing, hf > m.cfg.MaxHFExcess,
		"%.0f%% of the kernels' energy is above the LR Nyquist frequency beyond a smooth kernel's (above %.0f%%): aliasing", 100*hf, 100*m.cfg.MaxHFExcess)
	sort.Strings(h.Warnings)
	return h
}
