package model

import (
	"errors"
	"fmt"
	"strings"
)

// KernelConfig configures the kernel network (pdm-spec §2.1).
type KernelConfig struct {
	Size int `yaml:"size" json:"size"` // kernel side, odd (21 in the paper)
	NC   int `yaml:"nc" json:"nc"`     // dimension f_k of z_k
	NF   int `yaml:"nf" json:"nf"`     // features
	NB   int `yaml:"nb" json:"nb"`     // residual blocks
	// Spatial draws z_k on the LR grid, one kernel per LR pixel.
	Spatial bool `yaml:"spatial" json:"spatial"`
	// Mix makes the kernels depend on the image (the paper's Table 5, the
	// official code's mix): the kernel network's input is cat(the HR image
	// bicubic-downsampled to the LR grid, z_k), so its head takes 3 + NC
	// channels. Spatially variant kernels only. With FixKernelZ the
	// kernels depend on the image alone (Table 5's k = netK(x)).
	Mix bool `yaml:"mix,omitempty" json:"mix,omitempty"`
	// Conv is the side of the convolutions in spatial mode: 1 makes the
	// kernels of neighbouring pixels independent, 3 correlates them. The
	// spatially invariant network is an MLP on z_k (1x1 convolutions).
	Conv int `yaml:"conv" json:"conv"`
	// Init is the initial kernel: "box" is the official code's one-hot bias
	// through the softmax (close to a uniform Size x Size box),
	// "gaussian" a centred Gaussian of standard deviation InitSigma HR px.
	Init      string  `yaml:"init" json:"init"`
	InitSigma float64 `yaml:"init_sigma" json:"init_sigma"`
}

// Noise modes (pdm-spec B).
const (
	NoiseMixed       = "mixed"        // n = netN(cat(y_clean.detach(), z_n)), per-pixel z_n
	NoiseZOnly       = "z-only"       // n = netN(z_n): content-independent
	NoiseContentOnly = "content-only" // n = netN(y_clean.detach()): deterministic
	NoiseOff         = "off"          // no noise: smooth 8-bit quantisation of y_clean
)

// NoiseConfig configures the noise network (pdm-spec §2.3, B).
type NoiseConfig struct {
	Mode string `yaml:"mode" json:"mode"`
	NC   int    `yaml:"nc" json:"nc"`     // channels of z_n
	NF   int    `yaml:"nf" json:"nf"`     // features
	NB   int    `yaml:"nb" json:"nb"`     // residual blocks
	Conv int    `yaml:"conv" json:"conv"` // convolution side (3: spatially correlated noise)
	// ZeroMean subtracts from the noise its mean over each sample's plane,
	// per channel. The regulariser lambda*mean(n^2) only discourages an
	// offset, and the discriminator, whose InstanceNorm removes each
	// plane's mean, hardly sees one: without this the noise can shift the
	// fake LR's colours, and the SR network learns to shift them back.
	ZeroMean bool `yaml:"zero_mean" json:"zero_mean"`
}

// PDMConfig configures the probabilistic degradation model.
type PDMConfig struct {
	Scale  int          `yaml:"scale" json:"scale"`
	Kernel KernelConfig `yaml:"kernel" json:"kernel"`
	Noise  NoiseConfig  `yaml:"noise" json:"noise"`
	// FixKernelZ and FixNoiseZ fix z_k and z_n to zero: the deterministic
	// ablation of the paper's Table 4.
	FixKernelZ bool `yaml:"fix_kernel_z" json:"fix_kernel_z"`
	FixNoiseZ  bool `yaml:"fix_noise_z" json:"fix_noise_z"`
}

// DiscConfig configures the PatchGAN discriminator (pdm-spec §3).
type DiscConfig struct {
	NF     int `yaml:"nf" json:"nf"`         // features of the first layer (64)
	Out    int `yaml:"out" json:"out"`       // output channels (64 in the official code)
	Stride int `yaml:"stride" json:"stride"` // stride of layers 2 and 3: 2 when PDM trains alone, 1 jointly
	// BatchStd inserts ProGAN's minibatch standard deviation before the
	// last convolution (Graph.MinibatchStd: one more channel holding the
	// batch's mean standard deviation, so the last convolution has one
	// more input channel): the discriminator can see that a batch of fakes
	// lacks the spread of a real batch (issue 13). False: the official
	// PatchGAN.
	BatchStd bool `yaml:"batch_std" json:"batch_std"`
	// Pack makes the discriminator judge Pack samples at once, stacked
	// along the channels (PacGAN, Lin et al. 2018): a pack of fakes that
	// all look alike is told from a pack of reals that differ, which a
	// discriminator of one sample cannot do (issue 13). 0 or 1: one sample.
	Pack int `yaml:"pack,omitempty" json:"pack,omitempty"`
}

// pack is the number of samples the discriminator judges at once.
func (c DiscConfig) pack() int { return max(1, c.Pack) }

