package trainer

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
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
	// KernelCenter weighs the squared distance (in taps) between each
	// kernel's centroid and the middle of the scale x scale block (where
	// imresize puts an LR pixel). Unpaired training cannot see a global
	// sub-pixel shift, so without it the phase drifts and the SR network
	// learns a shifted mapping. 0: off (the official code).
	KernelCenter float64 `yaml:"kernel_center" json:"kernel_center"`
}

// Config is everything a training run needs besides its data.
type Config struct {
	Name        string            `yaml:"name" json:"name"`
	Regime      string            `yaml:"regime" json:"regime"`
	Degradation string            `yaml:"degradation" json:"degradation"`
	Steps       int               `yaml:"steps" json:"steps"`
	Stage1Steps int               `yaml:"stage1_steps" json:"stage1_steps"` // two-stage: PDM-only steps
	Batch       int               `yaml:"batch" json:"batch"`
	HRCrop      int               `yaml:"hr_crop" json:"hr_crop"` // HR crop side; the real-LR crop is HRCrop/scale
	Seed        uint64            `yaml:"seed" json:"seed"`
	PDM         model.PDMConfig   `yaml:"pdm" json:"pdm"`
	Disc        model.DiscConfig  `yaml:"disc" json:"disc"`
	SR          model.SRConfig    `yaml:"sr" json:"sr"`
	Loss        LossConfig        `yaml:"loss" json:"loss"`
	Optim       model.OptimConfig `yaml:"optim" json:"optim"`
	// PDMEMA, when in (0, 1), keeps an exponential moving average of the
	// PDM's weights with this decay: the averaged PDM makes the SR
	// network's pairs, is published to producers and is saved. 0 uses the
	// raw weights (the official code).
	PDMEMA float64 `yaml:"pdm_ema" json:"pdm_ema"`
	// DiscLRScale multiplies the discriminator's learning rate (two
	// time-scale updates; 0 or 1: the same rate as the other networks).
	DiscLRScale float64 `yaml:"disc_lr_scale" json:"disc_lr_scale"`
	// StreamPool is the shuffle pool of a trainer fed by the pair stream,
	// in pairs (0: 8 x batch). Each step's pairs are drawn from a full
	// pool, so a replay must use the same size: it is recorded in the run's
	// config.yaml.
	StreamPool int `yaml:"stream_pool,omitempty" json:"stream_pool,omitempty"`
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
	if c.Loss.Adv < 0 || c.Loss.NoiseReg < 0 || c.Loss.L1 <= 0 || c.Loss.KernelCenter < 0 {
		errs = append(errs, fmt.Errorf("loss weights %+v", c.Loss))
	}
	if c.PDMEMA < 0 || c.PDMEMA >= 1 {
		errs = append(errs, fmt.Errorf("pdm_ema %g outside [0, 1)", c.PDMEMA))
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
