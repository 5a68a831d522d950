package model

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
)

// jitter moves every learnable parameter by U(-a, a), so that gradient
// checks run at a generic point (the zero-initialised last layers would
// otherwise hide errors in the layers before them).
func jitter(r *rand.Rand, a float64, ms ...*Module) {
	for _, m := range ms {
		for _, p := range m.Params() {
			if !p.Learnable {
				continue
			}
			for i, v := range p.Value.Data().([]float64) {
				p.Value.Data().([]float64)[i] = v + (2*r.Float64()-1)*a
			}
		}
	}
}

func smallPDMConfig(spatial bool, mode string) PDMConfig {
	return PDMConfig{
		Scale:  4,
		Kernel: KernelConfig{Size: 5, NC: 4, NF: 6, NB: 1, Spatial: spatial, Conv: 3, Init: "box"},
		Noise:  NoiseConfig{Mode: mode, NC: 2, NF: 5, NB: 1, Conv: 3},
	}
}

// TestPDMEndToEndGradient checks the generator loss of pdm-spec §5 step 1,
// LSGAN(D(fake)) + lambda*mean(n^2), through kernel net -> softmax -> blur
// -> noise net -> discriminator, against central differences for every
// parameter of both PDM networks, in each noise mode and kernel mode.
func TestPDMEndToEndGradient(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spatial  bool
		mode     string
		zeroMean bool
		mix      bool
	}{
		{"invariant-mixed", false, NoiseMixed, false, false},
		{"invariant-mixed-zeromean", false, NoiseMixed, true, false},
		{"spatial-mixed", true, NoiseMixed, false, false},
		{"invariant-zonly", false, NoiseZOnly, false, false},
		{"invariant-content", false, NoiseContentOnly, false, false},
		{"invariant-off", false, NoiseOff, false, false},
		// The content-dependent kernel network of the paper's Table 5:
		// cat(HR on the LR grid, z_k).
		{"spatial-mix-kernel", true, NoiseMixed, false, true},
		{"spatial-mix-kernel-off", true, NoiseOff, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, 12))
			cfg := smallPDMConfig(tc.spatial, tc.mode)
			cfg.Noise.ZeroMean = tc.zeroMean
			cfg.Kernel.Mix = tc.mix
			pdm, err := NewPDM(cfg, tensor.Float64, 1)
			if err != nil {
				t.Fatal(err)
			}
			d, err := NewDiscriminator(DiscConfig{NF: 2, Out: 3, Stride: 1}, tensor.Float64, 2)
			if err != nil {
				t.Fatal(err)
			}
			jitter(r, 0.3, pdm.Modules()...)
			const n, hr = 3, 12
			lr := pdm.LRSize(hr)
			zk, zn := pdm.SampleLatents(r, tensor.Float64, n, lr, lr)
			feeds := map[string]*tensor.Dense{"hr": randDense(r, n, 3, hr, hr), "zk": zk}
			if zn != nil {
				feeds["zn"] = zn
			}
			// Both modules in one: checkGraph trains one module, so wrap.
			all := NewModule("pdm", tensor.Float64)
			for _, m := range pdm.Modules() {
				all.params = append(all.params, m.params...)
			}
			// The noise network sees y_clean detached. Central differences
			// cannot see a stop-gradient, so the checked graph feeds the
			// noise network the value y_clean has at the checked point (a
			// constant, which is what detach makes it);
			// TestDetachMatchesConstant shows the two graphs' gradients agree.
			clean := cleanAt(t, pdm, feeds, n, hr)
			feeds["clean"] = clean
			checkGraph(t, tc.name, all, feeds, func(g *Graph) *G.Node {
				hrN := g.Input("hr", n, 3, hr, hr)
				zkN := g.Input("zk", zk.Shape()...)
				cleanN := g.Input("clean", clean.Shape()...)
				var znN *G.Node
				if zn != nil {
					znN = g.Input("zn", zn.Shape()...)
				}
				kern := pdm.KernelNet(g, hrN, zkN, true)
				fake := g.BlurDown(hrN, kern, pdm.Cfg.Kernel.Size, pdm.Cfg.Scale)
				var noise *G.Node
				if pdm.Noise == nil {
					fake = g.FourierQuant(fake)
				} else {
					noise = pdm.noise(g, cleanN, znN, true)
					fake = g.AddScaled(fake, noise, 1)
				}
				adv := g.MeanSquare(d.Forward(g, fake), 1, 1)
				if noise == nil {
					return adv
				}
				return g.Sum(adv, g.MeanSquare(noise, 0, 100))
			}, gradcheck.Options{Samples: 12, Tol: 2e-6})
		})
	}
}

// TestDiscriminatorGradient checks the discriminator loss of pdm-spec §5
// step 2 (LSGAN on real and detached fake) for the discriminator's weights.
func TestDiscriminatorGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, stride := range []int{1, 2} {
		d, err := NewDiscriminator(DiscConfig{NF: 3, Out: 4, Stride: stride}, tensor.Float64, 3)
		if err != nil {
			t.Fatal(err)
		}
		feeds := map[string]*tensor.Dense{"real": randDense(r, 2, 3, 8, 8), "fake": randDense(r, 2, 3, 8, 8)}
		checkGraph(t, "disc", d.M, feeds, func(g *Graph) *G.Node {
			real := d.Forward(g, g.Input("real", 2, 3, 8, 8))
			fake := d.Forward(g, g.Input("fake", 2, 3, 8, 8))
			return g.Sum(g.MeanSquare(real, 1, 0.5), g.MeanSquare(fake, 0, 0.5))
		}, gradcheck.Options{Samples: 15})
	}
}

