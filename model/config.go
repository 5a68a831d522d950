package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
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

// Bounds on every dimension of a network config, far above the presets
// (features 64-256, blocks 4-32, kernels 21x21). A weights file carries its
// config, so these are checked before anything is allocated: a small file
// whose config asks for 20000 features is refused, not built.
const (
	MaxScale      = 8       // PDM scale
	MaxKernelSize = 63      // kernel side (odd)
	MaxLatent     = 1024    // channels of z_k and z_n
	MaxFeatures   = 1024    // features of any layer (nf)
	MaxBlocks     = 256     // residual blocks
	MaxDiscOut    = 1024    // discriminator output channels
	MaxParams     = 1 << 27 // parameters of one network (512 MiB of float32)
)

// checkDim appends an error when v is outside [lo, hi].
func checkDim(errs *[]error, name string, v, lo, hi int) {
	if v < lo || v > hi {
		*errs = append(*errs, fmt.Errorf("%s %d outside %d..%d", name, v, lo, hi))
	}
}

// convParams is the parameter count of a k x k convolution in -> out with
// a bias.
func convParams(in, out, k int) int { return out*in*k*k + out }

// bnResBlockParams is the parameter count of a bnResBlock (two convs and
// a BatchNorm with its running statistics).
func bnResBlockParams(nf, k int) int { return 2*convParams(nf, nf, k) + 4*nf }

// KernelParams is the number of parameters (learnable weights and
// BatchNorm statistics) of the kernel network c describes, computed
// without building it. c's dimensions must be within the bounds Validate
// checks (no overflow then).
func (c PDMConfig) KernelParams() int {
	k := c.Kernel
	kc := 1
	if k.Spatial {
		kc = k.Conv
	}
	taps := k.Size * k.Size
	in := k.NC
	if k.Mix {
		in += 3 // the HR image on the LR grid
	}
	return convParams(in, k.NF, kc) + 4*k.NF + k.NB*bnResBlockParams(k.NF, kc) + taps*k.NF + taps
}

// NoiseParams is the same for the noise network (0 when the noise is off).
func (c PDMConfig) NoiseParams() int {
	n := c.Noise
	in := n.NC
	switch n.Mode {
	case NoiseOff:
		return 0
	case NoiseMixed:
		in = 3 + n.NC
	case NoiseContentOnly:
		in = 3
	}
	return convParams(in, n.NF, n.Conv) + 4*n.NF + n.NB*bnResBlockParams(n.NF, n.Conv) + 3*n.NF + 3
}

// ParamCount is the number of parameters of the PDM c describes (both
// networks): what NewPDM allocates and a weights file must hold.
func (c PDMConfig) ParamCount() int { return c.KernelParams() + c.NoiseParams() }

// ParamCount is the number of parameters of the SR network c describes,
// computed without building it (0 for an unknown architecture). c's
// dimensions must be within the bounds Validate checks.
func (c SRConfig) ParamCount() int {
	a, ok := srArchs[c.Arch]
	if !ok {
		return 0
	}
	return a.params(c)
}

// ParamCount is the number of parameters of the discriminator c describes.
func (c DiscConfig) ParamCount() int {
	nf, in4 := c.NF, 8*c.NF
	if c.BatchStd {
		in4++
	}
	return convParams(3*c.pack(), nf, 3) + convParams(nf, 2*nf, 3) + convParams(2*nf, 4*nf, 3) + convParams(4*nf, 8*nf, 3) + convParams(in4, c.Out, 3)
}

