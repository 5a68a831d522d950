// Package diversity measures a degradation distribution: the statistics
// of its kernels (width, anisotropy, orientation, centroid) and of its
// noise (level), their spread, and the Wasserstein-1 distance between a
// learned distribution and a true one (Compare, against a Truth file that
// a synthetic target set records); and, with no truth at hand, the signs
// that a PDM's distribution collapses or turns degenerate while it trains
// (Monitor).
//
// PDM's claim is to learn the distribution of the degradation, not its
// mean: a model whose kernels all look alike, or whose kernels are sparse
// rings that only alias, fits an adversary at small scale and fails the SR
// network trained on it. This package puts numbers on both.
package diversity

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/pdmflow/pdmflow/model"
)

// Quantities, in the order reports list them.
const (
	Width  = "kernel_width" // sqrt(sigma_major * sigma_minor) of the kernel's moments, HR px
	Aniso  = "anisotropy"   // sigma_major / sigma_minor
	Orient = "orientation"  // angle of the major axis, radians in [0, pi) (anisotropic kernels only)
	CY     = "centroid_y"   // centroid below the middle of the scale x scale block, HR px
	CX     = "centroid_x"   // centroid right of it
	Noise  = "noise_level"  // standard deviation of the noise over an image
)

// Quantities lists every quantity.
var Quantities = []string{Width, Aniso, Orient, CY, CX, Noise}

// orientMinAniso: orientation is counted only for kernels at least this
// anisotropic (it is meaningless for round ones).
const orientMinAniso = 1.15

// Sample is a set of degradations by their statistics: one value per
// kernel (or image) and quantity.
type Sample map[string][]float64

// KernelStats adds the statistics of one kernel measured by
// model.MeasureKernel on a window whose centre tap is offset from the
// block's middle by off = (scale-1)/2 taps.
func (s Sample) AddKernel(st model.KernelStats, scale int) {
	off := float64(scale-1) / 2
	w := math.Sqrt(st.SigmaMajor * st.SigmaMinor)
	a := math.Inf(1)
	if st.SigmaMinor > 0 {
		a = st.SigmaMajor / st.SigmaMinor
	}
	s[Width] = append(s[Width], w)
	s[Aniso] = append(s[Aniso], math.Min(a, 100))
	if a >= orientMinAniso {
		o := math.Mod(st.Angle, math.Pi)
		if o < 0 {
			o += math.Pi
		}
		s[Orient] = append(s[Orient], o)
	}
	s[CY] = append(s[CY], st.CY-off)
	s[CX] = append(s[CX], st.CX-off)
}

// FromKernels measures n kernels of ks x ks stored one after another.
func FromKernels(k []float32, n, ks, scale int) Sample {
	s := Sample{}
	for i := 0; i < n; i++ {
		s.AddKernel(model.MeasureKernel(k[i*ks*ks:(i+1)*ks*ks], ks), scale)
	}
	return s
}

// Stat is one quantity of a comparison.
type Stat struct {
	Quantity    string  `json:"quantity"`
	N           int     `json:"n"`
	Mean        float64 `json:"mean"`
	Std         float64 `json:"std"`
	TrueN       int     `json:"true_n"`
	TrueMean    float64 `json:"true_mean"`
	TrueStd     float64 `json:"true_std"`
	SpreadRatio float64 `json:"spread_ratio"` // Std / TrueStd
	W1          float64 `json:"w1"`           // Wasserstein-1 distance (circular for orientation)
}

// Report compares a learned distribution with the truth.
type Report struct {
	Stats []Stat `json:"stats"`
}

// Get returns the stat of a quantity (zero when absent).
func (r *Report) Get(q string) Stat {
	for _, s := range r.Stats {
		if s.Quantity == q {
			return s
		}
	}
	return Stat{}
}

