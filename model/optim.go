package model

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/safetensors"
)

// OptimConfig configures Adam, its learning-rate schedule and gradient
// clipping (pdm-spec §5).
type OptimConfig struct {
	LR         float64 `yaml:"lr" json:"lr"`
	Beta1      float64 `yaml:"beta1" json:"beta1"`
	Beta2      float64 `yaml:"beta2" json:"beta2"`
	Eps        float64 `yaml:"eps" json:"eps"`
	ClipNorm   float64 `yaml:"clip_norm" json:"clip_norm"`   // 0: no clipping
	Milestones []int   `yaml:"milestones" json:"milestones"` // steps at which the rate is multiplied by Gamma
	Gamma      float64 `yaml:"gamma" json:"gamma"`
}

// Validate reports settings Adam cannot use.
func (c OptimConfig) Validate() error {
	if c.LR <= 0 || c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1 || c.Eps <= 0 || c.ClipNorm < 0 || c.Gamma <= 0 {
		return fmt.Errorf("model: optimizer config %+v", c)
	}
	for i := 1; i < len(c.Milestones); i++ {
		if c.Milestones[i] <= c.Milestones[i-1] {
			return fmt.Errorf("model: optimizer milestones %v are not increasing", c.Milestones)
		}
	}
	return nil
}

// RateAt is the learning rate at step (0-based): LR times Gamma for every
// milestone already reached (PyTorch's MultiStepLR).
func (c OptimConfig) RateAt(step int) float64 {
	lr := c.LR
	for _, m := range c.Milestones {
		if step >= m {
			lr *= c.Gamma
		}
	}
	return lr
}

// Adam is the Adam optimizer with PyTorch's update and bias correction,
// over the learnable parameters of some modules. Its state (moments and
// step count) can be saved and restored, which gorgonia's AdamSolver does
// not allow, so a resumed run continues exactly.
type Adam struct {
	Cfg    OptimConfig
	Steps  int // updates done
	params []*Param
	m, v   [][]float64
}

// NewAdam makes an optimizer for the learnable parameters of modules.
func NewAdam(cfg OptimConfig, modules ...*Module) (*Adam, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Adam{Cfg: cfg}
	for _, mod := range modules {
		for _, p := range mod.params {
			if !p.Learnable {
				continue
			}
			n := p.Value.Shape().TotalSize()
			a.params = append(a.params, p)
			a.m = append(a.m, make([]float64, n))
			a.v = append(a.v, make([]float64, n))
		}
	}
	return a, nil
}

// Params lists the optimised parameters in order.
func (a *Adam) Params() []*Param { return a.params }

// GradNorm returns the L2 norm of all gradients together.
func GradNorm(grads []*tensor.Dense) float64 {
	var s float64
	for _, g := range grads {
		if g == nil {
			continue
		}
		switch d := g.Data().(type) {
		case []float32:
			for _, x := range d {
				s += float64(x) * float64(x)
			}
		case []float64:
			for _, x := range d {
				s += x * x
			}
		}
	}
	return math.Sqrt(s)
}

// Step clips the gradients (one per parameter in Params order; nil for a
// parameter that got none this step, which then keeps its moments) to a
// total L2 norm of Cfg.ClipNorm as torch.nn.utils.clip_grad_norm_, applies
// one Adam update at the learning rate for the current step, and returns
// the norm before clipping.
func (a *Adam) Step(grads []*tensor.Dense) (float64, error) {
	if len(grads) != len(a.params) {
		return 0, fmt.Errorf("model: adam: %d gradients for %d parameters", len(grads), len(a.params))
	}
	for i, g := range grads {
		if g != nil && g.Shape().TotalSize() != a.params[i].Value.Shape().TotalSize() {
			return 0, fmt.Errorf("model: adam: gradient of %s has shape %v, parameter %v", a.params[i].Name, g.Shape(), a.params[i].Value.Shape())
		}
	}
	norm := GradNorm(grads)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("model: adam: gradient norm is %v", norm)
	}
	clip := 1.0
	if a.Cfg.ClipNorm > 0 {
		if c := a.Cfg.ClipNorm / (norm + 1e-6); c < 1 {
			clip = c
		}
	}
	lr := a.Cfg.RateAt(a.Steps)
	a.Steps++
	b1, b2 := a.Cfg.Beta1, a.Cfg.Beta2
	bc1 := 1 - math.Pow(b1, float64(a.Steps))
	bc2 := math.Sqrt(1 - math.Pow(b2, float64(a.Steps)))
	step := lr / bc1
	for i, g := range grads {
		if g == nil {
			continue
		}
		m, v := a.m[i], a.v[i]
		update := func(j int, gj float64) float64 {
			gj *= clip
			m[j] = b1*m[j] + (1-b1)*gj
			v[j] = b2*v[j] + (1-b2)*gj*gj
			return step * m[j] / (math.Sqrt(v[j])/bc2 + a.Cfg.Eps)
		}
		switch w := a.params[i].Value.Data().(type) {
		case []float32:
			for j, gj := range g.Data().([]float32) {
				w[j] -= float32(update(j, float64(gj)))
			}
		case []float64:
			for j, gj := range g.Data().([]float64) {
				w[j] -= update(j, gj)
			}
		}
	}
	return norm, nil
}

