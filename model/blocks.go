package model

import (
	"math/rand/v2"

	G "gorgonia.org/gorgonia"

	"github.com/pdmflow/pdmflow/kernels"
)

var (
	relu  = kernels.Act{Kind: kernels.ReLU}
	lrelu = kernels.Act{Kind: kernels.LeakyReLU, Slope: 0.2}
	ident = kernels.Act{}
)

// conv is the parameters of one convolution layer.
type conv struct {
	W, B   *Param
	Stride int
	Pad    int
}

// newConv adds a k x k convolution in -> out with PyTorch's default init
// and zero padding k/2.
func (m *Module) newConv(r *rand.Rand, name string, in, out, k, stride int, bias bool) conv {
	w, b := convInit(r, out, in*k*k)
	c := conv{W: m.add(name+".weight", true, w, out, in, k, k), Stride: stride, Pad: k / 2}
	if bias {
		c.B = m.add(name+".bias", true, b, out)
	}
	return c
}

func (g *Graph) applyConv(x *G.Node, c conv, act kernels.Act) *G.Node {
	var b *G.Node
	if c.B != nil {
		b = g.Param(c.B)
	}
	return g.Conv(x, g.Param(c.W), b, c.Stride, c.Pad, act)
}

// bn is a BatchNorm2d layer: scale, shift and running statistics.
type bn struct {
	Gamma, Beta *Param
	State       *BNState
}

// newBN adds a BatchNorm2d(c) with PyTorch's defaults (gamma 1, beta 0,
// momentum 0.1, eps 1e-5, running mean 0 and variance 1).
func (m *Module) newBN(name string, c int) bn {
	return bn{
		Gamma: m.add(name+".weight", true, constant(c, 1), c),
		Beta:  m.add(name+".bias", true, constant(c, 0), c),
		State: &BNState{
			Mean:     m.add(name+".running_mean", false, constant(c, 0), c),
			Var:      m.add(name+".running_var", false, constant(c, 1), c),
			Momentum: 0.1,
			Eps:      1e-5,
		},
	}
}

func (g *Graph) applyBN(x *G.Node, b bn, train bool, act kernels.Act) *G.Node {
	return g.BatchNorm(x, g.Param(b.Gamma), g.Param(b.Beta), b.State, train, act)
}

// bnResBlock is the residual block of PDM's kernel and noise networks:
// conv -> BN -> ReLU -> conv, plus the identity (pdm-spec §2.1).
type bnResBlock struct {
	C1 conv
	BN bn
	C2 conv
}

func (m *Module) newBNResBlock(r *rand.Rand, name string, nf, k int) bnResBlock {
	return bnResBlock{
		C1: m.newConv(r, name+".conv1", nf, nf, k, 1, true),
		BN: m.newBN(name+".bn", nf),
		C2: m.newConv(r, name+".conv2", nf, nf, k, 1, true),
	}
}

func (g *Graph) applyBNResBlock(x *G.Node, b bnResBlock, train bool) *G.Node {
	h := g.applyConv(x, b.C1, ident)
	h = g.applyBN(h, b.BN, train, relu)
	h = g.applyConv(h, b.C2, ident)
	return g.AddScaled(x, h, 1)
}