// Compare reports every quantity both samples have.
func Compare(learned, truth Sample) *Report {
	r := &Report{}
	for _, q := range Quantities {
		a, b := learned[q], truth[q]
		if len(a) == 0 || len(b) == 0 {
			continue
		}
		st := Stat{Quantity: q, N: len(a), TrueN: len(b)}
		st.Mean, st.Std = meanStd(a)
		st.TrueMean, st.TrueStd = meanStd(b)
		if q == Orient {
			st.Mean, st.Std = circMeanStd(a)
			st.TrueMean, st.TrueStd = circMeanStd(b)
			st.W1 = W1Circular(a, b, math.Pi)
		} else {
			st.W1 = W1(a, b)
		}
		if st.TrueStd > 0 {
			st.SpreadRatio = st.Std / st.TrueStd
		}
		r.Stats = append(r.Stats, st)
	}
	return r
}

// Markdown renders the report as a table.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("| quantity | learned mean | learned std | true mean | true std | spread ratio | W1 |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.Stats {
		fmt.Fprintf(&b, "| %s | %.4g | %.4g | %.4g | %.4g | %.3g | %.4g |\n", s.Quantity, s.Mean, s.Std, s.TrueMean, s.TrueStd, s.SpreadRatio, s.W1)
	}
	return b.String()
}

func meanStd(v []float64) (m, s float64) {
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return m, math.Sqrt(s / float64(len(v)))
}

// circMeanStd is the mean direction and circular standard deviation of
// angles of period pi (axes, not directions).
func circMeanStd(v []float64) (m, s float64) {
	var c, sn float64
	for _, x := range v {
		c += math.Cos(2 * x)
		sn += math.Sin(2 * x)
	}
	c /= float64(len(v))
	sn /= float64(len(v))
	m = math.Atan2(sn, c) / 2
	if m < 0 {
		m += math.Pi
	}
	rr := math.Min(1, math.Hypot(c, sn))
	return m, math.Sqrt(-2*math.Log(math.Max(rr, 1e-300))) / 2
}

// W1 is the Wasserstein-1 distance between the empirical distributions of
// a and b: the integral of |F_a - F_b|, exact for step functions.
func W1(a, b []float64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return math.NaN()
	}
	x, y := sorted(a), sorted(b)
	// Walk the merged points; between consecutive points both CDFs are
	// constant.
	var d float64
	i, j := 0, 0
	prev := math.Min(x[0], y[0])
	for i < len(x) || j < len(y) {
		var next float64
		if j >= len(y) || (i < len(x) && x[i] <= y[j]) {
			next = x[i]
		} else {
			next = y[j]
		}
		fa, fb := float64(i)/float64(len(x)), float64(j)/float64(len(y))
		d += math.Abs(fa-fb) * (next - prev)
		prev = next
		for i < len(x) && x[i] == next {
			i++
		}
		for j < len(y) && y[j] == next {
			j++
		}
	}
	return d
}

// W1Circular is the Wasserstein-1 distance on a circle of the given period:
// the integral over one period of |F_a - F_b - c| for the median c of
// F_a - F_b (Rabin et al.'s formula for circular measures).
func W1Circular(a, b []float64, period float64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return math.NaN()
	}
	wrap := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			x = math.Mod(x, period)
			if x < 0 {
				x += period
			}
			out[i] = x
		}
		sort.Float64s(out)
		return out
	}
	x, y := wrap(a), wrap(b)
	pts := append(append([]float64{0}, x...), y...)
	pts = append(pts, period)
	sort.Float64s(pts)
	cdf := func(v []float64, t float64) float64 {
		return float64(sort.SearchFloat64s(v, t+1e-15)) / float64(len(v))
	}
	type seg struct{ diff, length float64 }
	var segs []seg
	for k := 0; k+1 < len(pts); k++ {
		if l := pts[k+1] - pts[k]; l > 0 {
			segs = append(segs, seg{cdf(x, pts[k]) - cdf(y, pts[k]), l})
		}
	}
	// c: the weighted median of the differences.
	s2 := append([]seg(nil), segs...)
	sort.Slice(s2, func(i, j int) bool { return s2[i].diff < s2[j].diff })
	half, acc, c := period/2, 0.0, 0.0
	for _, s := range s2 {
		acc += s.length
		if acc >= half {
			c = s.diff
			break
		}
	}
	var d float64
	for _, s := range segs {
		d += math.Abs(s.diff-c) * s.length
	}
	return d
}

func sorted(v []float64) []float64 {
	out := append([]float64(nil), v...)
	sort.Float64s(out)
	return out
}
