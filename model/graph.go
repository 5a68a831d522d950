package model

import (
	"errors"
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Graph is one computation of pdmflow's networks (a training step's loss,
// or an inference pass) as a gorgonia expression graph with its tape
// machine. Building records the first error and turns later calls into
// no-ops, so model code reads as a sequence of layers; Err reports it.
//
// Which parameters get gradients is decided per graph by Train: the
// discriminator is frozen in the generator's step and trained in its own,
// as in pdm-spec §5. Gradient nodes are only built for inputs that depend on
// a trained parameter.
type Graph struct {
	eg      *G.ExprGraph
	dt      tensor.Dtype
	err     error
	needs   map[*G.Node]bool
	nodes   map[*Param]*G.Node
	order   []*Param // parameters in the order they entered the graph
	train   map[*Param]bool
	grads   map[*Param]*G.Node
	inputs  map[string]*G.Node
	vm      G.VM
	nInputs int
	flops   int64 // forward convolution FLOPs added by Conv

	// Buffer reuse: op outputs come from arena and go back when their last
	// reader has run (plan).
	arena   *Arena
	kops    map[*G.Node]*kop
	kept    map[*G.Node]bool
	planned bool
}

// NewGraph starts an empty graph computing in dt (tensor.Float32 for
// training and inference, tensor.Float64 for gradient checks).
func NewGraph(dt tensor.Dtype) *Graph {
	return &Graph{
		eg:     G.NewGraph(),
		dt:     dt,
		needs:  map[*G.Node]bool{},
		nodes:  map[*Param]*G.Node{},
		train:  map[*Param]bool{},
		grads:  map[*Param]*G.Node{},
		inputs: map[string]*G.Node{},
		arena:  NewArena(),
		kops:   map[*G.Node]*kop{},
		kept:   map[*G.Node]bool{},
	}
}

// ShareArena makes g take its op outputs from a's arena, so that graphs
// that run one after another (a training step's) reuse each other's
// buffers. Call it before g first runs. Graphs sharing an arena must not
// run concurrently.
func (g *Graph) ShareArena(a *Graph) {
	if g.planned {
		g.fail(errors.New("model: ShareArena after the graph ran"))
		return
	}
	g.arena = a.arena
}

// Keep marks nodes whose values are read after Run (Float32s, Scalar):
// their buffers stay valid until the graph runs again. Every other op
// output goes back to the arena as soon as the last op reading it has run,
// and reading it after Run panics. Parameter gradients are kept anyway.
func (g *Graph) Keep(ns ...*G.Node) {
	for _, n := range ns {
		if n != nil {
			g.kept[n] = true
		}
	}
}

// Dtype is the element type of the graph.
func (g *Graph) Dtype() tensor.Dtype { return g.dt }

// ConvFLOPs is the number of floating-point operations (2 x multiply-adds,
// kernels.ConvShape.FLOPs) of the forward convolutions added to the graph
// by Conv, the work of one Run's forward pass in convolutions; the
// gradient convolutions of Backward are not counted.
func (g *Graph) ConvFLOPs() int64 { return g.flops }

// Err returns the first error met while building or running the graph.
func (g *Graph) Err() error { return g.err }

func (g *Graph) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

// Train marks the learnable parameters of the given modules as trained in
// this graph. Call it before building the layers that use them.
func (g *Graph) Train(ms ...*Module) {
	for _, m := range ms {
		for _, p := range m.params {
			if p.Learnable {
				g.train[p] = true
			}
		}
	}
}

// Input adds a data node (no gradient) of the given shape; Run feeds it by
// name.
func (g *Graph) Input(name string, shape ...int) *G.Node {
	if g.err != nil {
		return nil
	}
	if _, dup := g.inputs[name]; dup {
		g.fail(fmt.Errorf("model: graph input %q added twice", name))
		return nil
	}
	n := G.NewTensor(g.eg, g.dt, len(shape), G.WithShape(shape...), G.WithName(name))
	g.inputs[name] = n
	return n
}

// Param returns the node of a module parameter, bound to its value (the
// graph reads the weights in place, so optimizer updates are seen by every
// graph that uses them).
func (g *Graph) Param(p *Param) *G.Node {
	if g.err != nil {
		return nil
	}
	if n, ok := g.nodes[p]; ok {
		return n
	}
	if p.Value.Dtype() != g.dt {
		g.fail(fmt.Errorf("model: parameter %s is %v, graph computes in %v", p.Name, p.Value.Dtype(), g.dt))
		return nil
	}
	n := G.NewTensor(g.eg, g.dt, p.Value.Dims(), G.WithShape(p.Value.Shape()...), G.WithName(p.Name), G.WithValue(p.Value))
	g.nodes[p] = n
	g.order = append(g.order, p)
	g.needs[n] = g.train[p]
	return n
}

// apply adds op on inputs. op.diff, when set, says which inputs the op can
// differentiate; it is narrowed to the inputs that depend on a trained
// parameter.
func (g *Graph) apply(o *kop, ins ...*G.Node) *G.Node {
	if g.err != nil {
		return nil
	}
	o.g = g
	o.inShapes = make([]tensor.Shape, len(ins))
	diff := make([]bool, len(ins))
	any := false
	for i, n := range ins {
		if n == nil {
			g.fail(fmt.Errorf("model: %s: input %d missing", o.name, i))
			return nil
		}
		if n.IsScalar() {
			o.inShapes[i] = tensor.ScalarShape()
		} else {
			o.inShapes[i] = n.Shape()
		}
		diff[i] = g.needs[n] && (o.diff == nil || o.diff[i])
		any = any || diff[i]
	}
	o.diff = diff
	n, err := G.ApplyOp(o, ins...)
	if err != nil {
		g.fail(fmt.Errorf("model: %s: %w", o.name, err))
		return nil
	}
	g.needs[n] = any
	// gorgonia merges identical nodes: the node's op is the kop that runs.
	if k, ok := n.Op().(*kop); ok && g.kops[n] == nil {
		k.node = n
		for _, in := range ins {
			if ik, ok := in.Op().(*kop); ok && !slices.Contains(k.inKops, ik) {
				k.inKops = append(k.inKops, ik)
			}
		}
		g.kops[n] = k
	}
	return n
}

// plan counts the readers of every op output before the first Run. An
// output is pinned (kept until the next Run) when it is kept, a parameter
// gradient, a scalar, or read by an op that is not a kop (gorgonia's own
// gradient sums, which may write into their first input in place).
func (g *Graph) plan() {
	grads := map[*G.Node]bool{}
	for _, n := range g.grads {
		grads[n] = true
	}
	for n, k := range g.kops {
		k.readers, k.pinned = 0, g.kept[n] || grads[n] || k.outShape.Dims() == 0
		it := g.eg.To(n.ID())
		for it.Next() {
			r := it.Node().(*G.Node)
			k.readers++
			if _, ok := r.Op().(*kop); !ok {
				k.pinned = true
			}
		}
	}
	g.planned = true
}

// ran is called by a kop after it has written its output: the inputs it
// was the last reader of go back to the arena.
func (g *Graph) ran(o *kop) {
	for _, ik := range o.inKops {
		ik.remaining--
		if ik.remaining == 0 && !ik.pinned {
			ik.release()
		}
	}
}

// release returns the op's output buffer to the arena.
func (o *kop) release() {
	if o.out == nil || o.released {
		return
	}
	switch d := o.out.Data().(type) {
	case []float32:
		putArena(o.g.arena, d)
	case []float64:
		putArena(o.g.arena, d)
	}
	o.released = true
}

// Backward adds the gradient of the scalar loss with respect to every
// trained parameter used in the graph.
func (g *Graph) Backward(loss *G.Node) {
	if g.err != nil {
		return
	}
	var ps []*Param
	var wrt G.Nodes
	for _, p := range g.order {
		if g.train[p] {
			ps = append(ps, p)
			wrt = append(wrt, g.nodes[p])
		}
	}
	if len(wrt) == 0 {
		g.fail(errors.New("model: Backward: no trained parameter in the graph"))
		return
	}
	gs, err := G.Grad(loss, wrt...)
	if err != nil {
		g.fail(fmt.Errorf("model: gradient: %w", err))
		return
	}
	for i, p := range ps {
		g.grads[p] = gs[i]
	}
}

// Run feeds the named inputs and executes the graph. Values read from the
// graph (Value, Grad) stay valid until the next Run.
func (g *Graph) Run(feeds map[string]*tensor.Dense) error {
	if g.err != nil {
		return g.err
	}
	if g.vm == nil {
		g.vm = G.NewTapeMachine(g.eg)
	}
	if !g.planned {
		g.plan()
	}
	// What the last Run kept goes back now; every op starts anew.
	for _, k := range g.kops {
		if k.out != nil && k.outShape.Dims() > 0 {
			k.release()
		}
		k.remaining = k.readers
	}
	g.vm.Reset()
	for name, n := range g.inputs {
		v, ok := feeds[name]
		if !ok {
			return fmt.Errorf("model: graph input %q not fed", name)
		}
		if !v.Shape().Eq(n.Shape()) || v.Dtype() != g.dt {
			return fmt.Errorf("model: graph input %q: got %v %v, want %v %v", name, v.Dtype(), v.Shape(), g.dt, n.Shape())
		}
		if err := G.Let(n, v); err != nil {
			return fmt.Errorf("model: feeding %q: %w", name, err)
		}
	}
	if len(feeds) != len(g.inputs) {
		for name := range feeds {
			if _, ok := g.inputs[name]; !ok {
				return fmt.Errorf("model: fed %q, which the graph does not have", name)
			}
		}
	}
	if err := g.vm.RunAll(); err != nil {
		return fmt.Errorf("model: running graph: %w", err)
	}
	return nil
}

// Close releases the tape machine.
func (g *Graph) Close() {
	if g.vm != nil {
		g.vm.Close()
		g.vm = nil
	}
}

// Grad returns the gradient of the last Run's loss for p, or nil if p was
// not trained in this graph.
func (g *Graph) Grad(p *Param) *tensor.Dense {
	n, ok := g.grads[p]
	if !ok {
		return nil
	}
	d, _ := n.Value().(*tensor.Dense)
	return d
}

// Trained lists the parameters that receive gradients, in the order they
// entered the graph.
func (g *Graph) Trained() []*Param {
	var ps []*Param
	for _, p := range g.order {
		if _, ok := g.grads[p]; ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// checkLive panics when n's buffer went back to the arena during Run:
// reading it would return another op's data. The graph must Keep it.
func checkLive(n *G.Node) {
	if k, ok := n.Op().(*kop); ok && k.released {
		panic(fmt.Sprintf("model: the value of %s was read after its buffer was reused; Keep the node", k.name))
	}
}

// Float32s returns the float32 data of a node's value after Run.
func Float32s(n *G.Node) []float32 {
	if n == nil {
		return nil
	}
	checkLive(n)
	d, _ := valueData[float32](n.Value())
	return d
}

// Float64s returns the float64 data of a node's value after Run.
func Float64s(n *G.Node) []float64 {
	if n == nil {
		return nil
	}
	checkLive(n)
	d, _ := valueData[float64](n.Value())
	return d
}

// Scalar returns a scalar node's value after Run as a float64.
func Scalar(n *G.Node) float64 {
	if n == nil || n.Value() == nil {
		return 0
	}
	switch v := n.Value().Data().(type) {
	case float32:
		return float64(v)
	case float64:
		return v
	case []float32:
		if len(v) == 1 {
			return float64(v[0])
		}
	case []float64:
		if len(v) == 1 {
			return v[0]
		}
	}
	return 0
}

// shape4 returns a node's shape as N, C, H, W, failing the graph otherwise.
func (g *Graph) shape4(what string, n *G.Node) (int, int, int, int, bool) {
	if g.err != nil || n == nil {
		return 0, 0, 0, 0, false
	}
	s := n.Shape()
	if s.Dims() != 4 {
		g.fail(fmt.Errorf("model: %s: input has shape %v, want N x C x H x W", what, s))
		return 0, 0, 0, 0, false
	}
	return s[0], s[1], s[2], s[3], true
}
