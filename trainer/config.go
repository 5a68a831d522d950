package trainer

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/schema"
)

// Regimes of training (pdm-spec §5).
const (
	Joint    = "joint"     // PDM, discriminator and SR trained together from the start
	TwoStage = "two-stage" // PDM and discriminator for Stage1Steps, then SR alone
)

// Degradations the SR network can be trained on.
const (
	DegradePDM     = "pdm"     // fake LR from the learned degradation model
	DegradeBicubic = "bicubic" // bicubic downsampling (the usual baseline)
)

// LossConfig holds the loss weights.
type LossConfig struct {
	Adv      float64 `yaml:"adv" json:"adv"`             // LSGAN weight for PDM and discriminator
	NoiseReg float64 `yaml:"noise_reg" json:"noise_reg"` // lambda of lambda*mean(n^2)
	L1       float64 `yaml:"l1" json:"l1"`               // SR pixel loss
	// Percep weighs PDM-SRGAN's perceptual loss on the SR image: the L1
	// between VGG19's conv5_4 features (before the ReLU) of SR and HR
	// (model.VGG.Perceptual; 0.05 in the official percep configs). It
	// needs VGG19 weights (Config.VGG or Options.VGG). 0: off.
	Percep float64 `yaml:"percep,omitempty" json:"percep,omitempty"`
	// SRAdv weighs the SR network's LSGAN term against the discriminator
	// D2 on HR images (Config.Disc2): SRAdv * mean((D2(sr) - 1)^2), and
	// D2's own loss SRAdv * 1/2 [mean((D2(hr) - 1)^2) + mean(D2(sr)^2)] as
	// D1's is weighed by Adv (0.05 in the official percep configs). 0: off.
	SRAdv float64 `yaml:"sr_adv,omitempty" json:"sr_adv,omitempty"`
	// KernelCenter weighs the squared distance (in taps) between each
	// kernel's centroid and the middle of the scale x scale block (where
	// imresize puts an LR pixel). Unpaired training cannot see a global
	// sub-pixel shift, so without it the phase drifts and the SR network
	// learns a shifted mapping. 0: off (the official code).
	KernelCenter float64 `yaml:"kernel_center" json:"kernel_center"`
	// Priors against collapsed and degenerate kernels (issue 13), each 0:
	// off. KernelSmooth weighs the mean over kernels of the squared
	// differences of adjacent taps (model.Graph.KernelSmooth): sparse
	// kernels of isolated taps ("ring" kernels) cost far more than smooth
	// ones.
	KernelSmooth float64 `yaml:"kernel_smooth" json:"kernel_smooth"`
	// KernelRadius weighs the kernels' mass beyond KernelRadiusPx HR pixels
	// (taps) of the kernel's centre, quadratically in the excess distance
	// (model.Graph.KernelRadius). On only when both are positive.
	KernelRadius   float64 `yaml:"kernel_radius" json:"kernel_radius"`
	KernelRadiusPx float64 `yaml:"kernel_radius_px" json:"kernel_radius_px"`
	// ModeSeeking weighs Mao et al.'s (2019) mode-seeking loss
	// ModeSeeking / (D/Dz + ModeSeekingEps), D the mean distance between
	// the kernels of the batch's pairs (i, i+batch/2), Dz that of their
	// latents (model.Graph.ModeSeeking): it pushes the kernels of
	// different z apart. ModeSeekingEps 0 means 1e-5
	// (ModeSeekingEpsilon).
	ModeSeeking    float64 `yaml:"mode_seeking" json:"mode_seeking"`
	ModeSeekingEps float64 `yaml:"mode_seeking_eps" json:"mode_seeking_eps"`
}

// DefaultModeSeekingEps is ModeSeekingEps when the config leaves it 0.
const DefaultModeSeekingEps = 1e-5

// ModeSeekingEpsilon is the eps of the mode-seeking loss: ModeSeekingEps,
// or DefaultModeSeekingEps when that is 0.
func (l LossConfig) ModeSeekingEpsilon() float64 {
	if l.ModeSeekingEps > 0 {
		return l.ModeSeekingEps
	}
	return DefaultModeSeekingEps
}

