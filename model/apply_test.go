package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// TestSamplerMatchesDegrade checks that a batched forward pass gives each
// sample what Degrade gives for it alone with the same generator state:
// what makes a streamed sample regenerable from its seed.
func TestSamplerMatchesDegrade(t *testing.T) {
	for _, mode := range []string{NoiseMixed, NoiseOff} {
		cfg := smallPDMConfig(false, mode)
		p, err := NewPDM(cfg, tensor.Float32, 3)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(5, 6))
		for _, m := range p.Modules() {
			for _, q := range m.Params() {
				d := q.Value.Data().([]float32)
				for i := range d {
					d[i] += float32(0.2 * (2*r.Float64() - 1))
				}
			}
		}
		const n, h, w = 3, 16, 12
		hr := make([]float32, n*3*h*w)
		for i := range hr {
			hr[i] = r.Float32()
		}
		s, err := p.NewSampler(n, h, w)
		if err != nil {
			t.Fatal(err)
		}
		rands := make([]*rand.Rand, n)
		for i := range rands {
			rands[i] = rand.New(rand.NewPCG(uint64(i), 77))
		}
		got, err := s.Run(hr, rands)
		if err != nil {
			t.Fatal(err)
		}
		lh, lw := s.LRSize()
		if lh != 4 || lw != 3 {
			t.Fatalf("LR size %dx%d, want 4x3", lh, lw)
		}
		per := 3 * lh * lw
		for i := 0; i < n; i++ {
			one, err := p.Degrade(hr[i*3*h*w:(i+1)*3*h*w], h, w, rand.New(rand.NewPCG(uint64(i), 77)))
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for j, v := range one.LR {
				worst = math.Max(worst, math.Abs(float64(v-got.LR[i*per+j])))
			}
			if worst > 1e-6 {
				t.Errorf("%s: sample %d differs from Degrade by %g", mode, i, worst)
			}
			ks := cfg.Kernel.Size * cfg.Kernel.Size
			for j, v := range one.Kernel {
				if d := math.Abs(float64(v - got.Kernel[i*ks+j])); d > 1e-7 {
					t.Fatalf("%s: sample %d kernel tap %d differs by %g", mode, i, j, d)
				}
			}
		}
		s.Close()
	}
}

// TestGaussianInitAlignment: the Gaussian start is centred on the middle of
// the scale x scale block, so that PDM's LR images line up with bicubic
// (imresize) ones.
func TestGaussianInitAlignment(t *testing.T) {
	for _, scale := range []int{2, 3, 4} {
		k := KernelConfig{Size: 21, Init: "gaussian", InitSigma: 1.5}
		logits := initialKernelLogits(k, scale)
		var sum, cu, cv float64
		for i, l := range logits {
			w := math.Exp(l)
			sum += w
			cu += w * float64(i/21)
			cv += w * float64(i%21)
		}
		want := 10 + float64(scale-1)/2
		if math.Abs(cu/sum-want) > 1e-6 || math.Abs(cv/sum-want) > 1e-6 {
			t.Errorf("x%d: centroid (%.3f, %.3f), want (%.1f, %.1f)", scale, cu/sum, cv/sum, want, want)
		}
	}
}

// TestDeterministicKernelInference: with z_k fixed, inference gives the
// kernel that training computes, even after the running variance has
// collapsed on the constant input.
func TestDeterministicKernelInference(t *testing.T) {
	cfg := smallPDMConfig(false, NoiseOff)
	cfg.FixKernelZ = true
	p, err := NewPDM(cfg, tensor.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, q := range p.Kernel.Params() {
		d := q.Value.Data().([]float32)
		for i := range d {
			if q.Learnable {
				d[i] += float32(0.3 * (2*r.Float64() - 1))
			}
		}
	}
	// What many training steps on a constant input leave behind.
	for _, q := range p.Kernel.Params() {
		if !q.Learnable && strings.HasSuffix(q.Name, "var") {
			clear(q.Value.Data().([]float32))
		}
	}
	hr := make([]float32, 3*16*16)
	for i := range hr {
		hr[i] = r.Float32()
	}
	d, err := p.Degrade(hr, 16, 16, r)
	if err != nil {
		t.Fatal(err)
	}
	g := NewGraph(tensor.Float32)
	defer g.Close()
	zk, _ := p.SampleLatents(r, tensor.Float32, 4, 4, 4)
	k := p.KernelNet(g, g.Input("zk", zk.Shape()...), true)
	if err := g.Run(map[string]*tensor.Dense{"zk": zk}); err != nil {
		t.Fatal(err)
	}
	want := Float32s(k)[:len(d.Kernel)]
	for i, v := range d.Kernel {
		if math.Abs(float64(v-want[i])) > 1e-6 {
			t.Fatalf("tap %d: inference %g, training %g", i, v, want[i])
		}
	}
}
