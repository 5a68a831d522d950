package model

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
)

// TestDiscriminatorPack: a packing discriminator judges pairs of samples
// stacked along the channels: one patch map per pair, the same as a
// discriminator of one 6-channel sample with the same weights, gradients
// right, and a batch it cannot pack is refused.
func TestDiscriminatorPack(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	d, err := NewDiscriminator(DiscConfig{NF: 3, Out: 2, Stride: 1, Pack: 2}, tensor.Float64, 5)
	if err != nil {
		t.Fatal(err)
	}
	if s := d.M.Param("disc.conv0.weight").Value.Shape(); s[1] != 6 {
		t.Fatalf("conv0 takes %d channels, want 6", s[1])
	}
	x := randDense(r, 4, 3, 8, 8)
	run := func(in *tensor.Dense, shape ...int) []float64 {
		g := NewGraph(tensor.Float64)
		defer g.Close()
		out := d.Forward(g, g.Input("x", shape...))
		g.Keep(out)
		if err := g.Err(); err != nil {
			t.Fatal(err)
		}
		if err := g.Run(map[string]*tensor.Dense{"x": in}); err != nil {
			t.Fatal(err)
		}
		if s := out.Shape(); s[0] != 2 {
			t.Fatalf("patch map of %v, want 2 packs", s)
		}
		return append([]float64(nil), out.Value().Data().([]float64)...)
	}
	packed := run(x, 4, 3, 8, 8)
	// The same numbers as two 6-channel samples: packing is a reshape.
	d6 := *d
	d6.Cfg.Pack = 1
	g := NewGraph(tensor.Float64)
	out := d6.Forward(g, g.Input("x", 2, 6, 8, 8))
	g.Keep(out)
	if err := g.Run(map[string]*tensor.Dense{"x": tensor.New(tensor.WithShape(2, 6, 8, 8), tensor.WithBacking(x.Data()))}); err != nil {
		t.Fatal(err)
	}
	for i, v := range out.Value().Data().([]float64) {
		if v != packed[i] {
			t.Fatalf("packed output %d is %g, a 6-channel sample gives %g", i, packed[i], v)
		}
	}
	g.Close()
	feeds := map[string]*tensor.Dense{"real": randDense(r, 4, 3, 8, 8), "fake": randDense(r, 4, 3, 8, 8)}
	checkGraph(t, "disc-pack", d.M, feeds, func(g *Graph) *G.Node {
		real := d.Forward(g, g.Input("real", 4, 3, 8, 8))
		fake := d.Forward(g, g.Input("fake", 4, 3, 8, 8))
		return g.Sum(g.MeanSquare(real, 1, 0.5), g.MeanSquare(fake, 0, 0.5))
	}, gradcheck.Options{Samples: 15})
	g = NewGraph(tensor.Float64)
	defer g.Close()
	d.Forward(g, g.Input("odd", 3, 3, 8, 8))
	if g.Err() == nil {
		t.Error("a batch of 3 was packed by 2")
	}
	if _, err := NewDiscriminator(DiscConfig{NF: 3, Out: 2, Stride: 1, Pack: -1}, tensor.Float64, 5); err == nil {
		t.Error("pack -1 accepted")
	}
}
