package model

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/kernels"
)

// opFn runs a kernel: it must overwrite every element of out.
type opFn[T kernels.Float] func(out []T, in [][]T)

// gradFn builds the gradient nodes of an op's inputs given the op's inputs,
// its output node and the gradient flowing into that output. It returns one
// node per input, nil where diff is false.
type gradFn func(g *Graph, inputs G.Nodes, output, grad *G.Node, diff []bool) (G.Nodes, error)

// kop is a gorgonia Op backed by a function of package kernels. Every layer
// of pdmflow's networks is one: gorgonia provides the graph, the symbolic
// differentiation and the tape machine, kernels the arithmetic.
//
// A kop is applied to exactly one set of inputs (one node). Its output
// buffer comes from the graph's Arena each run and goes back as soon as
// the last op reading it has run (Graph.plan), so a training step neither
// allocates its activations again nor holds every activation and gradient
// of every graph at once. Values read from a graph after Run must be kept
// (Graph.Keep); they are valid until the graph runs again.
type kop struct {
	name     string         // the op and its parameters; also its hash
	inShapes []tensor.Shape // expected input shapes (empty: scalar)
	outShape tensor.Shape   // empty: scalar
	f32      opFn[float32]
	f64      opFn[float64]
	diff     []bool // which inputs get a gradient
	grad     gradFn
	g        *Graph
	out      G.Value

	// Buffer reuse (see Graph.plan): the kops this one reads, how many
	// nodes read this one's output, how many of them have yet to run in the
	// current Run, and whether the buffer must outlive its readers.
	node      *G.Node
	inKops    []*kop
	readers   int
	remaining int
	pinned    bool
	released  bool
}

var (
	_ G.Op   = (*kop)(nil)
	_ G.SDOp = (*kop)(nil)
)

func tensorType(dims int) hm.Type {
	if dims == 0 {
		return hm.TypeVariable('a')
	}
	return G.TensorType{Dims: dims, Of: hm.TypeVariable('a')}
}

func (o *kop) Arity() int { return len(o.inShapes) }

func (o *kop) Type() hm.Type {
	ts := make([]hm.Type, 0, len(o.inShapes)+1)
	for _, s := range o.inShapes {
		ts = append(ts, tensorType(s.Dims()))
	}
	ts = append(ts, tensorType(o.outShape.Dims()))
	return hm.NewFnType(ts...)
}

func (o *kop) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if o.outShape.Dims() == 0 {
		return tensor.ScalarShape(), nil
	}
	return o.outShape.Clone(), nil
}

func (o *kop) ReturnsPtr() bool      { return true }
func (o *kop) CallsExtern() bool     { return false }
func (o *kop) OverwritesInput() int  { return -1 }
func (o *kop) String() string        { return o.name }
func (o *kop) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s%v->%v", o.name, o.inShapes, o.outShape) }

func (o *kop) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

func (o *kop) DiffWRT(n int) []bool {
	d := make([]bool, n)
	copy(d, o.diff)
	return d
}

func (o *kop) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if o.grad == nil {
		return make(G.Nodes, len(inputs)), nil
	}
	return o.grad(o.g, inputs, output, grad, o.diff)
}

// slice32 and slice64 view a value's data; scalars become one-element
// slices.
func valueData[T kernels.Float](v G.Value) ([]T, bool) {
	switch x := v.(type) {
	case *tensor.Dense:
		d, ok := x.Data().([]T)
		return d, ok
	case G.Scalar:
		d, ok := x.Data().(T)
		return []T{d}, ok
	}
	return nil, false
}

func (o *kop) Do(inputs ...G.Value) (G.Value, error) {
	if len(inputs) != len(o.inShapes) {
		return nil, fmt.Errorf("model: %s: %d inputs, want %d", o.name, len(inputs), len(o.inShapes))
	}
	for i, v := range inputs {
		if !v.Shape().Eq(o.inShapes[i]) && !(o.inShapes[i].Dims() == 0 && v.Shape().TotalSize() <= 1) {
			return nil, fmt.Errorf("model: %s: input %d has shape %v, want %v", o.name, i, v.Shape(), o.inShapes[i])
		}
	}
	switch inputs[0].Dtype() {
	case tensor.Float32:
		return run(o, o.f32, tensor.Float32, inputs)
	case tensor.Float64:
		return run(o, o.f64, tensor.Float64, inputs)
	}
	return nil, fmt.Errorf("model: %s: unsupported dtype %v", o.name, inputs[0].Dtype())
}

func run[T kernels.Float](o *kop, fn opFn[T], dt tensor.Dtype, inputs []G.Value) (G.Value, error) {
	in := make([][]T, len(inputs))
	for i, v := range inputs {
		d, ok := valueData[T](v)
		if !ok {
			return nil, fmt.Errorf("model: %s: input %d is %T of %v, want %v", o.name, i, v, v.Dtype(), dt)
		}
		in[i] = d
	}
	if o.outShape.Dims() == 0 {
		out := make([]T, 1)
		fn(out, in)
		if o.g != nil && o.g.arena != nil {
			o.g.ran(o)
		}
		if dt == tensor.Float32 {
			return G.NewF32(float32(out[0])), nil
		}
		return G.NewF64(float64(out[0])), nil
	}
	if o.g != nil && o.g.arena != nil {
		// The buffer comes from the graph's arena each Run and goes back
		// when its last reader has run (Graph.plan).
		buf := getArena[T](o.g.arena, o.outShape.TotalSize())
		o.out = tensor.New(tensor.WithShape(o.outShape.Clone()...), tensor.WithBacking(buf))
		o.released = false
		fn(buf, in)
		o.g.ran(o)
		return o.out, nil
	}
	if d, ok := o.out.(*tensor.Dense); !ok || d.Dtype() != dt {
		o.out = tensor.New(tensor.Of(dt), tensor.WithShape(o.outShape.Clone()...))
	}
	out, _ := valueData[T](o.out)
	fn(out, in)
	return o.out, nil
}
