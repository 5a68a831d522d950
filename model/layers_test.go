package model

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
	"github.com/pdmflow/pdmflow/kernels"
)

func randDense(r *rand.Rand, shape ...int) *tensor.Dense {
	n := 1
	for _, s := range shape {
		n *= s
	}
	d := make([]float64, n)
	for i := range d {
		d[i] = 2*r.Float64() - 1
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
}

// checkGraph builds a float64 graph with build, trains every parameter of
// m, and compares the gradients of the scalar it returns with central
// differences; extra lists data inputs to also check (their gradients come
// from a Backward that includes them as parameters).
func checkGraph(t *testing.T, name string, m *Module, feeds map[string]*tensor.Dense, build func(g *Graph) *G.Node, o gradcheck.Options) {
	t.Helper()
	g := NewGraph(tensor.Float64)
	g.Train(m)
	loss := build(g)
	g.Backward(loss)
	if err := g.Err(); err != nil {
		t.Fatalf("%s: build: %v", name, err)
	}
	defer g.Close()
	if err := g.Run(feeds); err != nil {
		t.Fatalf("%s: run: %v", name, err)
	}
	var params []gradcheck.Param
	for _, p := range g.Trained() {
		gr := g.Grad(p)
		if gr == nil {
			t.Fatalf("%s: no gradient for %s", name, p.Name)
		}
		params = append(params, gradcheck.Param{Name: p.Name, Value: p.Value.Data().([]float64), Grad: append([]float64(nil), gr.Data().([]float64)...)})
	}
	if len(params) == 0 {
		t.Fatalf("%s: nothing trained", name)
	}
	f := func() float64 {
		if err := g.Run(feeds); err != nil {
			t.Fatalf("%s: run: %v", name, err)
		}
		return Scalar(loss)
	}
	worst, err := gradcheck.Check(f, params, o)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Logf("%s: worst %s", name, worst)
}

func TestConvLayerGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m := NewModule("m", tensor.Float64)
	w1, b1 := convInit(r, 4, 3*9)
	pw1 := m.add("c1.weight", true, w1, 4, 3, 3, 3)
	pb1 := m.add("c1.bias", true, b1, 4)
	w2, b2 := convInit(r, 2, 4*9)
	pw2 := m.add("c2.weight", true, w2, 2, 4, 3, 3)
	pb2 := m.add("c2.bias", true, b2, 2)
	feeds := map[string]*tensor.Dense{"x": randDense(r, 2, 3, 6, 5)}
	checkGraph(t, "conv-lrelu-conv-meansquare", m, feeds, func(g *Graph) *G.Node {
		x := g.Input("x", 2, 3, 6, 5)
		h := g.Conv(x, g.Param(pw1), g.Param(pb1), 1, 1, kernels.Act{Kind: kernels.LeakyReLU, Slope: 0.2})
		y := g.Conv(h, g.Param(pw2), g.Param(pb2), 2, 1, kernels.Act{})
		return g.MeanSquare(y, 1, 1)
	}, gradcheck.Options{Samples: 30})
}