// validate reports the issue 13 priors' settings that cannot work, one
// line each.
func (l LossConfig) validate(c *Config) []error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"kernel_smooth", l.KernelSmooth},
		{"kernel_radius", l.KernelRadius},
		{"kernel_radius_px", l.KernelRadiusPx},
		{"mode_seeking", l.ModeSeeking},
		{"mode_seeking_eps", l.ModeSeekingEps},
	} {
		if !(f.v >= 0) || math.IsInf(f.v, 1) {
			errs = append(errs, fmt.Errorf("loss.%s %g must be a non-negative number", f.name, f.v))
		}
	}
	if l.KernelRadius > 0 && l.KernelRadiusPx == 0 {
		errs = append(errs, fmt.Errorf("loss.kernel_radius %g needs loss.kernel_radius_px, the radius in HR px beyond which kernel mass costs (0: off)", l.KernelRadius))
	}
	if l.ModeSeeking > 0 {
		if c.Batch%2 != 0 {
			errs = append(errs, fmt.Errorf("loss.mode_seeking needs an even batch (it pairs samples i and i+batch/2), not %d", c.Batch))
		}
		if c.PDM.FixKernelZ {
			errs = append(errs, errors.New("loss.mode_seeking with pdm.fix_kernel_z: every z_k is zero, so there is no latent distance to seek"))
		}
	}
	return errs
}

// Config is everything a training run needs besides its data.
type Config struct {
	Name        string           `yaml:"name" json:"name"`
	Regime      string           `yaml:"regime" json:"regime"`
	Degradation string           `yaml:"degradation" json:"degradation"`
	Steps       int              `yaml:"steps" json:"steps"`
	Stage1Steps int              `yaml:"stage1_steps" json:"stage1_steps"` // two-stage: PDM-only steps
	Batch       int              `yaml:"batch" json:"batch"`
	HRCrop      int              `yaml:"hr_crop" json:"hr_crop"` // HR crop side; the real-LR crop is HRCrop/scale
	Seed        uint64           `yaml:"seed" json:"seed"`
	PDM         model.PDMConfig  `yaml:"pdm" json:"pdm"`
	Disc        model.DiscConfig `yaml:"disc" json:"disc"`
	// Disc2 is PDM-SRGAN's second PatchGAN, on HR crops (real = HR, fake =
	// the SR image detached), trained after the SR step (pdm-spec §5 step
	// 4). Absent (all zero) when loss.sr_adv is 0.
	Disc2 model.DiscConfig `yaml:"disc2,omitempty" json:"disc2,omitempty"`
	// VGG is the file of VGG19 weights the perceptual loss (loss.percep)
	// needs: torchvision's vgg19 state dict (.pth) or the same tensors as
	// safetensors. pdmflow ships and downloads none. Options.VGG (train
	// --vgg) overrides it.
	VGG   string            `yaml:"vgg,omitempty" json:"vgg,omitempty"`
	SR    model.SRConfig    `yaml:"sr" json:"sr"`
	Loss  LossConfig        `yaml:"loss" json:"loss"`
	Optim model.OptimConfig `yaml:"optim" json:"optim"`
	// PDMEMA, when in (0, 1), keeps an exponential moving average of the
	// PDM's weights with this decay: the averaged PDM makes the SR
	// network's pairs, is published to producers and is saved. 0 uses the
	// raw weights (the official code).
	PDMEMA float64 `yaml:"pdm_ema" json:"pdm_ema"`
	// PDMEMAKernelOnly averages the kernel network only; the noise network
	// handed on is the trained one. Averaging the noise network's weights
	// shrinks its noise (the average of weights that wander is smaller
	// than any of them): on the demo, 0.0064 against 0.011 for the trained
	// network on the same crops (docs/decisions.md).
	PDMEMAKernelOnly bool `yaml:"pdm_ema_kernel_only,omitempty" json:"pdm_ema_kernel_only,omitempty"`
	// DiscLRScale multiplies the discriminator's learning rate (two
	// time-scale updates; 0 or 1: the same rate as the other networks).
	DiscLRScale float64 `yaml:"disc_lr_scale" json:"disc_lr_scale"`
	// StreamPool is the shuffle pool of a trainer fed by the pair stream,
	// in pairs (0: 8 x batch). Each step's pairs are drawn from a full
	// pool, so a replay must use the same size: it is recorded in the run's
	// config.yaml.
	StreamPool int `yaml:"stream_pool,omitempty" json:"stream_pool,omitempty"`
	// PublishEvery is the number of steps between weights publishes to the
	// producers of a streamed run (0: the command's default, 25 in
	// `pdmflow run`, 50 in `train --source`), and LagBudget how many
	// messages producers may run ahead of the trainer (0: 4 in `run`, 16 in
	// `produce`). Together they bound how old the weights of a trained pair
	// are (the trainer reports it: pair_age).
	PublishEvery int `yaml:"publish_every,omitempty" json:"publish_every,omitempty"`
	LagBudget    int `yaml:"lag_budget,omitempty" json:"lag_budget,omitempty"`
	// Intervals in steps (0 disables): progress lines, kernel/sample
	// pictures, checkpoints.
	LogEvery        int `yaml:"log_every" json:"log_every"`
	SampleEvery     int `yaml:"sample_every" json:"sample_every"`
	CheckpointEvery int `yaml:"checkpoint_every" json:"checkpoint_every"`
}

