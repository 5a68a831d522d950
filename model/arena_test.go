package model

import (
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/kernels"
)

// TestArenaReusesDeadBuffers: in a chain of six activations no more than
// two outputs are ever alive at once (an op's input and its output), so
// the arena allocates two buffers for all six, over several runs; the
// results stay right; and reading an output whose buffer was reused panics
// instead of returning another op's data.
func TestArenaReusesDeadBuffers(t *testing.T) {
	const n = 1000
	g := NewGraph(tensor.Float64)
	defer g.Close()
	x := g.Input("x", 1, 1, 1, n)
	h := x
	mid := h
	for i := 0; i < 6; i++ {
		h = g.Act(h, kernels.Act{Kind: kernels.LeakyReLU, Slope: 0.5})
		if i == 2 {
			mid = h
		}
	}
	g.Keep(h)
	in := make([]float64, n)
	for i := range in {
		in[i] = float64(i) - n/2
	}
	for run := 0; run < 3; run++ {
		if err := g.Run(map[string]*tensor.Dense{"x": tensor.New(tensor.WithShape(1, 1, 1, n), tensor.WithBacking(in))}); err != nil {
			t.Fatal(err)
		}
		got := append([]float64(nil), Float64s(h)...)
		for i, v := range in {
			want := v
			if v < 0 {
				want = v / 64
			}
			if got[i] != want {
				t.Fatalf("run %d: element %d = %g, want %g", run, i, got[i], want)
			}
		}
	}
	if b := g.arena.Bytes(); b != 2*n*8 {
		t.Errorf("the arena allocated %d bytes, want %d (two buffers)", b, 2*n*8)
	}
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "Keep") {
			t.Errorf("reading a reused buffer: recovered %v, want a panic that says to Keep the node", r)
		}
	}()
	Float64s(mid)
}
