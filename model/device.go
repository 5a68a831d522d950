package model

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"

	"github.com/pdmflow/pdmflow/kernels"
)

// A Device runs what a producer runs per batch: a PDM's forward pass in
// inference mode, and the fixed degradations (blur + downsample with given
// kernels, bicubic downsampling), on batches of 8-bit HR crops. CPU, in
// this package, is the reference; package gpu adds NVIDIA GPUs (cuda build
// tag). Everything above a Device (seeds, crops, latents, messages, hot
// reload, metrics) is the same whichever runs the batch.
//
// A Device and its samplers are not safe for concurrent use: a producer
// owns one device.
type Device interface {
	// Name is the device as the user named it: "cpu", "cuda:0", ...
	Name() string
	// Tag records in a message which arithmetic made it: "" for the CPU
	// reference (regenerated bit for bit), otherwise KIND/PRECISION, e.g.
	// "cuda/fp32" (regenerated within ToleranceFor's bounds).
	Tag() string
	// Describe says what runs: the CPU's threads and GEMM kernel, or the
	// GPU's name, memory and precision.
	Describe() string
	// NewPDMSampler prepares p's inference for batches of n HR crops of
	// h x w pixels.
	NewPDMSampler(p *PDM, n, h, w int) (BatchSampler, error)
	// NewBlurSampler prepares blur + downsample by scale with one ks x ks
	// kernel per sample, given in SampleBatch.Kernels (the gaussian
	// degradation).
	NewBlurSampler(n, h, w, ks, scale int) (BatchSampler, error)
	// NewBicubicSampler prepares MATLAB bicubic downsampling by scale (the
	// bicubic degradation, kernels.ResizeBicubicU8).
	NewBicubicSampler(n, h, w, scale int) (BatchSampler, error)
	// Close releases the device; its samplers must be closed first.
	Close() error
}

// A BatchSampler degrades batches of one shape on a device. Its buffers
// (and on a GPU its weights) are allocated once and reused by every Run.
type BatchSampler interface {
	// Run degrades one batch (see SampleBatch for what is read and what
	// is written).
	Run(b *SampleBatch) error
	// Reload swaps in new weights of the same PDM configuration between
	// two Runs, keeping the buffers (PDM samplers only).
	Reload(p *PDM) error
	// Close releases the sampler's buffers.
	Close()
}

// SampleBatch is one batch's input and where its results go. Every slice
// is the caller's; a sampler keeps none of them after Run returns.
type SampleBatch struct {
	// X holds the batch's n HR crops, 3*h*w bytes each (CHW, RGB, 0..255):
	// the degradations read them as v/255.
	X [][]uint8
	// ZK and ZN are the PDM's latents for the whole batch, laid out as
	// PDM.LatentShapes(n, lh, lw) gives (ZN nil when the noise network
	// takes no z). DrawLatents draws one sample's part.
	ZK, ZN []float32
	// Kernels: the blur sampler's input kernels (ks*ks each); for a PDM
	// sampler where its kernels are written (nil: not wanted; spatially
	// variant kernels are never written).
	Kernels [][]float32
	// Y receives the LR images, 3*lh*lw floats each, as generated (not
	// clamped or rounded).
	Y [][]float32
	// NoiseMean and NoiseStd receive, for a PDM with noise, each sample's
	// mean and standard deviation of its noise n (nil: not wanted).
	NoiseMean, NoiseStd []float32
}

// check validates b for a batch of n crops of 3*hrLen bytes, LR images of
// lrLen floats and kernels of kLen floats (0: no kernels read or written).
func (b *SampleBatch) check(what string, n, hrLen, lrLen, kLen int, kernelsIn bool) error {
	if len(b.X) != n || len(b.Y) != n {
		return fmt.Errorf("model: %s: %d crops and %d outputs for a batch of %d", what, len(b.X), len(b.Y), n)
	}
	for i := range n {
		if len(b.X[i]) != hrLen || len(b.Y[i]) != lrLen {
			return fmt.Errorf("model: %s: sample %d has %d HR bytes and %d LR floats, want %d and %d", what, i, len(b.X[i]), len(b.Y[i]), hrLen, lrLen)
		}
	}
	if kernelsIn && len(b.Kernels) != n {
		return fmt.Errorf("model: %s: %d kernels for a batch of %d", what, len(b.Kernels), n)
	}
	if b.Kernels != nil {
		if len(b.Kernels) != n {
			return fmt.Errorf("model: %s: %d kernels for a batch of %d", what, len(b.Kernels), n)
		}
		for i, k := range b.Kernels {
			if len(k) != kLen {
				return fmt.Errorf("model: %s: kernel %d has %d values, want %d", what, i, len(k), kLen)
			}
		}
	}
	if (b.NoiseMean != nil && len(b.NoiseMean) != n) || (b.NoiseStd != nil && len(b.NoiseStd) != n) {
		return fmt.Errorf("model: %s: %d noise means and %d deviations for a batch of %d", what, len(b.NoiseMean), len(b.NoiseStd), n)
	}
	return nil
}

