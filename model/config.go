package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
)

// KernelConfig configures the kernel network (pdm-spec §2.1).
type KernelConfig struct {
	Size int `yaml:"size" json:"size"` // kernel side, odd (21 in the paper)
	NC   int `yaml:"nc" json:"nc"`     // dimension f_k of z_k
	NF   int `yaml:"nf" json:"nf"`     // features
	NB   int `yaml:"nb" json:"nb"`     // residual blocks
	// Spatial draws z_k on the LR grid, one kernel per LR pixel.
	Spatial bool `yaml:"spatial" json:"spatial"`
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
}

// SRConfig configures the EDSR super-resolution network (pdm-spec §4).
type SRConfig struct {
	Arch     string  `yaml:"arch" json:"arch"` // "edsr"
	Scale    int     `yaml:"scale" json:"scale"`
	NF       int     `yaml:"nf" json:"nf"`
	NB       int     `yaml:"nb" json:"nb"`
	ResScale float64 `yaml:"res_scale" json:"res_scale"`
	// RGBRange is the value range the body works in (255 as EDSR).
	RGBRange float64 `yaml:"rgb_range" json:"rgb_range"`
	// Residual adds the network's output to a bicubic upsampling of its
	// input, so that it learns only the missing detail.
	Residual bool `yaml:"residual" json:"residual"`
	// Upsampler is EDSR's "pixelshuffle" (conv nf -> 4nf and a x2 pixel
	// shuffle per factor of 2, then a tail conv at full resolution) or
	// "light": one conv nf -> 3*s*s at LR resolution and a pixel shuffle
	// straight to RGB (ESPCN's), a fraction of the cost for CPU presets.
	Upsampler string `yaml:"upsampler" json:"upsampler"`
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
	return convParams(k.NC, k.NF, kc) + 4*k.NF + k.NB*bnResBlockParams(k.NF, kc) + taps*k.NF + taps
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

// ParamCount is the number of parameters of the EDSR c describes.
func (c SRConfig) ParamCount() int {
	nf := c.NF
	n := convParams(3, nf, 3) + c.NB*2*convParams(nf, nf, 3) + convParams(nf, nf, 3)
	if c.Upsampler == "light" {
		return n + convParams(nf, 3*c.Scale*c.Scale, 3)
	}
	for _, f := range upFactors(c.Scale) {
		n += convParams(nf, f*f*nf, 3)
	}
	return n + convParams(nf, 3, 3)
}

// ParamCount is the number of parameters of the discriminator c describes.
func (c DiscConfig) ParamCount() int {
	nf := c.NF
	return convParams(3, nf, 3) + convParams(nf, 2*nf, 3) + convParams(2*nf, 4*nf, 3) + convParams(4*nf, 8*nf, 3) + convParams(8*nf, c.Out, 3)
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
	if c.NF < 1 || c.NF > MaxFeatures || c.Out < 1 || c.Out > MaxDiscOut || (c.Stride != 1 && c.Stride != 2) {
		return fmt.Errorf("model: discriminator config nf %d (1..%d) out %d (1..%d) stride %d (1 or 2)", c.NF, MaxFeatures, c.Out, MaxDiscOut, c.Stride)
	}
	if n := c.ParamCount(); n > MaxParams {
		return fmt.Errorf("model: discriminator config: %d parameters, limit %d", n, MaxParams)
	}
	return nil
}

// Validate reports the first setting that cannot work.
func (c SRConfig) Validate() error {
	var errs []error
	if c.Arch != "edsr" {
		errs = append(errs, fmt.Errorf("arch %q: only edsr", c.Arch))
	}
	if c.Scale != 2 && c.Scale != 3 && c.Scale != 4 {
		errs = append(errs, fmt.Errorf("scale %d: 2, 3 or 4", c.Scale))
	}
	if c.Upsampler != "pixelshuffle" && c.Upsampler != "light" {
		errs = append(errs, fmt.Errorf("upsampler %q: pixelshuffle or light", c.Upsampler))
	}
	checkDim(&errs, "nf", c.NF, 1, MaxFeatures)
	checkDim(&errs, "nb", c.NB, 0, MaxBlocks)
	if !(c.ResScale > 0) || !(c.RGBRange > 0) || math.IsInf(c.ResScale, 0) || math.IsInf(c.RGBRange, 0) {
		errs = append(errs, fmt.Errorf("res_scale %g and rgb_range %g must be positive and finite", c.ResScale, c.RGBRange))
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
