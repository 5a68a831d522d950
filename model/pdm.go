package model

import (
	"errors"
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// PDM is the probabilistic degradation model: a kernel network mapping z_k
// to blur kernels and a noise network mapping z_n (and the clean LR image)
// to noise, y = (x * k) downsampled + n (pdm-spec §2, B).
type PDM struct {
	Cfg    PDMConfig
	Kernel *Module // "kernel.*"
	Noise  *Module // "noise.*", nil when the noise mode is off

	kHead   conv
	kHeadBN bn
	kBlocks []bnResBlock
	kTail   conv

	nHead   conv
	nHeadBN bn
	nBlocks []bnResBlock
	nTail   conv
}

// NewPDM builds a PDM with parameters of type dt, initialised from seed.
func NewPDM(cfg PDMConfig, dt tensor.Dtype, seed uint64) (*PDM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0x9d3))
	p := &PDM{Cfg: cfg, Kernel: NewModule("kernel", dt)}
	k := cfg.Kernel
	kc := 1
	if k.Spatial {
		kc = k.Conv
	}
	kin := k.NC
	if k.Mix {
		kin += 3 // the HR image on the LR grid
	}
	p.kHead = p.Kernel.newConv(r, "head", kin, k.NF, kc, 1, true)
	p.kHeadBN = p.Kernel.newBN("head.bn", k.NF)
	for i := 0; i < k.NB; i++ {
		p.kBlocks = append(p.kBlocks, p.Kernel.newBNResBlock(r, fmt.Sprintf("body.%d", i), k.NF, kc))
	}
	taps := k.Size * k.Size
	// The last layer starts at zero weights, so every z gives the initial
	// kernel, set by the bias (pdm-spec §2.1, "zero_init").
	p.kTail = conv{
		W:      p.Kernel.add("tail.weight", true, make([]float64, taps*k.NF), taps, k.NF, 1, 1),
		B:      p.Kernel.add("tail.bias", true, initialKernelLogits(k, cfg.Scale), taps),
		Stride: 1,
	}
	n := cfg.Noise
	if n.Mode == NoiseOff {
		return p, nil
	}
	p.Noise = NewModule("noise", dt)
	in := n.NC
	switch n.Mode {
	case NoiseMixed:
		in = 3 + n.NC
	case NoiseContentOnly:
		in = 3
	}
	p.nHead = p.Noise.newConv(r, "head", in, n.NF, n.Conv, 1, true)
	p.nHeadBN = p.Noise.newBN("head.bn", n.NF)
	for i := 0; i < n.NB; i++ {
		p.nBlocks = append(p.nBlocks, p.Noise.newBNResBlock(r, fmt.Sprintf("body.%d", i), n.NF, n.Conv))
	}
	// Zero init: the initial noise is exactly zero (pdm-spec §2.3).
	p.nTail = conv{
		W:      p.Noise.add("tail.weight", true, make([]float64, 3*n.NF), 3, n.NF, 1, 1),
		B:      p.Noise.add("tail.bias", true, make([]float64, 3), 3),
		Stride: 1,
	}
	return p, nil
}

// initialKernelLogits returns the bias of the kernel network's last layer,
// whose softmax is the initial kernel.
//
// The Gaussian start is centred on the middle of the scale x scale block of
// HR pixels that an LR pixel covers, (scale-1)/2 taps right of and below
// the window's centre: blur + downsample samples at HR (s*i, s*j), the
// block's top-left corner, so a kernel centred there gives LR images aligned
// as MATLAB's imresize (and every SR benchmark's LR) are. Unpaired
// adversarial training cannot see a global sub-pixel shift, so the start
// decides it; the box start (the official code's) is centred on the
// window and so keeps its (s-1)/2-pixel offset.
func initialKernelLogits(k KernelConfig, scale int) []float64 {
	taps := k.Size * k.Size
	b := make([]float64, taps)
	c := k.Size / 2
	switch k.Init {
	case "gaussian":
		off := float64(scale-1) / 2
		for u := 0; u < k.Size; u++ {
			for v := 0; v < k.Size; v++ {
				du, dv := float64(u-c)-off, float64(v-c)-off
				b[u*k.Size+v] = -(du*du + dv*dv) / (2 * k.InitSigma * k.InitSigma)
			}
		}
	default: // box: one-hot centre, as the official code
		b[c*k.Size+c] = 1
	}
	return b
}

// Modules lists the PDM's modules (the kernel network, then the noise
// network if there is one).
func (p *PDM) Modules() []*Module {
	if p.Noise == nil {
		return []*Module{p.Kernel}
	}
	return []*Module{p.Kernel, p.Noise}
}

// LatentShapes returns the shapes of z_k and z_n for a batch of n HR images
// whose LR size is h x w (z_n is nil when the noise network takes no z).
func (p *PDM) LatentShapes(n, h, w int) (zk, zn []int) {
	zk = []int{n, p.Cfg.Kernel.NC, 1, 1}
	if p.Cfg.Kernel.Spatial {
		zk = []int{n, p.Cfg.Kernel.NC, h, w}
	}
	switch p.Cfg.Noise.Mode {
	case NoiseMixed, NoiseZOnly:
		zn = []int{n, p.Cfg.Noise.NC, h, w}
	}
	return zk, zn
}

