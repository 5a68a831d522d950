package diversity_test

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/diversity"
	"github.com/pdmflow/pdmflow/internal/synth"
	"github.com/pdmflow/pdmflow/model"
)

// w1Quantiles is W1 by integrating |Q_a(q) - Q_b(q)| over a fine grid of
// q, a different computation from W1's CDF walk.
func w1Quantiles(a, b []float64) float64 {
	x, y := append([]float64(nil), a...), append([]float64(nil), b...)
	sort.Float64s(x)
	sort.Float64s(y)
	const n = 200000
	var d float64
	for i := 0; i < n; i++ {
		q := (float64(i) + 0.5) / n
		d += math.Abs(x[int(q*float64(len(x)))]-y[int(q*float64(len(y)))]) / n
	}
	return d
}

func TestW1(t *testing.T) {
	if d := diversity.W1([]float64{0}, []float64{1}); math.Abs(d-1) > 1e-12 {
		t.Errorf("W1(0, 1) = %g", d)
	}
	if d := diversity.W1([]float64{1, 2, 3}, []float64{3, 1, 2}); d != 0 {
		t.Errorf("W1 of the same values = %g", d)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 5; trial++ {
		a, b := make([]float64, 50+r.IntN(50)), make([]float64, 30+r.IntN(80))
		shift := r.Float64()
		for i := range a {
			a[i] = r.NormFloat64()
		}
		for i := range b {
			b[i] = 1.5*r.NormFloat64() + shift
		}
		got, want := diversity.W1(a, b), w1Quantiles(a, b)
		if math.Abs(got-want) > 1e-3*math.Max(1, want) {
			t.Errorf("trial %d: W1 %g, quantile integral %g", trial, got, want)
		}
		if s := diversity.W1(b, a); math.Abs(s-got) > 1e-12 {
			t.Errorf("W1 not symmetric: %g and %g", got, s)
		}
	}
}

func TestW1Circular(t *testing.T) {
	// Two axes 0.2 rad apart across the wrap: 0.2, not pi-0.2.
	if d := diversity.W1Circular([]float64{0.1}, []float64{math.Pi - 0.1}, math.Pi); math.Abs(d-0.2) > 1e-9 {
		t.Errorf("across the wrap: %g, want 0.2", d)
	}
	if d := diversity.W1Circular([]float64{0.5}, []float64{0.8}, math.Pi); math.Abs(d-0.3) > 1e-9 {
		t.Errorf("within the period: %g, want 0.3", d)
	}
	// A uniform distribution rotated stays at distance ~0.
	var a, b []float64
	for i := 0; i < 100; i++ {
		a = append(a, math.Pi*float64(i)/100)
		b = append(b, math.Mod(math.Pi*float64(i)/100+1, math.Pi))
	}
	if d := diversity.W1Circular(a, b, math.Pi); d > 0.02 {
		t.Errorf("rotated uniform: %g", d)
	}
}

// TestShape checks that smooth kernels of every synthetic family read as
// smooth and a sparse ring (the degenerate kernel learned on non-Gaussian
// data) as sparse and aliasing.
func TestShape(t *testing.T) {
	p, _ := synth.Dist("mixed")
	for _, d := range []synth.Draw{
		{Kind: synth.Gaussian, Sigma1: 2.5, Sigma2: 1.2, Theta: 0.4},
		{Kind: synth.Gaussian, Sigma1: 0.8, Sigma2: 0.8},
		{Kind: synth.Disk, Radius: 3},
		{Kind: synth.Motion, Length: 7, Theta: 1.1},
	} {
		sh := diversity.MeasureShape(p.Kernel(d), p.KernelSize, p.Scale)
		if sh.Fill < 0.6 || sh.HFExcess > 0.1 {
			t.Errorf("%s %+v: fill %.3f, HF excess %.3f; a smooth kernel", d.Kind, d, sh.Fill, sh.HFExcess)
		}
	}
	ring := make([]float32, 21*21)
	for i := 0; i < 12; i++ {
		a := 2 * math.Pi * float64(i) / 12
		u, v := 10+int(math.Round(7*math.Sin(a))), 10+int(math.Round(7*math.Cos(a)))
		ring[u*21+v] = 1.0 / 12
	}
	sh := diversity.MeasureShape(ring, 21, 4)
	if sh.Fill > 0.1 || sh.HFExcess < 0.3 {
		t.Errorf("a ring of 12 taps: fill %.3f, HF excess %.3f; want sparse and aliasing", sh.Fill, sh.HFExcess)
	}
}

// TestCompareTruth measures kernels drawn from a distribution against the
// truth of another draw of it (close) and of another distribution (far).
func TestCompareTruth(t *testing.T) {
	draw := func(name string, seed uint64, n int) (diversity.Sample, *diversity.Truth) {
		p, err := synth.Dist(name)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(seed, 1))
		s := diversity.Sample{}
		tr := &diversity.Truth{Dist: name, Scale: p.Scale, KernelSize: p.KernelSize}
		for i := 0; i < n; i++ {
			d := p.Sample(r)
			st := model.MeasureKernel(p.Kernel(d), p.KernelSize)
			s.AddKernel(st, p.Scale)
			tr.Images = append(tr.Images, diversity.TruthImage{Kernel: st, NoiseStd: d.Read})
		}
		return s, tr
	}
	a, _ := draw("default", 1, 400)
	_, same := draw("default", 2, 400)
	_, wide := draw("wide", 3, 400)
	dir := t.TempDir()
	if err := same.Write(filepath.Join(dir, "t.json")); err != nil {
		t.Fatal(err)
	}
	read, err := diversity.ReadTruth(filepath.Join(dir, "t.json"))
	if err != nil {
		t.Fatal(err)
	}
	near := diversity.Compare(a, read.Sample())
	far := diversity.Compare(a, wide.Sample())
	w := near.Get(diversity.Width)
	if w.W1 > 0.1 || math.Abs(w.SpreadRatio-1) > 0.15 {
		t.Errorf("two draws of one distribution: width W1 %.3f, spread ratio %.3f", w.W1, w.SpreadRatio)
	}
	if f := far.Get(diversity.Width); f.W1 < 0.8 {
		t.Errorf("default against wide: width W1 %.3f, want about the difference of their means", f.W1)
	}
	if c := near.Get(diversity.CX); math.Abs(c.TrueMean) > 0.05 {
		t.Errorf("the default's kernels are centred on the block middle: centroid x %.3f", c.TrueMean)
	}
	md := near.Markdown()
	for _, q := range diversity.Quantities[:5] {
		if !strings.Contains(md, q) {
			t.Errorf("the report lacks %s:\n%s", q, md)
		}
	}
}

