package model

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/safetensors"
)

func adamCfg() OptimConfig {
	return OptimConfig{LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: 0, Milestones: []int{2}, Gamma: 0.5}
}

// TestAdamMatchesTorchFormula runs three steps on one parameter and compares
// with the update torch.optim.Adam makes, written out by hand.
func TestAdamMatchesTorchFormula(t *testing.T) {
	m := NewModule("m", tensor.Float64)
	p := m.add("w", true, []float64{1, -2}, 2)
	a, err := NewAdam(adamCfg(), m)
	if err != nil {
		t.Fatal(err)
	}
	w := []float64{1, -2}
	mm, vv := []float64{0, 0}, []float64{0, 0}
	grads := [][]float64{{0.5, -1}, {0.25, 3}, {-1, 0.5}}
	for step, g := range grads {
		if _, err := a.Step([]*tensor.Dense{tensor.New(tensor.WithShape(2), tensor.WithBacking(append([]float64(nil), g...)))}); err != nil {
			t.Fatal(err)
		}
		lr := 0.1
		if step >= 2 {
			lr = 0.05
		}
		k := float64(step + 1)
		for j := range w {
			mm[j] = 0.9*mm[j] + 0.1*g[j]
			vv[j] = 0.999*vv[j] + 0.001*g[j]*g[j]
			mh := mm[j] / (1 - math.Pow(0.9, k))
			vh := vv[j] / (1 - math.Pow(0.999, k))
			w[j] -= lr * mh / (math.Sqrt(vh) + 1e-8)
		}
		got := p.Value.Data().([]float64)
		for j := range w {
			if math.Abs(got[j]-w[j]) > 1e-12 {
				t.Fatalf("step %d: w = %v, want %v", step, got, w)
			}
		}
	}
}

func TestAdamClipsGlobalNorm(t *testing.T) {
	cfg := adamCfg()
	cfg.ClipNorm = 1
	m := NewModule("m", tensor.Float64)
	m.add("a", true, []float64{0}, 1)
	m.add("b", true, []float64{0}, 1)
	a, _ := NewAdam(cfg, m)
	norm, err := a.Step([]*tensor.Dense{
		tensor.New(tensor.WithShape(1), tensor.WithBacking([]float64{3})),
		tensor.New(tensor.WithShape(1), tensor.WithBacking([]float64{4})),
	})
	if err != nil || norm != 5 {
		t.Fatalf("norm %v err %v", norm, err)
	}
	// After clipping the gradients are (0.6, 0.8); Adam's first moment holds
	// 0.1 times them.
	if math.Abs(a.m[0][0]-0.06) > 1e-7 || math.Abs(a.m[1][0]-0.08) > 1e-7 {
		t.Fatalf("moments %v %v", a.m[0], a.m[1])
	}
	if _, err := a.Step([]*tensor.Dense{tensor.New(tensor.WithShape(1), tensor.WithBacking([]float64{math.NaN()})), nil}); err == nil {
		t.Fatal("NaN gradient accepted")
	}
}

// TestAdamStateRoundTrip saves the state mid-run and shows that a restored
// optimizer continues bit-for-bit like the original.
func TestAdamStateRoundTrip(t *testing.T) {
	mk := func() (*Module, *Adam) {
		m := NewModule("m", tensor.Float32)
		m.add("w", true, []float64{0.5, 1.5, -1}, 3)
		a, _ := NewAdam(adamCfg(), m)
		return m, a
	}
	g := func(i int) []*tensor.Dense {
		return []*tensor.Dense{tensor.New(tensor.WithShape(3), tensor.WithBacking([]float32{float32(i), -1, 0.5 * float32(i)}))}
	}
	m1, a1 := mk()
	for i := 0; i < 2; i++ {
		a1.Step(g(i))
	}
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, nil, a1.StateTensors("opt")); err != nil {
		t.Fatal(err)
	}
	f, _ := safetensors.Decode(buf.Bytes())
	m2, a2 := mk()
	copy(m2.params[0].Value.Data().([]float32), m1.params[0].Value.Data().([]float32))
	if err := a2.LoadState(f, "opt", a1.Steps); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 5; i++ {
		a1.Step(g(i))
		a2.Step(g(i))
	}
	w1, w2 := m1.params[0].Value.Data().([]float32), m2.params[0].Value.Data().([]float32)
	for i := range w1 {
		if w1[i] != w2[i] {
			t.Fatalf("resumed %v, original %v", w2, w1)
		}
	}
}

