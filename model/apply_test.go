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
	for _, c := range []struct {
		mode         string
		spatial, mix bool
	}{{NoiseMixed, false, false}, {NoiseOff, false, false}, {NoiseMixed, true, true}} {
		mode := c.mode
		cfg := smallPDMConfig(c.spatial, mode)
		cfg.Kernel.Mix = c.mix
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
			if c.spatial {
				ks *= lh * lw
			}
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
	k := p.KernelNet(g, nil, g.Input("zk", zk.Shape()...), true)
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

// TestContentDependentKernels: with kernel.mix the kernels depend on the
// image (the same z_k gives other kernels for another image, and the
// image's content moves them), also with z_k fixed to zero (the paper's
// Table 5, k = netK(x)), where inference keeps using the running
// statistics; without it, the same z_k gives the same kernels whatever the
// image.
func TestContentDependentKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	const n, h = 2, 16
	hrA, hrB := make([]float32, n*3*h*h), make([]float32, n*3*h*h)
	for i := range hrA {
		hrA[i], hrB[i] = r.Float32(), r.Float32()
	}
	for _, c := range []struct {
		name     string
		mix, fix bool
	}{{"mix", true, false}, {"mix-fixed-z", true, true}, {"spatial", false, false}} {
		cfg := smallPDMConfig(true, NoiseOff)
		cfg.Kernel.Mix, cfg.FixKernelZ = c.mix, c.fix
		p, err := NewPDM(cfg, tensor.Float32, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range p.Kernel.Params() {
			if q.Learnable {
				d := q.Value.Data().([]float32)
				for i := range d {
					d[i] += float32(0.3 * (2*r.Float64() - 1))
				}
			}
		}
		if got := p.fixedKernelInput(); got != (c.fix && !c.mix) {
			t.Errorf("%s: fixed kernel input %v", c.name, got)
		}
		lr := p.LRSize(h)
		zk, _ := p.SampleLatents(r, tensor.Float32, n, lr, lr)
		kernelsOf := func(hr []float32) []float32 {
			g := NewGraph(tensor.Float32)
			defer g.Close()
			k := p.KernelNet(g, g.Input("hr", n, 3, h, h), g.Input("zk", zk.Shape()...), false)
			g.Keep(k)
			if err := g.Run(map[string]*tensor.Dense{"hr": tensor.New(tensor.WithShape(n, 3, h, h), tensor.WithBacking(hr)), "zk": zk}); err != nil {
				t.Fatal(err)
			}
			return append([]float32(nil), Float32s(k)...)
		}
		a, b := kernelsOf(hrA), kernelsOf(hrB)
		var diff float64
		for i := range a {
			diff = max(diff, math.Abs(float64(a[i]-b[i])))
		}
		if c.mix && diff < 1e-4 {
			t.Errorf("%s: other images give the same kernels (largest difference %g)", c.name, diff)
		}
		if !c.mix && diff != 0 {
			t.Errorf("%s: the kernels depend on the image (difference %g)", c.name, diff)
		}
	}
	cfg := smallPDMConfig(false, NoiseOff)
	cfg.Kernel.Mix = true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "kernel.mix needs kernel.spatial") {
		t.Errorf("mix without spatial: %v", err)
	}
}