// PoolPairs is the stream consumer's shuffle pool size (StreamPool, or 8
// x Batch when unset).
func (c *Config) PoolPairs() int {
	if c.StreamPool > 0 {
		return c.StreamPool
	}
	return 8 * c.Batch
}

// HasDisc2 reports whether the run has PDM-SRGAN's discriminator D2.
func (c *Config) HasDisc2() bool { return c.Disc2 != (model.DiscConfig{}) }

// Scale is the super-resolution factor.
func (c *Config) Scale() int { return c.PDM.Scale }

// LRCrop is the side of the real-LR crops.
func (c *Config) LRCrop() int { return c.HRCrop / c.PDM.Scale }

// Contract is the stream contract a trainer of run with this config
// publishes and holds every message to: schema major version, scale, HR
// and LR sizes, kernel size, degradation and the PDM config's hash.
func (c *Config) Contract(run string) registry.Contract {
	s := c.Scale()
	lrH, lrW := schema.LRSize(c.HRCrop, c.HRCrop, s)
	k := registry.Contract{Run: run, SchemaMajor: schema.Major, Scale: s, HRH: c.HRCrop, HRW: c.HRCrop, LRH: lrH, LRW: lrW}
	switch c.Degradation {
	case DegradePDM:
		k.Degradation = schema.DegradationPDM
		if !c.PDM.Kernel.Spatial {
			k.KernelSize = c.PDM.Kernel.Size
		}
		k.PDMConfig = c.PDM.SHA256()
	default:
		k.Degradation = schema.DegradationBicubic
	}
	return k
}

// TrainsPDM reports whether the run has a degradation model to train.
func (c *Config) TrainsPDM() bool { return c.Degradation == DegradePDM }

// TrainsSR reports whether the SR network trains at step (0-based).
func (c *Config) TrainsSR(step int) bool {
	return c.Degradation == DegradeBicubic || c.Regime == Joint || step >= c.Stage1Steps
}

// TrainsPDMAt reports whether PDM and the discriminator train at step.
func (c *Config) TrainsPDMAt(step int) bool {
	return c.TrainsPDM() && (c.Regime == Joint || step < c.Stage1Steps)
}

