package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gorgonia.org/tensor"
)

// Param is one named tensor of a network: a learnable weight, or a buffer
// such as BatchNorm's running statistics (saved with the weights, never
// trained).
type Param struct {
	Name      string
	Value     *tensor.Dense
	Learnable bool
}

// Module is a network's set of parameters, in a fixed order (the order of
// the saved weights and of the optimizer state).
type Module struct {
	Name   string
	dt     tensor.Dtype
	params []*Param
	byName map[string]*Param
}

// NewModule starts an empty module whose parameters are of type dt.
func NewModule(name string, dt tensor.Dtype) *Module {
	return &Module{Name: name, dt: dt, byName: map[string]*Param{}}
}

// Params lists the module's parameters in order.
func (m *Module) Params() []*Param { return m.params }

// Param looks a parameter up by its full name.
func (m *Module) Param(name string) *Param { return m.byName[name] }

// Dtype is the element type of the module's parameters.
func (m *Module) Dtype() tensor.Dtype { return m.dt }

// NumLearnable counts the learnable scalars.
func (m *Module) NumLearnable() int {
	n := 0
	for _, p := range m.params {
		if p.Learnable {
			n += p.Value.Shape().TotalSize()
		}
	}
	return n
}

// add creates a parameter named prefix.name filled from init (float64
// values converted to the module's dtype).
func (m *Module) add(name string, learnable bool, init []float64, shape ...int) *Param {
	full := m.Name + "." + name
	if _, dup := m.byName[full]; dup {
		panic(fmt.Sprintf("model: parameter %s defined twice", full)) // a bug in a network definition
	}
	size := 1
	for _, s := range shape {
		size *= s
	}
	if len(init) != size {
		panic(fmt.Sprintf("model: parameter %s: %d initial values for shape %v", full, len(init), shape))
	}
	var t *tensor.Dense
	switch m.dt {
	case tensor.Float32:
		d := make([]float32, size)
		for i, v := range init {
			d[i] = float32(v)
		}
		t = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
	default:
		t = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float64(nil), init...)))
	}
	p := &Param{Name: full, Value: t, Learnable: learnable}
	m.params = append(m.params, p)
	m.byName[full] = p
	return p
}

// uniform returns n values from U(-bound, bound).
func uniform(r *rand.Rand, n int, bound float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = (2*r.Float64() - 1) * bound
	}
	return v
}

func constant(n int, c float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = c
	}
	return v
}

// convInit returns PyTorch's default initialisation of a conv layer with
// fanIn = in*kh*kw: weights and bias from U(-1/sqrt(fanIn), 1/sqrt(fanIn))
// (kaiming_uniform with a=sqrt(5) reduces to this bound).
func convInit(r *rand.Rand, out, fanIn int) (w, b []float64) {
	bound := 1 / math.Sqrt(float64(fanIn))
	return uniform(r, out*fanIn, bound), uniform(r, out, bound)
}

// Float32Data returns a parameter's values as float32 (converting float64).
func (p *Param) Float32Data() []float32 {
	switch d := p.Value.Data().(type) {
	case []float32:
		return d
	case []float64:
		out := make([]float32, len(d))
		for i, v := range d {
			out[i] = float32(v)
		}
		return out
	}
	return nil
}