// CheckBatch validates b for p's sampler of n crops of h x w pixels: the
// crops, outputs, latents, kernels and noise statistics have the lengths
// that sampler reads and writes. Every Device's PDM sampler calls it.
func (p *PDM) CheckBatch(b *SampleBatch, n, h, w int) error {
	lh, lw := p.LRSize(h), p.LRSize(w)
	kLen := 0
	if !p.Cfg.Kernel.Spatial {
		kLen = p.Cfg.Kernel.Size * p.Cfg.Kernel.Size
	}
	if err := b.check("pdm sampler", n, 3*h*w, 3*lh*lw, kLen, false); err != nil {
		return err
	}
	if p.Cfg.Kernel.Spatial && b.Kernels != nil {
		return errors.New("model: pdm sampler: spatially variant kernels are not written out; pass no Kernels")
	}
	zk, zn := p.LatentShapes(n, lh, lw)
	if len(b.ZK) != prod(zk) || (zn == nil) != (b.ZN == nil) || (zn != nil && len(b.ZN) != prod(zn)) {
		return fmt.Errorf("model: pdm sampler: latents of %d and %d values, want %v and %v", len(b.ZK), len(b.ZN), zk, zn)
	}
	return nil
}

// CheckBlurBatch validates b for a blur sampler (see CheckBatch).
func CheckBlurBatch(b *SampleBatch, s kernels.BlurShape) error {
	return b.check("blur sampler", s.N, 3*s.H*s.W, 3*s.OutH()*s.OutW(), s.KS*s.KS, true)
}

// CheckBicubicBatch validates b for a bicubic sampler (see CheckBatch).
func CheckBicubicBatch(b *SampleBatch, n, h, w, oh, ow int) error {
	return b.check("bicubic sampler", n, 3*h*w, 3*oh*ow, 0, false)
}

// DrawLatents draws one sample's z_k and z_n from r into zk and zn
// (lengths PDM.LatentShapes(1, lh, lw); zn nil when unused), exactly as
// SampleLatents draws them: z_k first, then z_n, each value a float32 of
// r.NormFloat64(), or zeros where the config fixes them.
func (p *PDM) DrawLatents(r interface{ NormFloat64() float64 }, zk, zn []float32) {
	fill := func(d []float32, random bool) {
		if !random {
			clear(d)
			return
		}
		for i := range d {
			d[i] = float32(r.NormFloat64())
		}
	}
	fill(zk, !p.Cfg.FixKernelZ)
	if zn != nil {
		fill(zn, !p.Cfg.FixNoiseZ)
	}
}

// NoiseStats returns the mean and standard deviation of v accumulated in
// float64: what a message records for a sample's noise.
func NoiseStats(v []float32) (mean, std float32) {
	var s, ss float64
	for _, x := range v {
		s += float64(x)
		ss += float64(x) * float64(x)
	}
	n := float64(len(v))
	m := s / n
	return float32(m), float32(math.Sqrt(math.Max(0, ss/n-m*m)))
}

// CPU is the reference device: the model's own graph and package kernels,
// on Workers() goroutines.
var CPU Device = cpuDevice{}

type cpuDevice struct{}

func (cpuDevice) Name() string { return "cpu" }
func (cpuDevice) Tag() string  { return "" }
func (cpuDevice) Describe() string {
	return fmt.Sprintf("cpu: %d threads (GOMAXPROCS %d), GEMM kernel %s", kernels.Workers(), runtime.GOMAXPROCS(0), kernels.GemmKernel())
}
func (cpuDevice) Close() error { return nil }

func (cpuDevice) NewPDMSampler(p *PDM, n, h, w int) (BatchSampler, error) {
	s, err := p.NewSampler(n, h, w)
	if err != nil {
		return nil, err
	}
	return &cpuPDM{s: s, hr: make([]float32, n*3*h*w)}, nil
}

func (cpuDevice) NewBlurSampler(n, h, w, ks, scale int) (BatchSampler, error) {
	s := kernels.BlurShape{N: n, C: 3, H: h, W: w, KS: ks, Scale: scale}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("model: blur sampler: %w", err)
	}
	x, k, y := s.Sizes()
	return &cpuBlur{s: s, x: make([]float32, x), k: make([]float32, k), y: make([]float32, y)}, nil
}

func (cpuDevice) NewBicubicSampler(n, h, w, scale int) (BatchSampler, error) {
	if n < 1 || h < 1 || w < 1 || scale < 1 {
		return nil, fmt.Errorf("model: bicubic sampler: batch %d of %dx%d at x%d", n, h, w, scale)
	}
	oh, ow := (h-1)/scale+1, (w-1)/scale+1
	return &cpuBicubic{n: n, h: h, w: w, oh: oh, ow: ow}, nil
}

