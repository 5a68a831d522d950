//go:build pdmcuda || pdmcudaemu

package gpu

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
)

// These tests compare every GPU op, and whole batches, with the CPU
// reference. Built with pdmcuda they run on the first GPU and skip, saying
// why, where there is none; built with pdmcudaemu they run the same
// orchestration and kernel source on the host emulation.

// openGPU opens cuda:0 in precision p or skips the test.
func openGPU(t testing.TB, p Precision) *Device {
	t.Helper()
	devs, err := Open("cuda:0", p, nil)
	if errors.Is(err, ErrNoDevice) {
		t.Skipf("no GPU to test on (%s build): %v", backendName, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	d := devs[0].(*Device)
	t.Cleanup(func() { d.Close() })
	t.Logf("device: %s", d.Describe())
	return d
}

func randU8(r *rand.Rand, n int) []uint8 {
	v := make([]uint8, n)
	for i := range v {
		v[i] = uint8(r.IntN(256))
	}
	return v
}

func randF32(r *rand.Rand, n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return v
}

func maxAbs(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = math.Max(m, d)
	}
	return m
}

// psnr of a against the reference b, over a peak of 1.
func psnr(a, b []float32) float64 {
	var se float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		se += d * d
	}
	if se == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(float64(len(a))/se)
}