// SRConfig configures the super-resolution network (pdm-spec §4). Arch
// selects the architecture (SRArchs: "edsr", "rrdb"); each uses the fields
// its comment names and refuses the others.
type SRConfig struct {
	Arch  string `yaml:"arch" json:"arch"` // "edsr" or "rrdb"
	Scale int    `yaml:"scale" json:"scale"`
	NF    int    `yaml:"nf" json:"nf"` // features (edsr, rrdb)
	NB    int    `yaml:"nb" json:"nb"` // residual blocks (edsr), RRDBs (rrdb)
	// GC is RRDB's growth channels: each of an RDB's first four
	// convolutions adds GC channels to its input (32 in ESRGAN). rrdb only.
	GC       int     `yaml:"gc,omitempty" json:"gc,omitempty"`
	ResScale float64 `yaml:"res_scale,omitempty" json:"res_scale"` // edsr: residual scaling
	// RGBRange is the value range EDSR's body works in (255 as EDSR).
	RGBRange float64 `yaml:"rgb_range,omitempty" json:"rgb_range"`
	// Residual adds the network's output to a bicubic upsampling of its
	// input, so that it learns only the missing detail (edsr, rrdb).
	Residual bool `yaml:"residual" json:"residual"`
	// Upsampler is EDSR's "pixelshuffle" (conv nf -> 4nf and a x2 pixel
	// shuffle per factor of 2, then a tail conv at full resolution) or
	// "light": one conv nf -> 3*s*s at LR resolution and a pixel shuffle
	// straight to RGB (ESPCN's), a fraction of the cost for CPU presets.
	// edsr only.
	Upsampler string `yaml:"upsampler,omitempty" json:"upsampler"`
}

func odd(n int) bool { return n%2 == 1 }

// Validate reports the first setting that cannot work.
func (c PDMConfig) Validate() error {
	var errs []error
	if c.Scale < 1 || c.Scale > 8 {
		errs = append(errs, fmt.Errorf("scale %d outside 1..8", c.Scale))
	}
	k := c.Kernel
	if k.Size < 1 || !odd(k.Size) {
		errs = append(errs, fmt.Errorf("kernel.size %d is not a positive odd number", k.Size))
	}
	if k.NC < 1 || k.NF < 1 || k.NB < 0 {
		errs = append(errs, fmt.Errorf("kernel nc/nf/nb %d/%d/%d", k.NC, k.NF, k.NB))
	}
	if k.Spatial && k.Conv != 1 && k.Conv != 3 {
		errs = append(errs, fmt.Errorf("kernel.conv %d: 1 or 3", k.Conv))
	}
	if k.Mix && !k.Spatial {
		errs = append(errs, errors.New("kernel.mix needs kernel.spatial: content-dependent kernels differ from pixel to pixel, so the kernel network runs on the LR grid"))
	}
	switch k.Init {
	case "box":
	case "gaussian":
		if k.InitSigma <= 0 {
			errs = append(errs, fmt.Errorf("kernel.init_sigma %g must be positive for a gaussian init", k.InitSigma))
		}
	default:
		errs = append(errs, fmt.Errorf("kernel.init %q: box or gaussian", k.Init))
	}
	n := c.Noise
	switch n.Mode {
	case NoiseOff:
	case NoiseMixed, NoiseZOnly, NoiseContentOnly:
		if n.NF < 1 || n.NB < 0 || (n.Mode != NoiseContentOnly && n.NC < 1) {
			errs = append(errs, fmt.Errorf("noise nc/nf/nb %d/%d/%d", n.NC, n.NF, n.NB))
		}
		if n.Conv != 1 && n.Conv != 3 {
			errs = append(errs, fmt.Errorf("noise.conv %d: 1 or 3", n.Conv))
		}
	default:
		errs = append(errs, fmt.Errorf("noise.mode %q: mixed, z-only, content-only or off", n.Mode))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("model: pdm config: %w", err)
	}
	return nil
}

// Validate reports the first setting that cannot work.
func (c DiscConfig) Validate() error {
	if c.NF < 1 || c.Out < 1 || (c.Stride != 1 && c.Stride != 2) || c.Pack < 0 || c.Pack > 8 {
		return fmt.Errorf("model: discriminator config nf %d out %d stride %d pack %d", c.NF, c.Out, c.Stride, c.Pack)
	}
	return nil
}

// Validate reports every setting that cannot work.
func (c SRConfig) Validate() error {
	var errs []error
	a, ok := srArchs[c.Arch]
	if !ok {
		errs = append(errs, fmt.Errorf("arch %q: %s", c.Arch, strings.Join(SRArchs(), " or ")))
	}
	if c.Scale < 1 {
		errs = append(errs, fmt.Errorf("scale %d must be positive", c.Scale))
	}
	if c.NF < 1 || c.NB < 0 {
		errs = append(errs, fmt.Errorf("nf/nb %d/%d", c.NF, c.NB))
	}
	if ok && c.Scale >= 1 {
		errs = append(errs, a.validate(c)...)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("model: sr config: %w", err)
	}
	return nil
}