// LRSize is the LR size PDM produces from an HR side of hr pixels.
func (p *PDM) LRSize(hr int) int { return (hr-1)/p.Cfg.Scale + 1 }

// PDMOutput holds the nodes of one PDM forward pass.
type PDMOutput struct {
	Kernel *G.Node // N x k*k, or N x k*k x h x w for spatially variant kernels
	Clean  *G.Node // y_clean = (x * k) downsampled
	Noise  *G.Node // n (nil when the noise mode is off)
	Fake   *G.Node // y = y_clean + n, or the smooth quantisation of y_clean
}

// Forward adds the degradation of the HR batch hr (N x 3 x H x W in [0,1])
// with latents zk and zn (shapes from LatentShapes; zn nil when unused).
// train selects BatchNorm's batch statistics; inference uses the running
// ones, so that each sample's degradation depends on its own latents only.
func (p *PDM) Forward(g *Graph, hr, zk, zn *G.Node, train bool) PDMOutput {
	var out PDMOutput
	out.Kernel = p.KernelNet(g, hr, zk, train)
	out.Clean = g.BlurDown(hr, out.Kernel, p.Cfg.Kernel.Size, p.Cfg.Scale)
	if p.Noise == nil {
		out.Fake = g.FourierQuant(out.Clean)
		return out
	}
	out.Noise = p.noise(g, g.Detach(out.Clean), zn, train)
	out.Fake = g.AddScaled(out.Clean, out.Noise, 1)
	return out
}

// KernelNet adds the kernel network alone: z_k (from LatentShapes) to
// kernels, N x k*k (or N x k*k x h x w when spatially variant). hr, the HR
// batch, is read only by a content-dependent network (Cfg.Kernel.Mix),
// whose input is cat(hr resized to z_k's h x w by bicubic interpolation,
// z_k); otherwise it may be nil.
func (p *PDM) KernelNet(g *Graph, hr, zk *G.Node, train bool) *G.Node {
	n, _, zh, zw, ok := g.shape4("kernel net", zk)
	if !ok {
		return nil
	}
	k := p.Cfg.Kernel
	// With z_k fixed (the deterministic ablation) the network's input is
	// constant: its running variance decays to zero, and inference
	// BatchNorm would then blow the running mean's lag up by 1/sqrt(eps).
	// Batch statistics of a constant input give every sample the same
	// kernel whatever the batch, so they serve inference too. A
	// content-dependent network's input is the image: not constant.
	train = train || p.fixedKernelInput()
	in := zk
	if k.Mix {
		if hr == nil {
			g.fail(errors.New("model: kernel net: a content-dependent kernel network (kernel.mix) needs the HR image"))
			return nil
		}
		in = g.Concat(g.ResizeData(hr, zh, zw), zk)
	}
	h := g.applyConv(in, p.kHead, ident)
	h = g.applyBN(h, p.kHeadBN, train, relu)
	for _, b := range p.kBlocks {
		h = g.applyBNResBlock(h, b, train)
	}
	kern := g.Softmax(g.applyConv(h, p.kTail, ident))
	if !k.Spatial {
		kern = g.Reshape(kern, n, k.Size*k.Size)
	}
	return kern
}

// fixedKernelInput reports whether the kernel network's input is the same
// for every sample: z_k fixed to zero and no image in the input.
func (p *PDM) fixedKernelInput() bool { return p.Cfg.FixKernelZ && !p.Cfg.Kernel.Mix }

// noise adds the noise network on the (detached) clean LR and z_n.
func (p *PDM) noise(g *Graph, clean, zn *G.Node, train bool) *G.Node {
	var in *G.Node
	switch p.Cfg.Noise.Mode {
	case NoiseMixed:
		in = g.Concat(clean, zn)
	case NoiseZOnly:
		in = zn
	case NoiseContentOnly:
		in = clean
	}
	h := g.applyConv(in, p.nHead, ident)
	h = g.applyBN(h, p.nHeadBN, train, relu)
	for _, b := range p.nBlocks {
		h = g.applyBNResBlock(h, b, train)
	}
	n := g.applyConv(h, p.nTail, ident)
	if p.Cfg.Noise.ZeroMean {
		n = g.CenterPlanes(n)
	}
	return n
}

// SampleLatents draws z_k and z_n ~ N(0, I) for n samples of LR size h x w
// from r, or zeros where the config fixes them (the deterministic
// ablation). zn is nil when the noise network takes no z.
func (p *PDM) SampleLatents(r *rand.Rand, dt tensor.Dtype, n, h, w int) (zk, zn *tensor.Dense) {
	szk, szn := p.LatentShapes(n, h, w)
	zk = normalDense(r, dt, !p.Cfg.FixKernelZ, szk...)
	if szn != nil {
		zn = normalDense(r, dt, !p.Cfg.FixNoiseZ, szn...)
	}
	return zk, zn
}

// normalDense returns a tensor of N(0,1) draws from r, or of zeros when
// random is false (r is then not advanced).
func normalDense(r *rand.Rand, dt tensor.Dtype, random bool, shape ...int) *tensor.Dense {
	size := 1
	for _, s := range shape {
		size *= s
	}
	if dt == tensor.Float64 {
		d := make([]float64, size)
		if random {
			for i := range d {
				d[i] = r.NormFloat64()
			}
		}
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
	}
	d := make([]float32, size)
	if random {
		for i := range d {
			d[i] = float32(r.NormFloat64())
		}
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
}
