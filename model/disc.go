package model

import (
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Discriminator is the PatchGAN of pdm-spec §3: five 3x3 convolutions,
// LeakyReLU(0.2), InstanceNorm (no affine) on layers 2-4, stride Stride on
// layers 2 and 3, a map of Out channels per patch.
type Discriminator struct {
	Cfg    DiscConfig
	M      *Module // "disc.*"
	layers [5]conv
}

// NewDiscriminator builds a discriminator with parameters of type dt.
func NewDiscriminator(cfg DiscConfig, dt tensor.Dtype, seed uint64) (*Discriminator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0xd15c))
	d := &Discriminator{Cfg: cfg, M: NewModule("disc", dt)}
	nf := cfg.NF
	d.layers[0] = d.M.newConv(r, "conv0", 3, nf, 3, 1, true)
	d.layers[1] = d.M.newConv(r, "conv1", nf, 2*nf, 3, cfg.Stride, true)
	d.layers[2] = d.M.newConv(r, "conv2", 2*nf, 4*nf, 3, cfg.Stride, true)
	d.layers[3] = d.M.newConv(r, "conv3", 4*nf, 8*nf, 3, 1, true)
	d.layers[4] = d.M.newConv(r, "conv4", 8*nf, cfg.Out, 3, 1, true)
	return d, nil
}

// Forward adds the discriminator's patch map of x (N x 3 x h x w).
func (d *Discriminator) Forward(g *Graph, x *G.Node) *G.Node {
	h := g.applyConv(x, d.layers[0], lrelu)
	for _, c := range d.layers[1:4] {
		h = g.applyConv(h, c, ident)
		h = g.InstanceNorm(h, lrelu)
	}
	return g.applyConv(h, d.layers[4], ident)
}