// cleanAt runs the PDM forward once and returns y_clean.
func cleanAt(t *testing.T, pdm *PDM, feeds map[string]*tensor.Dense, n, hr int) *tensor.Dense {
	t.Helper()
	g := NewGraph(tensor.Float64)
	defer g.Close()
	zk := feeds["zk"]
	out := pdm.Forward(g, g.Input("hr", n, 3, hr, hr), g.Input("zk", zk.Shape()...), optionalInput(g, feeds, "zn"), true)
	g.Keep(out.Clean)
	f := map[string]*tensor.Dense{"hr": feeds["hr"], "zk": zk}
	if z, ok := feeds["zn"]; ok {
		f["zn"] = z
	}
	if err := g.Run(f); err != nil {
		t.Fatal(err)
	}
	v := append([]float64(nil), Float64s(out.Clean)...)
	return tensor.New(tensor.WithShape(out.Clean.Shape()...), tensor.WithBacking(v))
}

func optionalInput(g *Graph, feeds map[string]*tensor.Dense, name string) *G.Node {
	v, ok := feeds[name]
	if !ok {
		return nil
	}
	return g.Input(name, v.Shape()...)
}

// TestDetachMatchesConstant shows that the full PDM graph, whose noise
// network sees detach(y_clean), gives every parameter the gradient of the
// graph in which the noise network sees y_clean as a constant input.
func TestDetachMatchesConstant(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	pdm, err := NewPDM(smallPDMConfig(false, NoiseMixed), tensor.Float64, 1)
	if err != nil {
		t.Fatal(err)
	}
	jitter(r, 0.3, pdm.Modules()...)
	const n, hr = 2, 12
	lr := pdm.LRSize(hr)
	zk, zn := pdm.SampleLatents(r, tensor.Float64, n, lr, lr)
	feeds := map[string]*tensor.Dense{"hr": randDense(r, n, 3, hr, hr), "zk": zk, "zn": zn}
	clean := cleanAt(t, pdm, feeds, n, hr)
	grads := func(constant bool) map[string][]float64 {
		g := NewGraph(tensor.Float64)
		defer g.Close()
		g.Train(pdm.Modules()...)
		hrN, zkN, znN := g.Input("hr", n, 3, hr, hr), g.Input("zk", zk.Shape()...), g.Input("zn", zn.Shape()...)
		f := map[string]*tensor.Dense{"hr": feeds["hr"], "zk": zk, "zn": zn}
		var fake, noise *G.Node
		if constant {
			f["clean"] = clean
			kern := pdm.KernelNet(g, hrN, zkN, true)
			noise = pdm.noise(g, g.Input("clean", clean.Shape()...), znN, true)
			fake = g.AddScaled(g.BlurDown(hrN, kern, pdm.Cfg.Kernel.Size, pdm.Cfg.Scale), noise, 1)
		} else {
			out := pdm.Forward(g, hrN, zkN, znN, true)
			fake, noise = out.Fake, out.Noise
		}
		g.Backward(g.Sum(g.MeanSquare(fake, 0.5, 1), g.MeanSquare(noise, 0, 10)))
		if err := g.Run(f); err != nil {
			t.Fatal(err)
		}
		out := map[string][]float64{}
		for _, p := range g.Trained() {
			out[p.Name] = append([]float64(nil), g.Grad(p).Data().([]float64)...)
		}
		return out
	}
	a, b := grads(false), grads(true)
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d and %d gradients", len(a), len(b))
	}
	for name, ga := range a {
		gb := b[name]
		for i := range ga {
			if d := ga[i] - gb[i]; d > 1e-12 || d < -1e-12 {
				t.Fatalf("%s[%d]: %g with detach, %g with a constant", name, i, ga[i], gb[i])
			}
		}
	}
}

// TestKernelCentroidGradient checks the centroid penalty through the kernel
// network and its softmax against central differences.
func TestKernelCentroidGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	cfg := smallPDMConfig(false, NoiseOff)
	pdm, err := NewPDM(cfg, tensor.Float64, 5)
	if err != nil {
		t.Fatal(err)
	}
	jitter(r, 0.5, pdm.Kernel)
	zk, _ := pdm.SampleLatents(r, tensor.Float64, 3, 2, 2)
	ks := cfg.Kernel.Size
	checkGraph(t, "centroid", pdm.Kernel, map[string]*tensor.Dense{"zk": zk}, func(g *Graph) *G.Node {
		k := pdm.KernelNet(g, nil, g.Input("zk", zk.Shape()...), true)
		return g.KernelCentroid(k, ks, float64(ks/2)+1.5, 0.3)
	}, gradcheck.Options{Samples: 20, Tol: 1e-6})
}