// TestMonitor: a distribution that spreads and then collapses to one
// kernel, and one that turns into sparse rings, are both reported; a
// healthy one is not.
func TestMonitor(t *testing.T) {
	p := synth.Default()
	const n, zDim = 32, 8
	r := rand.New(rand.NewPCG(4, 4))
	batch := func(spread float64) ([]float32, []float32) {
		k := make([]float32, 0, n*21*21)
		z := make([]float32, n*zDim)
		for i := range z {
			z[i] = float32(r.NormFloat64())
		}
		for i := 0; i < n; i++ {
			s := 2 + spread*float64(z[i*zDim])
			k = append(k, p.Kernel(synth.Draw{Kind: synth.Gaussian, Sigma1: math.Max(0.5, s), Sigma2: math.Max(0.5, s)})...)
		}
		return k, z
	}
	m := diversity.NewMonitor(diversity.DefaultMonitorConfig())
	var last diversity.Health
	for step := 0; step < 8; step++ {
		k, z := batch(0.5)
		last = m.Observe(step, k, n, 21, 4, z, zDim, []float64{0.01, 0.02, 0.03})
		if len(last.Warnings) > 0 {
			t.Fatalf("step %d, a healthy distribution: %v", step, last.Warnings)
		}
	}
	if last.WidthStd < 0.2 || last.Fill < 0.9 {
		t.Errorf("healthy: %+v", last)
	}
	// A collapse is a warning once it persists, not at its first sign.
	var h diversity.Health
	for i := 0; i < 5; i++ {
		k, z := batch(0.01)
		h = m.Observe(9+i, k, n, 21, 4, z, zDim, []float64{0.02, 0.02, 0.0201})
		if i == 0 && len(h.Warnings) > 0 {
			t.Errorf("one collapsed batch already warns: %v", h.Warnings)
		}
	}
	want := []string{diversity.WarnWidthCollapse, diversity.WarnNoiseCollapse, diversity.WarnOneKernel}
	for _, w := range want {
		if !hasWarning(h, w) {
			t.Errorf("collapsed: no %s warning in %v", w, h.Warnings)
		}
	}
	ring := make([]float32, n*21*21)
	for i := 0; i < n; i++ {
		for j := 0; j < 12; j++ {
			a := 2*math.Pi*float64(j)/12 + float64(i)
			u, v := 10+int(math.Round(7*math.Sin(a))), 10+int(math.Round(7*math.Cos(a)))
			ring[i*441+u*21+v] += 1.0 / 12
		}
	}
	_, z := batch(0.01)
	for i := 0; i < 5; i++ {
		h = m.Observe(20+i, ring, n, 21, 4, z, zDim, nil)
	}
	if !hasWarning(h, diversity.WarnSparse) || !hasWarning(h, diversity.WarnAliasing) {
		t.Errorf("rings: %v", h.Warnings)
	}
}

func hasWarning(h diversity.Health, kind string) bool {
	for _, w := range h.Warnings {
		if strings.HasPrefix(w, kind+":") {
			return true
		}
	}
	return false
}