func TestWeightsRoundTripAndMismatch(t *testing.T) {
	dir := t.TempDir()
	cfg := smallPDMConfig(false, NoiseMixed)
	p, err := NewPDM(cfg, tensor.Float32, 7)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pdm.safetensors")
	if err := SavePDM(path, p); err != nil {
		t.Fatal(err)
	}
	q, err := LoadPDM(path)
	if err != nil {
		t.Fatal(err)
	}
	if q.Cfg.Kernel.Size != cfg.Kernel.Size || len(q.Kernel.Params()) != len(p.Kernel.Params()) {
		t.Fatalf("config %+v", q.Cfg)
	}
	for i, a := range p.Kernel.Params() {
		b := q.Kernel.Params()[i]
		for j, v := range a.Float32Data() {
			if b.Float32Data()[j] != v {
				t.Fatalf("%s differs after load", a.Name)
			}
		}
	}
	// Weights of another configuration are refused with the tensor named.
	other := cfg
	other.Kernel.NF = 8
	o, _ := NewPDM(other, tensor.Float32, 1)
	w, err := ReadWeightsFile(path, KindPDM)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Load(o.Modules()...); err == nil || !strings.Contains(err.Error(), "kernel.head.weight") {
		t.Fatalf("mismatch error %v", err)
	}
	// A PDM file is not SR weights.
	if _, err := LoadSR(path); err == nil || !strings.Contains(err.Error(), "expected sr weights") {
		t.Fatalf("kind error %v", err)
	}
	// A file with an extra tensor under the module's prefix is refused.
	b, _ := EncodeWeights(KindPDM, cfg, nil, []safetensors.Tensor{safetensors.FromFloat32s("kernel.extra", []int{1}, []float32{1})}, p.Modules()...)
	wf, err := DecodeWeights("x", b, KindPDM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wf.PDM(); err == nil || !strings.Contains(err.Error(), "kernel.extra") {
		t.Fatalf("extra tensor error %v", err)
	}
}

// TestEMAUpdate checks the moving average against the formula, the warm-up
// decay, and that buffers are copied rather than averaged.
func TestEMAUpdate(t *testing.T) {
	cfg := PDMConfig{Scale: 2, Kernel: KernelConfig{Size: 3, NC: 2, NF: 3, NB: 1, Conv: 1, Init: "box"}, Noise: NoiseConfig{Mode: NoiseOff}}
	src, err := NewPDM(cfg, tensor.Float64, 1)
	if err != nil {
		t.Fatal(err)
	}
	avg, err := NewPDM(cfg, tensor.Float64, 2)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEMA(0.9, src.Modules(), avg.Modules())
	if err != nil {
		t.Fatal(err)
	}
	w := src.Kernel.Params()[0]
	a := avg.Kernel.Params()[0]
	if a.Value.Data().([]float64)[0] != w.Value.Data().([]float64)[0] {
		t.Fatal("the average does not start as a copy")
	}
	want := a.Value.Data().([]float64)[0]
	for n := 0; n < 30; n++ {
		w.Value.Data().([]float64)[0] += 1
		d := math.Min(0.9, float64(1+n)/float64(10+n))
		want = d*want + (1-d)*w.Value.Data().([]float64)[0]
		e.Update()
		if got := a.Value.Data().([]float64)[0]; math.Abs(got-want) > 1e-12 {
			t.Fatalf("update %d: %g, want %g", n, got, want)
		}
	}
	for i, p := range src.Kernel.Params() {
		if !p.Learnable {
			p.Value.Data().([]float64)[0] = 42
			e.Update()
			if avg.Kernel.Params()[i].Value.Data().([]float64)[0] != 42 {
				t.Errorf("buffer %s was not copied", p.Name)
			}
			break
		}
	}
	if _, err := NewEMA(1, src.Modules(), avg.Modules()); err == nil {
		t.Error("decay 1 accepted")
	}
}