// Validate reports the first setting that cannot work.
func (c PDMConfig) Validate() error {
	var errs []error
	checkDim(&errs, "scale", c.Scale, 1, MaxScale)
	k := c.Kernel
	if k.Size < 1 || !odd(k.Size) || k.Size > MaxKernelSize {
		errs = append(errs, fmt.Errorf("kernel.size %d is not an odd number in 1..%d", k.Size, MaxKernelSize))
	}
	checkDim(&errs, "kernel.nc", k.NC, 1, MaxLatent)
	checkDim(&errs, "kernel.nf", k.NF, 1, MaxFeatures)
	checkDim(&errs, "kernel.nb", k.NB, 0, MaxBlocks)
	if k.Spatial && k.Conv != 1 && k.Conv != 3 {
		errs = append(errs, fmt.Errorf("kernel.conv %d: 1 or 3", k.Conv))
	}
	if k.Mix && !k.Spatial {
		errs = append(errs, errors.New("kernel.mix needs kernel.spatial: content-dependent kernels differ from pixel to pixel, so the kernel network runs on the LR grid"))
	}
	switch k.Init {
	case "box":
	case "gaussian":
		if !(k.InitSigma > 0) || math.IsInf(k.InitSigma, 0) {
			errs = append(errs, fmt.Errorf("kernel.init_sigma %g must be positive and finite for a gaussian init", k.InitSigma))
		}
	default:
		errs = append(errs, fmt.Errorf("kernel.init %q: box or gaussian", k.Init))
	}
	n := c.Noise
	switch n.Mode {
	case NoiseOff:
	case NoiseMixed, NoiseZOnly, NoiseContentOnly:
		if n.Mode != NoiseContentOnly {
			checkDim(&errs, "noise.nc", n.NC, 1, MaxLatent)
		} else {
			checkDim(&errs, "noise.nc", n.NC, 0, MaxLatent)
		}
		checkDim(&errs, "noise.nf", n.NF, 1, MaxFeatures)
		checkDim(&errs, "noise.nb", n.NB, 0, MaxBlocks)
		if n.Conv != 1 && n.Conv != 3 {
			errs = append(errs, fmt.Errorf("noise.conv %d: 1 or 3", n.Conv))
		}
	default:
		errs = append(errs, fmt.Errorf("noise.mode %q: mixed, z-only, content-only or off", n.Mode))
	}
	if len(errs) == 0 {
		if n := c.KernelParams(); n > MaxParams {
			errs = append(errs, fmt.Errorf("the kernel network has %d parameters, limit %d", n, MaxParams))
		}
		if n := c.NoiseParams(); n > MaxParams {
			errs = append(errs, fmt.Errorf("the noise network has %d parameters, limit %d", n, MaxParams))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("model: pdm config: %w", err)
	}
	return nil
}

// Validate reports the first setting that cannot work.
func (c DiscConfig) Validate() error {
	if c.NF < 1 || c.NF > MaxFeatures || c.Out < 1 || c.Out > MaxDiscOut || (c.Stride != 1 && c.Stride != 2) || c.Pack < 0 || c.Pack > 8 {
		return fmt.Errorf("model: discriminator config nf %d (1..%d) out %d (1..%d) stride %d (1 or 2) pack %d (0..8)", c.NF, MaxFeatures, c.Out, MaxDiscOut, c.Stride, c.Pack)
	}
	if n := c.ParamCount(); n > MaxParams {
		return fmt.Errorf("model: discriminator config: %d parameters, limit %d", n, MaxParams)
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
	checkDim(&errs, "scale", c.Scale, 1, MaxScale)
	checkDim(&errs, "nf", c.NF, 1, MaxFeatures)
	checkDim(&errs, "nb", c.NB, 0, MaxBlocks)
	checkDim(&errs, "gc", c.GC, 0, MaxFeatures)
	if math.IsInf(c.ResScale, 0) || math.IsNaN(c.ResScale) || math.IsInf(c.RGBRange, 0) || math.IsNaN(c.RGBRange) {
		errs = append(errs, fmt.Errorf("res_scale %g and rgb_range %g must be finite", c.ResScale, c.RGBRange))
	}
	if ok && c.Scale >= 1 {
		errs = append(errs, a.validate(c)...)
	}
	if len(errs) == 0 {
		if n := c.ParamCount(); n > MaxParams {
			errs = append(errs, fmt.Errorf("%d parameters, limit %d", n, MaxParams))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("model: sr config: %w", err)
	}
	return nil
}

// SHA256 is the hex SHA-256 of the config's JSON (encoding/json, fields in
// declaration order): the PDM config hash of a run's contract
// (registry.Contract.PDMConfig).
func (c PDMConfig) SHA256() string {
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Diff lists the settings in which c and o differ, each as "kernel.nf 20000
// (what) vs 64 (owhat)", in a fixed order; nil when they are equal.
func (c PDMConfig) Diff(what string, o PDMConfig, owhat string) []string {
	a, b := flatJSON(c), flatJSON(o)
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var d []string
	for _, k := range keys {
		if a[k] != b[k] {
			d = append(d, fmt.Sprintf("%s %s (%s) vs %s (%s)", k, a[k], what, b[k], owhat))
		}
	}
	return d
}

// flatJSON maps a value's JSON onto dotted paths ("kernel.nf") and the JSON
// of their leaves.
func flatJSON(v any) map[string]string {
	b, _ := json.Marshal(v)
	var tree any
	_ = json.Unmarshal(b, &tree)
	out := map[string]string{}
	var walk func(prefix string, t any)
	walk = func(prefix string, t any) {
		if m, ok := t.(map[string]any); ok {
			for k, x := range m {
				if prefix != "" {
					k = prefix + "." + k
				}
				walk(k, x)
			}
			return
		}
		leaf, _ := json.Marshal(t)
		out[prefix] = string(leaf)
	}
	walk("", tree)
	return out
}