// Validate reports every setting that cannot work, at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Regime != Joint && c.Regime != TwoStage {
		errs = append(errs, fmt.Errorf("regime %q: %s or %s", c.Regime, Joint, TwoStage))
	}
	if c.Degradation != DegradePDM && c.Degradation != DegradeBicubic {
		errs = append(errs, fmt.Errorf("degradation %q: %s or %s", c.Degradation, DegradePDM, DegradeBicubic))
	}
	if c.Steps < 1 {
		errs = append(errs, fmt.Errorf("steps %d must be positive", c.Steps))
	}
	if c.Regime == TwoStage && (c.Stage1Steps < 0 || c.Stage1Steps > c.Steps) {
		errs = append(errs, fmt.Errorf("stage1_steps %d outside 0..steps", c.Stage1Steps))
	}
	if c.Batch < 1 {
		errs = append(errs, fmt.Errorf("batch %d must be positive", c.Batch))
	}
	if err := c.PDM.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.PDM.Scale > 0 && (c.HRCrop < c.PDM.Kernel.Size || c.HRCrop%c.PDM.Scale != 0) {
		errs = append(errs, fmt.Errorf("hr_crop %d must be a multiple of the scale %d and at least the kernel size %d", c.HRCrop, c.PDM.Scale, c.PDM.Kernel.Size))
	}
	if c.Batch < 2 && c.TrainsPDM() {
		errs = append(errs, errors.New("batch must be at least 2: the kernel network's BatchNorm needs batch statistics"))
	}
	if err := c.Disc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.SR.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.SR.Scale != c.PDM.Scale {
		errs = append(errs, fmt.Errorf("sr.scale %d differs from pdm.scale %d", c.SR.Scale, c.PDM.Scale))
	}
	if err := c.Optim.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.StreamPool < 0 || (c.StreamPool > 0 && c.StreamPool < c.Batch) {
		errs = append(errs, fmt.Errorf("stream_pool %d must be at least the batch %d", c.StreamPool, c.Batch))
	}
	if c.DiscLRScale < 0 {
		errs = append(errs, fmt.Errorf("disc_lr_scale %g must not be negative", c.DiscLRScale))
	}
	if c.Loss.KernelCenter > 0 && c.PDM.Kernel.Spatial {
		errs = append(errs, errors.New("loss.kernel_center is for spatially invariant kernels"))
	}
	if c.Loss.Adv < 0 || c.Loss.NoiseReg < 0 || c.Loss.L1 <= 0 || c.Loss.KernelCenter < 0 || !(c.Loss.Percep >= 0) || !(c.Loss.SRAdv >= 0) {
		errs = append(errs, fmt.Errorf("loss weights %+v", c.Loss))
	}
	switch {
	case c.Loss.SRAdv > 0 && !c.HasDisc2():
		errs = append(errs, fmt.Errorf("loss.sr_adv %g needs disc2, the discriminator on HR images (e.g. disc2: {nf: 64, out: 64, stride: 1})", c.Loss.SRAdv))
	case c.Loss.SRAdv == 0 && c.HasDisc2():
		errs = append(errs, errors.New("disc2 is set but loss.sr_adv is 0: weigh the SR network's adversarial term, or remove disc2"))
	case c.HasDisc2():
		if err := c.Disc2.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("disc2: %w", err))
		}
		if p := c.Disc2.Pack; p > 1 && c.Batch%p != 0 {
			errs = append(errs, fmt.Errorf("disc2.pack %d must divide the batch %d", p, c.Batch))
		}
	}
	if c.Loss.Percep > 0 && c.HRCrop < model.VGGMinSize {
		errs = append(errs, fmt.Errorf("hr_crop %d: the perceptual loss's VGG19 needs crops of at least %d", c.HRCrop, model.VGGMinSize))
	}
	errs = append(errs, c.Loss.validate(c)...)
	if c.PDMEMA < 0 || c.PDMEMA >= 1 {
		errs = append(errs, fmt.Errorf("pdm_ema %g outside [0, 1)", c.PDMEMA))
	}
	if p := c.Disc.Pack; p > 1 && c.TrainsPDM() && c.Batch%p != 0 {
		errs = append(errs, fmt.Errorf("disc.pack %d must divide the batch %d", p, c.Batch))
	}
	if c.PublishEvery < 0 || c.LagBudget < 0 {
		errs = append(errs, fmt.Errorf("publish_every %d and lag_budget %d must not be negative", c.PublishEvery, c.LagBudget))
	}
	if c.PDMEMAKernelOnly && c.PDMEMA == 0 {
		errs = append(errs, errors.New("pdm_ema_kernel_only needs pdm_ema"))
	}
	if c.LogEvery < 0 || c.SampleEvery < 0 || c.CheckpointEvery < 0 {
		errs = append(errs, errors.New("intervals must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("trainer: config %q: %w", c.Name, err)
	}
	return nil
}

//go:embed presets/*.yaml
var presetFS embed.FS

// Presets lists the names of the built-in configs.
func Presets() []string {
	ents, _ := presetFS.ReadDir("presets")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// Preset returns a built-in config by name.
func Preset(name string) (*Config, error) {
	b, err := presetFS.ReadFile(path.Join("presets", name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("trainer: no preset %q (presets: %s)", name, strings.Join(Presets(), ", "))
	}
	return parseConfig("preset "+name, b)
}

// PresetYAML returns the YAML text of a built-in config, for users who want
// a file to edit.
func PresetYAML(name string) ([]byte, error) {
	b, err := presetFS.ReadFile(path.Join("presets", name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("trainer: no preset %q (presets: %s)", name, strings.Join(Presets(), ", "))
	}
	return b, nil
}

// LoadConfig reads a YAML config file. A file may start from a preset with
// a top-level "base: NAME" key and override any field.
func LoadConfig(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	return parseConfig(file, b)
}

func parseConfig(where string, b []byte) (*Config, error) {
	var head struct {
		Base string `yaml:"base"`
	}
	if err := yaml.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("trainer: %s: %w", where, err)
	}
	c := &Config{}
	if head.Base != "" {
		base, err := Preset(head.Base)
		if err != nil {
			return nil, fmt.Errorf("trainer: %s: base: %w", where, err)
		}
		c = base
	}
	// Decode strictly: a misspelt key is an error, not a silent default.
	var strict struct {
		Base    string `yaml:"base"`
		*Config `yaml:",inline"`
	}
	strict.Config = c
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&strict); err != nil {
		return nil, fmt.Errorf("trainer: %s: %w", where, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return c, nil
}

// YAML renders the config as YAML (written next to every run's outputs).
func (c *Config) YAML() []byte {
	b, err := yaml.Marshal(c)
	if err != nil {
		return []byte(fmt.Sprintf("# cannot render config: %v\n", err))
	}
	return b
}