// StateTensors exports the moments under prefix (prefix.<param>.m/.v) as
// float64 tensors, so that a resumed run is exact.
func (a *Adam) StateTensors(prefix string) []safetensors.Tensor {
	var ts []safetensors.Tensor
	for i, p := range a.params {
		shape := p.Value.Shape()
		ts = append(ts,
			safetensors.FromFloat64s(prefix+"."+p.Name+".m", shape, a.m[i]),
			safetensors.FromFloat64s(prefix+"."+p.Name+".v", shape, a.v[i]))
	}
	return ts
}

// LoadState restores moments exported by StateTensors and the step count.
func (a *Adam) LoadState(f *safetensors.File, prefix string, steps int) error {
	m := make([][]float64, len(a.params))
	v := make([][]float64, len(a.params))
	for i, p := range a.params {
		for _, which := range []struct {
			suffix string
			dst    [][]float64
		}{{".m", m}, {".v", v}} {
			name := prefix + "." + p.Name + which.suffix
			t, ok := f.Get(name)
			if !ok {
				return fmt.Errorf("model: optimizer state %s missing", name)
			}
			d, err := t.Float64s()
			if err != nil {
				return fmt.Errorf("model: optimizer state: %w", err)
			}
			if len(d) != len(a.m[i]) {
				return fmt.Errorf("model: optimizer state %s has %d values, parameter has %d", name, len(d), len(a.m[i]))
			}
			which.dst[i] = d
		}
	}
	a.m, a.v, a.Steps = m, v, steps
	return nil
}

// EMA keeps an exponential moving average of modules' learnable weights in
// shadow modules of the same structure: after each optimizer step,
// shadow = d*shadow + (1-d)*weights with d = min(Decay, (1+n)/(10+n)) at
// the n-th update (a short warm-up, so that the average does not drag the
// initial weights along). Buffers (BatchNorm's running statistics) are
// copied. Averaging a GAN generator's weights removes the step-to-step
// jitter that Adam's normalised steps give it when the discriminator's
// gradients are small and noisy.
type EMA struct {
	Decay   float64
	Updates int
	src     []*Module
	shadow  []*Module
}

// NewEMA averages src into shadow, which must have the same parameters (in
// the same order, of the same shapes); shadow starts as a copy of src.
func NewEMA(decay float64, src, shadow []*Module) (*EMA, error) {
	if decay <= 0 || decay >= 1 {
		return nil, fmt.Errorf("model: EMA decay %g outside (0, 1)", decay)
	}
	if len(src) != len(shadow) {
		return nil, fmt.Errorf("model: EMA of %d modules into %d", len(src), len(shadow))
	}
	for i := range src {
		a, b := src[i].Params(), shadow[i].Params()
		if len(a) != len(b) {
			return nil, fmt.Errorf("model: EMA: module %s has %d parameters, its shadow %d", src[i].Name, len(a), len(b))
		}
		for j := range a {
			if a[j].Name != b[j].Name || !a[j].Value.Shape().Eq(b[j].Value.Shape()) {
				return nil, fmt.Errorf("model: EMA: parameter %s %v against %s %v", a[j].Name, a[j].Value.Shape(), b[j].Name, b[j].Value.Shape())
			}
		}
	}
	e := &EMA{Decay: decay, src: src, shadow: shadow}
	e.Copy()
	return e, nil
}

// Copy sets the shadow to the current weights.
func (e *EMA) Copy() {
	for i, m := range e.src {
		for j, p := range m.Params() {
			copyData(e.shadow[i].Params()[j], p)
		}
	}
}

func copyData(dst, src *Param) {
	switch d := dst.Value.Data().(type) {
	case []float32:
		copy(d, src.Value.Data().([]float32))
	case []float64:
		copy(d, src.Value.Data().([]float64))
	}
}

// Update moves the shadow towards the current weights.
func (e *EMA) Update() {
	d := math.Min(e.Decay, float64(1+e.Updates)/float64(10+e.Updates))
	e.Updates++
	for i, m := range e.src {
		for j, p := range m.Params() {
			q := e.shadow[i].Params()[j]
			if !p.Learnable {
				copyData(q, p)
				continue
			}
			switch s := q.Value.Data().(type) {
			case []float32:
				w := p.Value.Data().([]float32)
				a, b := float32(d), float32(1-d)
				for k := range s {
					s[k] = a*s[k] + b*w[k]
				}
			case []float64:
				w := p.Value.Data().([]float64)
				for k := range s {
					s[k] = d*s[k] + (1-d)*w[k]
				}
			}
		}
	}
}