// unit8Batch converts the batch's crops to floats in hr, a sample per
// worker at a time.
func unit8Batch(hr []float32, x [][]uint8) {
	kernels.ParallelFor(len(x), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			n := len(x[i])
			kernels.Unit8(hr[i*n:(i+1)*n], x[i])
		}
	})
}

// cpuPDM is the CPU's PDM sampler: a Sampler's graph.
type cpuPDM struct {
	s  *Sampler
	hr []float32
}

func (c *cpuPDM) Run(b *SampleBatch) error {
	s := c.s
	if err := s.p.CheckBatch(b, s.n, s.h, s.w); err != nil {
		return err
	}
	unit8Batch(c.hr, b.X)
	d, err := s.RunLatents(c.hr, b.ZK, b.ZN)
	if err != nil {
		return err
	}
	lrN := 3 * s.lh * s.lw
	kk := s.p.Cfg.Kernel.Size * s.p.Cfg.Kernel.Size
	kernels.ParallelFor(s.n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(b.Y[i], d.LR[i*lrN:(i+1)*lrN])
			if b.Kernels != nil {
				copy(b.Kernels[i], d.Kernel[i*kk:(i+1)*kk])
			}
			if d.Noise != nil && b.NoiseMean != nil {
				b.NoiseMean[i], b.NoiseStd[i] = NoiseStats(d.Noise[i*lrN : (i+1)*lrN])
			}
		}
	})
	return nil
}

func (c *cpuPDM) Reload(p *PDM) error {
	old := c.s
	if p.Cfg != old.p.Cfg {
		return fmt.Errorf("model: pdm sampler: reload with another config (%+v, was %+v)", p.Cfg, old.p.Cfg)
	}
	s, err := p.NewSampler(old.n, old.h, old.w)
	if err != nil {
		return err
	}
	old.Close()
	c.s = s
	return nil
}

func (c *cpuPDM) Close() { c.s.Close() }

// cpuBlur is the CPU's blur sampler: kernels.BlurDown on the whole batch.
type cpuBlur struct {
	s       kernels.BlurShape
	x, k, y []float32
}

func (c *cpuBlur) Run(b *SampleBatch) error {
	if err := CheckBlurBatch(b, c.s); err != nil {
		return err
	}
	unit8Batch(c.x, b.X)
	kk := c.s.KS * c.s.KS
	for i, k := range b.Kernels {
		copy(c.k[i*kk:], k)
	}
	kernels.BlurDown(c.s, c.y, c.x, c.k)
	lrN := len(c.y) / c.s.N
	for i, y := range b.Y {
		copy(y, c.y[i*lrN:])
	}
	return nil
}

func (c *cpuBlur) Reload(*PDM) error { return errors.New("model: a blur sampler has no weights") }
func (c *cpuBlur) Close()            {}

// cpuBicubic is the CPU's bicubic sampler: kernels.ResizeBicubicU8 per
// sample, a sample per worker at a time.
type cpuBicubic struct{ n, h, w, oh, ow int }

func (c *cpuBicubic) Run(b *SampleBatch) error {
	if err := CheckBicubicBatch(b, c.n, c.h, c.w, c.oh, c.ow); err != nil {
		return err
	}
	kernels.ParallelFor(c.n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			kernels.ResizeBicubicU8(3, c.h, c.w, c.oh, c.ow, b.Y[i], b.X[i])
		}
	})
	return nil
}

func (c *cpuBicubic) Reload(*PDM) error { return errors.New("model: a bicubic sampler has no weights") }
func (c *cpuBicubic) Close()            {}

// Tolerance is how far a regenerated sample may be from the recorded one
// when the two were made by different arithmetic (Device.Tag): the largest
// absolute difference of y_ref, of a kernel's taps, and of the noise
// statistics. The CPU reference regenerates its own samples bit for bit.
type Tolerance struct {
	YRef, Kernel, Noise float64
}

// Exact reports whether t asks for bit-identical values.
func (t Tolerance) Exact() bool { return t == Tolerance{} }

// ToleranceFor is the tolerance between samples made with tag (as
// recorded) and the CPU reference. The bounds are those package gpu's
// tests hold each precision to against the CPU (docs/reproducibility.md);
// "cudaemu" is that package's host emulation of a GPU, held to the same.
func ToleranceFor(tag string) (Tolerance, error) {
	if tag == "" {
		return Tolerance{}, nil
	}
	kind, prec, _ := strings.Cut(tag, "/")
	if kind == "cuda" || kind == "cudaemu" {
		switch prec {
		case "fp32":
			return Tolerance{YRef: 1e-4, Kernel: 1e-6, Noise: 1e-4}, nil
		case "tf32":
			return Tolerance{YRef: 5e-4, Kernel: 1e-6, Noise: 5e-4}, nil
		case "bf16":
			return Tolerance{YRef: 2e-3, Kernel: 1e-6, Noise: 2e-3}, nil
		}
	}
	return Tolerance{}, fmt.Errorf("model: no tolerance known for samples made by %q", tag)
}
