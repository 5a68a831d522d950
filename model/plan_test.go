package model_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
)

// RunSteps runs convolution steps on x (n x steps[0].In x h x w, NCHW)
// with the plain reference convolution and the step definition of
// model.ConvStep, in float32 as the graph does.
func runSteps(steps []model.ConvStep, n, h, w int, x []float32) []float32 {
	var prevIn []float32
	cur := x
	for _, s := range steps {
		sh := kernels.ConvShape{N: n, C: s.In, H: h, W: w, K: s.Out, KH: s.K, KW: s.K, Stride: 1, Pad: s.K / 2}
		y := make([]float32, n*s.Out*h*w)
		kernels.Conv2DRef(sh, y, cur, s.W, s.B, kernels.Act{})
		plane := h * w
		for i := range y {
			c := (i / plane) % s.Out
			v := y[i]
			if s.Scale != nil {
				v = float32(s.Scale[c]*float64(v) + s.Shift[c])
			}
			if s.Skip {
				v = prevIn[i] + v
			}
			if s.ReLU && v < 0 {
				v = 0
			}
			y[i] = v
		}
		prevIn, cur = cur, y
	}
	return cur
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// TestStepsMatchGraph holds the networks' step descriptions (what the GPU
// backend runs) to the graph the CPU runs: the kernel network's steps plus
// the channel softmax give the sampler's kernels, and the noise network's
// steps on its mode's input (plus the per-plane centring) give its noise,
// for each kernel and noise mode and the fixed-z ablation.
func TestStepsMatchGraph(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spatial  bool
		conv     int
		mode     string
		zeroMean bool
		fixZ     bool
	}{
		{"invariant-mixed-zeromean", false, 1, model.NoiseMixed, true, false},
		{"spatial-conv3-mixed", true, 3, model.NoiseMixed, false, false},
		{"spatial-conv1-zonly", true, 1, model.NoiseZOnly, false, false},
		{"invariant-content", false, 1, model.NoiseContentOnly, true, false},
		{"invariant-off", false, 1, model.NoiseOff, false, false},
		{"fixed-z", false, 1, model.NoiseMixed, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := model.PDMConfig{
				Scale:      4,
				Kernel:     model.KernelConfig{Size: 7, NC: 5, NF: 8, NB: 2, Spatial: tc.spatial, Conv: tc.conv, Init: "gaussian", InitSigma: 1.5},
				Noise:      model.NoiseConfig{Mode: tc.mode, NC: 3, NF: 6, NB: 2, Conv: 3, ZeroMean: tc.zeroMean},
				FixKernelZ: tc.fixZ, FixNoiseZ: tc.fixZ,
			}
			p, err := model.NewPDM(cfg, tensor.Float32, 3)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(5, 6))
			testutil.RandomizePDM(p, r, 0.3)
			const n, hr = 3, 24
			lr := p.LRSize(hr)
			sm, err := p.NewSampler(n, hr, hr)
			if err != nil {
				t.Fatal(err)
			}
			defer sm.Close()
			x := make([]float32, n*3*hr*hr)
			for i := range x {
				x[i] = r.Float32()
			}
			rands := make([]*rand.Rand, n)
			for i := range rands {
				rands[i] = rand.New(rand.NewPCG(uint64(i), 9))
			}
			zkS, znS := p.LatentShapes(n, lr, lr)
			zk, zn := make([]float32, prod(zkS)), []float32(nil)
			if znS != nil {
				zn = make([]float32, prod(znS))
			}
			for i, rr := range rands {
				var zi []float32
				if zn != nil {
					zi = zn[i*len(zn)/n : (i+1)*len(zn)/n]
				}
				p.DrawLatents(rr, zk[i*len(zk)/n:(i+1)*len(zk)/n], zi)
			}
			d, err := sm.RunLatents(x, zk, zn)
			if err != nil {
				t.Fatal(err)
			}
			kh, kw := 1, 1
			if tc.spatial {
				kh, kw = lr, lr
			}
			kk := cfg.Kernel.Size * cfg.Kernel.Size
			logits := runSteps(p.KernelSteps(), n, kh, kw, zk)
			kern := make([]float32, len(logits))
			kernels.Softmax(n, kk, kh*kw, kern, logits)
			if e := maxAbsDiff(kern, d.Kernel); e > 1e-6 {
				t.Errorf("kernels from the steps differ from the graph's by %.3g", e)
			}
			steps := p.NoiseSteps()
			if tc.mode == model.NoiseOff {
				if steps != nil || d.Noise != nil {
					t.Fatalf("noise off: %d steps, noise %v", len(steps), d.Noise != nil)
				}
				return
			}
			plane := lr * lr
			var in []float32
			for i := range n {
				if tc.mode != model.NoiseZOnly {
					in = append(in, d.Clean[i*3*plane:(i+1)*3*plane]...)
				}
				if zn != nil {
					c := znS[1]
					in = append(in, zn[i*c*plane:(i+1)*c*plane]...)
				}
			}
			if steps[0].In*n*plane != len(in) {
				t.Fatalf("noise input of %d values for a first step of %d channels", len(in), steps[0].In)
			}
			noise := runSteps(steps, n, lr, lr, in)
			if tc.zeroMean {
				kernels.CenterPlanes(n*3, plane, noise, noise)
			}
			if e := maxAbsDiff(noise, d.Noise); e > 1e-5 {
				t.Errorf("noise from the steps differs from the graph's by %.3g", e)
			}
			if e := maxAbsDiff(d.Noise, make([]float32, len(d.Noise))); e < 1e-3 {
				t.Errorf("the noise is %.3g at most: the test would not see a wrong network", e)
			}
		})
	}
}

func prod(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}