// devBuf uploads v (a []float32, []uint8, []int32 or []float64) into a new
// device buffer freed with m.
func devBuf(t *testing.T, d *Device, m *devMem, v any) dptr {
	t.Helper()
	var b []byte
	switch v := v.(type) {
	case []float32:
		b = f32Bytes(v)
	case []float64:
		b = f64Bytes(v)
	case []int32:
		b = i32Bytes(v)
	case []uint8:
		b = v
	case int: // an empty buffer of v bytes
		b = make([]byte, v)
	default:
		t.Fatalf("devBuf of %T", v)
	}
	p, err := m.alloc(len(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.e.h2d(p, b); err != nil {
		t.Fatal(err)
	}
	return p
}

func download(t *testing.T, d *Device, p dptr, n int) []float32 {
	t.Helper()
	out := make([]float32, n)
	if err := d.e.d2h(f32Bytes(out), p); err != nil {
		t.Fatal(err)
	}
	if err := d.e.sync(); err != nil {
		t.Fatal(err)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestOps checks each kernel of kernels.cu.h against its CPU reference on
// random inputs.
func TestOps(t *testing.T) {
	d := openGPU(t, FP32)
	m := &devMem{e: d.e}
	defer m.free()
	r := rand.New(rand.NewPCG(1, 2))

	t.Run("u8_to_f32", func(t *testing.T) {
		x := randU8(r, 1000)
		want := make([]float32, len(x))
		kernels.Unit8(want, x)
		out := devBuf(t, d, m, 4*len(x))
		must(t, run(d.e, kU8ToF32, int64(len(x)), &u8ToF32Args{out: cdptr(out), in: cdptr(devBuf(t, d, m, x)), total: ci64(len(x))}))
		if e := maxAbs(download(t, d, out, len(x)), want); e != 0 {
			t.Errorf("differs from kernels.Unit8 by %g", e)
		}
	})

	for _, spatial := range []bool{false, true} {
		t.Run(fmt.Sprintf("blur_down/spatial=%v", spatial), func(t *testing.T) {
			s := kernels.BlurShape{N: 3, C: 3, H: 17, W: 14, KS: 5, Scale: 3, Spatial: spatial}
			nx, nk, ny := s.Sizes()
			x, k := randF32(r, nx, 0, 1), randF32(r, nk, 0, 0.1)
			want := make([]float32, ny)
			kernels.BlurDownRef(s, want, x, k)
			kd := k
			layout := 0
			if spatial { // the device's spatial kernels are channel-major
				layout = 1
				kd = nchwToCNHW(k, s.N, s.KS*s.KS, s.OutH()*s.OutW())
			}
			y := devBuf(t, d, m, 4*ny)
			must(t, run(d.e, kBlurDown, int64(ny), &blurArgs{y: cdptr(y), x: cdptr(devBuf(t, d, m, x)), k: cdptr(devBuf(t, d, m, kd)),
				n: ci(s.N), c: 3, h: ci(s.H), w: ci(s.W), ks: ci(s.KS), s: ci(s.Scale), oh: ci(s.OutH()), ow: ci(s.OutW()),
				klayout: ci(layout), total: ci64(ny)}))
			if e := maxAbs(download(t, d, y, ny), want); e != 0 {
				t.Errorf("differs from kernels.BlurDownRef by %g (the same operations in the same order give the same bits)", e)
			}
		})
	}

	t.Run("softmax_cols", func(t *testing.T) {
		const n, dim, hw = 4, 9, 6
		x := randF32(r, n*dim*hw, -3, 3)
		want := make([]float32, len(x))
		kernels.Softmax(n, dim, hw, want, x)
		in := devBuf(t, d, m, nchwToCNHW(x, n, dim, hw))
		out := devBuf(t, d, m, 4*len(x))
		must(t, run(d.e, kSoftmaxCols, n*hw, &softmaxArgs{out: cdptr(out), in: cdptr(in), d: dim, m: n * hw, total: n * hw}))
		got := cnhwToNCHW(download(t, d, out, len(x)), n, dim, hw)
		if e := maxAbs(got, want); e > 1e-7 {
			t.Errorf("differs from kernels.Softmax by %g", e)
		}
		// Transposed (one kernel per column, hw = 1): [column][channel].
		x1 := randF32(r, n*dim, -3, 3)
		want1 := make([]float32, len(x1))
		kernels.Softmax(n, dim, 1, want1, x1)
		in1 := devBuf(t, d, m, nchwToCNHW(x1, n, dim, 1))
		out1 := devBuf(t, d, m, 4*len(x1))
		must(t, run(d.e, kSoftmaxCols, n, &softmaxArgs{out: cdptr(out1), in: cdptr(in1), d: dim, transposed: 1, m: n, total: n}))
		if e := maxAbs(download(t, d, out1, len(x1)), want1); e > 1e-7 {
			t.Errorf("transposed: differs from kernels.Softmax by %g", e)
		}
	})

	t.Run("center_planes+noise_stats+add_noise", func(t *testing.T) {
		const n, c, hw = 3, 3, 50
		noise := randF32(r, n*c*hw, -0.1, 0.2)
		clean := randF32(r, n*c*hw, 0, 1)
		want := make([]float32, len(noise))
		kernels.CenterPlanes(n*c, hw, want, noise)
		nz := devBuf(t, d, m, nchwToCNHW(noise, n, c, hw))
		must(t, run(d.e, kCenterPlanes, n*c, &centerArgs{x: cdptr(nz), c: c, n: n, hw: hw, total: n * c}))
		got := cnhwToNCHW(download(t, d, nz, len(noise)), n, c, hw)
		if e := maxAbs(got, want); e != 0 {
			t.Errorf("center_planes differs from kernels.CenterPlanes by %g", e)
		}
		mean, std := devBuf(t, d, m, 4*n), devBuf(t, d, m, 4*n)
		must(t, run(d.e, kNoiseStats, n, &noiseStatsArgs{mean: cdptr(mean), std: cdptr(std), noise: cdptr(nz), n: n, c: c, hw: hw, total: n}))
		gm, gs := download(t, d, mean, n), download(t, d, std, n)
		y := devBuf(t, d, m, 4*len(noise))
		must(t, run(d.e, kAddNoise, int64(len(noise)), &addNoiseArgs{y: cdptr(y), clean: cdptr(devBuf(t, d, m, clean)), noise: cdptr(nz), n: n, c: c, hw: hw, total: ci64(len(noise))}))
		gy := download(t, d, y, len(noise))
		for i := range n {
			wm, ws := model.NoiseStats(want[i*c*hw : (i+1)*c*hw])
			if gm[i] != wm || gs[i] != ws {
				t.Errorf("sample %d: noise stats %g, %g; model.NoiseStats %g, %g", i, gm[i], gs[i], wm, ws)
			}
		}
		for i := range gy {
			if gy[i] != clean[i]+want[i] {
				t.Fatalf("add_noise[%d] = %g, want %g", i, gy[i], clean[i]+want[i])
			}
		}
	})

	t.Run("fourier_quant", func(t *testing.T) {
		x := randF32(r, 500, -0.1, 1.1)
		want := make([]float32, len(x))
		kernels.FourierQuant(want, x)
		y := devBuf(t, d, m, 4*len(x))
		must(t, run(d.e, kFourierQuant, int64(len(x)), &quantArgs{y: cdptr(y), x: cdptr(devBuf(t, d, m, x)), total: ci64(len(x))}))
		// sin differs by an ulp or two in float64 between libraries.
		if e := maxAbs(download(t, d, y, len(x)), want); e > 1e-7 {
			t.Errorf("differs from kernels.FourierQuant by %g", e)
		}
	})

	// A convolution layer: im2col (3x3, and the bfloat16 conversion of a
	// 1x1) and the GEMM, then the epilogue, against kernels.Conv2DRef and
	// the ConvStep definition.
	for _, tc := range []struct {
		k    int
		prec Precision
		tol  float64
	}{{3, FP32, 2e-5}, {1, FP32, 2e-5}, {3, BF16, 0.05}, {1, BF16, 0.05}, {3, TF32, 0.01}} {
		t.Run(fmt.Sprintf("conv%dx%d/%s", tc.k, tc.k, tc.prec), func(t *testing.T) {
			const n, cin, cout, h, w = 3, 5, 7, 6, 5
			hw, P := h*w, n*h*w
			x := randF32(r, n*cin*hw, -1, 1)
			res := randF32(r, n*cout*hw, -1, 1)
			st := model.ConvStep{In: cin, Out: cout, K: tc.k, W: randF32(r, cout*cin*tc.k*tc.k, -0.5, 0.5), B: randF32(r, cout, -0.5, 0.5),
				Scale: make([]float64, cout), Shift: make([]float64, cout), ReLU: true}
			for c := range cout {
				st.Scale[c], st.Shift[c] = 0.5+r.Float64(), r.Float64()-0.5
			}
			sh := kernels.ConvShape{N: n, C: cin, H: h, W: w, K: cout, KH: tc.k, KW: tc.k, Stride: 1, Pad: tc.k / 2}
			want := make([]float32, n*cout*hw)
			kernels.Conv2DRef(sh, want, x, st.W, st.B, kernels.Act{})
			for i := range want {
				c := (i / hw) % cout
				v := float32(st.Scale[c]*float64(want[i]) + st.Shift[c])
				v = res[i] + v
				want[i] = max(v, 0)
			}
			s := &pdmSampler{d: d, n: n, mem: devMem{e: d.e}}
			defer s.mem.free()
			l := layer{in: cin, out: cout, k: tc.k, relu: true, prec: tc.prec}
			wb := f32Bytes(st.W)
			if tc.prec == BF16 {
				wb = u16Bytes(toBF16(st.W))
			}
			l.w, l.b = devBuf(t, d, m, len(wb)), devBuf(t, d, m, st.B)
			must(t, d.e.h2d(l.w, wb))
			l.scale, l.shift = devBuf(t, d, m, st.Scale), devBuf(t, d, m, st.Shift)
			rows, elem, needed := colRow(l)
			if needed {
				s.col = devBuf(t, d, m, rows*elem*P)
			}
			y := devBuf(t, d, m, 4*cout*P)
			must(t, s.conv(l, devBuf(t, d, m, nchwToCNHW(x, n, cin, hw)), y, devBuf(t, d, m, nchwToCNHW(res, n, cout, hw)), h, w))
			got := cnhwToNCHW(download(t, d, y, cout*P), n, cout, hw)
			if e := maxAbs(got, want); e > tc.tol {
				t.Errorf("differs from kernels.Conv2DRef by %g (tolerance %g)", e, tc.tol)
			}
		})
	}

	t.Run("bicubic", func(t *testing.T) {
		for _, sz := range [][4]int{{32, 32, 8, 8}, {33, 20, 9, 7}, {16, 16, 16, 8}} {
			h, w, oh, ow := sz[0], sz[1], sz[2], sz[3]
			x := randU8(r, 2*3*h*w)
			want := make([]float32, 2*3*oh*ow)
			for i := range 2 {
				kernels.ResizeBicubicU8(3, h, w, oh, ow, want[i*3*oh*ow:(i+1)*3*oh*ow], x[i*3*h*w:(i+1)*3*h*w])
			}
			// The sampler's passes, as the bicubic degradation runs them
			// (scale 1 on an axis that keeps its size).
			s := &fixedSampler{d: d, n: 2, h: h, w: w, oh: oh, ow: ow, bicu: true, mem: devMem{e: d.e}}
			s.passes = kernels.BicubicPasses(h, w, oh, ow)
			mid := 0
			if len(s.passes) == 2 {
				mid = 4 * 2 * 3 * h * w / s.passes[0].In * s.passes[0].Out
			}
			must(t, s.alloc(align(2*3*h*w), mid))
			for _, p := range s.passes {
				s.idx = append(s.idx, devBuf(t, d, m, p.Idx))
				s.wt = append(s.wt, devBuf(t, d, m, p.W))
			}
			b := &model.SampleBatch{X: [][]uint8{x[:3*h*w], x[3*h*w:]}, Y: [][]float32{make([]float32, 3*oh*ow), make([]float32, 3*oh*ow)}}
			must(t, s.Run(b))
			got := append(b.Y[0], b.Y[1]...)
			if e := maxAbs(got, want); e != 0 {
				t.Errorf("%dx%d -> %dx%d: differs from kernels.ResizeBicubicU8 by %g", h, w, oh, ow, e)
			}
			s.Close()
		}
	})
}

// nchwToCNHW reorders n x c x hw into c x n x hw.
func nchwToCNHW(v []float32, n, c, hw int) []float32 {
	out := make([]float32, len(v))
	for i := range n {
		for ch := range c {
			copy(out[(ch*n+i)*hw:(ch*n+i+1)*hw], v[(i*c+ch)*hw:(i*c+ch+1)*hw])
		}
	}
	return out
}

func cnhwToNCHW(v []float32, n, c, hw int) []float32 {
	out := make([]float32, len(v))
	for i := range n {
		for ch := range c {
			copy(out[(i*c+ch)*hw:(i*c+ch+1)*hw], v[(ch*n+i)*hw:(ch*n+i+1)*hw])
		}
	}
	return out
}

// batch is one random batch for a PDM: crops, latents, outputs.
func randomBatch(p *model.PDM, r *rand.Rand, n, hr int) *model.SampleBatch {
	lr := p.LRSize(hr)
	b := &model.SampleBatch{X: make([][]uint8, n), Y: make([][]float32, n)}
	zk, zn := p.LatentShapes(n, lr, lr)
	b.ZK = make([]float32, prod(zk))
	if zn != nil {
		b.ZN = make([]float32, prod(zn))
	}
	if !p.Cfg.Kernel.Spatial {
		b.Kernels = make([][]float32, n)
	}
	if p.Cfg.Noise.Mode != model.NoiseOff {
		b.NoiseMean, b.NoiseStd = make([]float32, n), make([]float32, n)
	}
	for i := range n {
		b.X[i] = randU8(r, 3*hr*hr)
		b.Y[i] = make([]float32, 3*lr*lr)
		if b.Kernels != nil {
			b.Kernels[i] = make([]float32, p.Cfg.Kernel.Size*p.Cfg.Kernel.Size)
		}
		var zni []float32
		if b.ZN != nil {
			zni = b.ZN[i*len(b.ZN)/n : (i+1)*len(b.ZN)/n]
		}
		p.DrawLatents(r, b.ZK[i*len(b.ZK)/n:(i+1)*len(b.ZK)/n], zni)
	}
	return b
}

// outputsOf copies what a sampler wrote into b.
func outputsOf(b *model.SampleBatch) (y, k, stats []float32) {
	for i := range b.Y {
		y = append(y, b.Y[i]...)
		if b.Kernels != nil {
			k = append(k, b.Kernels[i]...)
		}
	}
	stats = append(append(stats, b.NoiseMean...), b.NoiseStd...)
	return y, k, stats
}

func cpuAndGPU(t *testing.T, d *Device, p *model.PDM, b *model.SampleBatch, n, hr int) (cy, ck, cs, gy, gk, gs []float32) {
	t.Helper()
	cpu, err := model.CPU.NewPDMSampler(p, n, hr, hr)
	must(t, err)
	defer cpu.Close()
	must(t, cpu.Run(b))
	cy, ck, cs = outputsOf(b)
	g, err := d.NewPDMSampler(p, n, hr, hr)
	must(t, err)
	defer g.Close()
	must(t, g.Run(b))
	gy, gk, gs = outputsOf(b)
	return
}

// realWeights is a PDM trained by `pdmflow run` (config cpu-small, 1500
// steps): weights whose kernels and noise are what a producer runs, not
// random ones.
func realWeights(t *testing.T) *model.PDM {
	t.Helper()
	path := filepath.Join("testdata", "cpu-small-pdm.safetensors")
	b, err := os.ReadFile(path)
	must(t, err)
	w, err := model.DecodeWeights(path, b, model.KindPDM)
	must(t, err)
	p, err := w.PDM()
	must(t, err)
	return p
}

// TestPDMBatch compares whole batches on the GPU with the CPU sampler: in
// fp32 y_ref within 1e-4, the kernels within 1e-6 and summing to 1 within
// 1e-6, the noise statistics within model.ToleranceFor; in TF32 and bf16
// within their tolerances, with the accuracy they cost logged as the PSNR
// of their y_ref against the CPU's.
func TestPDMBatch(t *testing.T) {
	type cfgCase struct {
		name string
		cfg  model.PDMConfig
		real bool
	}
	base := model.PDMConfig{Scale: 4,
		Kernel: model.KernelConfig{Size: 11, NC: 8, NF: 16, NB: 2, Conv: 1, Init: "gaussian", InitSigma: 1.5},
		Noise:  model.NoiseConfig{Mode: model.NoiseMixed, NC: 3, NF: 12, NB: 2, Conv: 3, ZeroMean: true}}
	with := func(f func(c *model.PDMConfig)) model.PDMConfig { c := base; f(&c); return c }
	cases := []cfgCase{
		{"real-cpu-small", model.PDMConfig{}, true},
		{"mixed-zeromean", base, false},
		{"mixed", with(func(c *model.PDMConfig) { c.Noise.ZeroMean = false }), false},
		{"z-only", with(func(c *model.PDMConfig) { c.Noise.Mode = model.NoiseZOnly }), false},
		{"content-only", with(func(c *model.PDMConfig) { c.Noise.Mode = model.NoiseContentOnly }), false},
		{"off", with(func(c *model.PDMConfig) { c.Noise.Mode = model.NoiseOff }), false},
		{"spatial-conv1", with(func(c *model.PDMConfig) { c.Kernel.Spatial = true }), false},
		{"spatial-conv3", with(func(c *model.PDMConfig) { c.Kernel.Spatial, c.Kernel.Conv = true, 3 }), false},
		{"fixed-z", with(func(c *model.PDMConfig) { c.FixKernelZ, c.FixNoiseZ = true, true }), false},
		{"x2-k5", with(func(c *model.PDMConfig) { c.Scale, c.Kernel.Size = 2, 5 }), false},
	}
	for _, prec := range []Precision{FP32, TF32, BF16} {
		d := openGPU(t, prec)
		tol, err := model.ToleranceFor(d.Tag())
		must(t, err)
		for _, tc := range cases {
			t.Run(string(prec)+"/"+tc.name, func(t *testing.T) {
				r := rand.New(rand.NewPCG(7, 8))
				var p *model.PDM
				if tc.real {
					p = realWeights(t)
				} else {
					var err error
					p, err = model.NewPDM(tc.cfg, tensor.Float32, 1)
					must(t, err)
					testutil.RandomizePDM(p, r, 0.3)
				}
				n, hr := 5, 48
				if tc.real {
					n, hr = 8, 64
				}
				b := randomBatch(p, r, n, hr)
				cy, ck, cs, gy, gk, gs := cpuAndGPU(t, d, p, b, n, hr)
				ey, ek, es := maxAbs(gy, cy), maxAbs(gk, ck), maxAbs(gs, cs)
				scale := maxAbs(cy, make([]float32, len(cy)))
				t.Logf("y_ref: max |gpu-cpu| %.3g (%.2g of max |y|), PSNR %.1f dB; kernels %.3g; noise stats %.3g", ey, ey/scale, psnr(gy, cy), ek, es)
				switch {
				case prec == FP32 || tc.real:
					// Trained weights make noise of a few hundredths: the
					// tolerances regenerate checks samples against.
					if ey > tol.YRef || ek > tol.Kernel || es > tol.Noise {
						t.Errorf("beyond the %s tolerance %+v", d.Tag(), tol)
					}
				default:
					// Random weights make noise of order 1, and TF32 and
					// bfloat16 err in proportion: bound the relative error.
					if bound := map[Precision]float64{TF32: 5e-3, BF16: 3e-2}[prec]; ey/scale > bound || ek > tol.Kernel {
						t.Errorf("y_ref differs by %.2g of its magnitude (bound %g), kernels by %g", ey/scale, bound, ek)
					}
				}
				if prec == FP32 && ey > 1e-4 {
					t.Errorf("fp32 y_ref differs by %g > 1e-4", ey)
				}
				kk := p.Cfg.Kernel.Size * p.Cfg.Kernel.Size
				for i := 0; i < len(gk); i += kk {
					var sum float64
					for _, v := range gk[i : i+kk] {
						sum += float64(v)
					}
					if math.Abs(sum-1) > 1e-6 {
						t.Errorf("kernel %d sums to %.9f", i/kk, sum)
					}
				}
				if psnr(gy, make([]float32, len(gy))) > 200 {
					t.Error("the GPU wrote nothing")
				}
			})
		}
		d.Close()
	}
}

// TestReload swaps weights into a sampler and compares with a fresh one;
// another configuration is refused.
func TestReload(t *testing.T) {
	d := openGPU(t, FP32)
	r := rand.New(rand.NewPCG(3, 4))
	cfg := model.PDMConfig{Scale: 4,
		Kernel: model.KernelConfig{Size: 9, NC: 4, NF: 8, NB: 1, Conv: 1, Init: "box"},
		Noise:  model.NoiseConfig{Mode: model.NoiseMixed, NC: 3, NF: 8, NB: 1, Conv: 3}}
	a, err := model.NewPDM(cfg, tensor.Float32, 1)
	must(t, err)
	bw, err := model.NewPDM(cfg, tensor.Float32, 2)
	must(t, err)
	testutil.RandomizePDM(a, r, 0.3)
	testutil.RandomizePDM(bw, r, 0.3)
	batch := randomBatch(a, r, 3, 32)
	s, err := d.NewPDMSampler(a, 3, 32, 32)
	must(t, err)
	defer s.Close()
	must(t, s.Run(batch))
	ya, _, _ := outputsOf(batch)
	must(t, s.Reload(bw))
	must(t, s.Run(batch))
	yb, _, _ := outputsOf(batch)
	fresh, err := d.NewPDMSampler(bw, 3, 32, 32)
	must(t, err)
	defer fresh.Close()
	must(t, fresh.Run(batch))
	yf, _, _ := outputsOf(batch)
	if e := maxAbs(yb, yf); e != 0 {
		t.Errorf("after a reload the sampler differs from a fresh one by %g", e)
	}
	if maxAbs(ya, yb) == 0 {
		t.Error("other weights gave the same batch")
	}
	other := cfg
	other.Noise.NF = 4
	c, err := model.NewPDM(other, tensor.Float32, 1)
	must(t, err)
	if err := s.Reload(c); err == nil {
		t.Error("a reload with another config was accepted")
	}
}

// TestFixedSamplers compares the gaussian and bicubic degradations' GPU
// samplers with the CPU's: the same operations in the same order, the same
// bits.
func TestFixedSamplers(t *testing.T) {
	d := openGPU(t, FP32)
	r := rand.New(rand.NewPCG(5, 5))
	const n, hr = 4, 40
	for _, kind := range []string{"blur", "bicubic"} {
		t.Run(kind, func(t *testing.T) {
			lr := (hr-1)/4 + 1
			b := &model.SampleBatch{X: make([][]uint8, n), Y: make([][]float32, n)}
			if kind == "blur" {
				b.Kernels = make([][]float32, n)
			}
			for i := range n {
				b.X[i], b.Y[i] = randU8(r, 3*hr*hr), make([]float32, 3*lr*lr)
				if b.Kernels != nil {
					b.Kernels[i] = randF32(r, 7*7, 0, 2.0/49)
				}
			}
			var cpu, g model.BatchSampler
			var err error
			if kind == "blur" {
				cpu, _ = model.CPU.NewBlurSampler(n, hr, hr, 7, 4)
				g, err = d.NewBlurSampler(n, hr, hr, 7, 4)
			} else {
				cpu, _ = model.CPU.NewBicubicSampler(n, hr, hr, 4)
				g, err = d.NewBicubicSampler(n, hr, hr, 4)
			}
			must(t, err)
			defer g.Close()
			must(t, cpu.Run(b))
			want, _, _ := outputsOf(b)
			must(t, g.Run(b))
			got, _, _ := outputsOf(b)
			if e := maxAbs(got, want); e != 0 {
				t.Errorf("differs from the CPU by %g", e)
			}
		})
	}
}

// TestRefusesContentDependentKernels: the GPU sampler refuses a PDM whose
// kernel network takes the image (kernel.mix), with an error naming it,
// instead of running a network it does not build.
func TestRefusesContentDependentKernels(t *testing.T) {
	d := openGPU(t, FP32)
	cfg := model.PDMConfig{Scale: 4,
		Kernel: model.KernelConfig{Size: 9, NC: 4, NF: 8, NB: 1, Spatial: true, Conv: 1, Mix: true, Init: "box"},
		Noise:  model.NoiseConfig{Mode: model.NoiseOff}}
	p, err := model.NewPDM(cfg, tensor.Float32, 1)
	must(t, err)
	s, err := d.NewPDMSampler(p, 2, 32, 32)
	if err == nil {
		s.Close()
		t.Fatal("the GPU sampler accepted a content-dependent kernel network")
	}
	if !strings.Contains(err.Error(), "kernel.mix") {
		t.Errorf("error %q does not name kernel.mix", err)
	}
	// The same network without mix is accepted.
	cfg.Kernel.Mix = false
	q, err := model.NewPDM(cfg, tensor.Float32, 1)
	must(t, err)
	s, err = d.NewPDMSampler(q, 2, 32, 32)
	must(t, err)
	s.Close()
}
