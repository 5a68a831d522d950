package model

import (
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Discriminator is the PatchGAN of pdm-spec §3: five 3x3 convolutions,
// LeakyReLU(0.2), InstanceNorm (no affine) on layers 2-4, stride Stride on
// layers 2 and 3, a map of Out channels per patch. With Cfg.BatchStd the
// minibatch standard deviation comes before the last convolution; with
// Cfg.Pack it judges packs of samples stacked along the channels.
type Discriminator struct {
	Cfg    DiscConfig
	M      *Module // "disc.*" (D1) or "disc2.*" (D2)
	layers [5]conv
}

// NewDiscriminator builds a discriminator with parameters of type dt,
// named "disc.*" (PDM's discriminator D1).
func NewDiscriminator(cfg DiscConfig, dt tensor.Dtype, seed uint64) (*Discriminator, error) {
	return NewDiscriminatorNamed("disc", cfg, dt, seed)
}

// NewDiscriminatorNamed builds a discriminator whose parameters are named
// "name.*": "disc2" is PDM-SRGAN's discriminator D2 on HR images, saved in
// the same checkpoint as D1.
func NewDiscriminatorNamed(name string, cfg DiscConfig, dt tensor.Dtype, seed uint64) (*Discriminator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0xd15c))
	d := &Discriminator{Cfg: cfg, M: NewModule(name, dt)}
	nf := cfg.NF
	d.layers[0] = d.M.newConv(r, "conv0", 3*cfg.pack(), nf, 3, 1, true)
	d.layers[1] = d.M.newConv(r, "conv1", nf, 2*nf, 3, cfg.Stride, true)
	d.layers[2] = d.M.newConv(r, "conv2", 2*nf, 4*nf, 3, cfg.Stride, true)
	d.layers[3] = d.M.newConv(r, "conv3", 4*nf, 8*nf, 3, 1, true)
	in4 := 8 * nf
	if cfg.BatchStd {
		in4++ // the minibatch standard deviation channel
	}
	d.layers[4] = d.M.newConv(r, "conv4", in4, cfg.Out, 3, 1, true)
	return d, nil
}

// Forward adds the discriminator's patch map of x (N x 3 x h x w); with
// Cfg.Pack p the map is of the N/p packs of p consecutive samples (N must
// be a multiple of p).
func (d *Discriminator) Forward(g *Graph, x *G.Node) *G.Node {
	if p := d.Cfg.pack(); p > 1 && x != nil {
		n, c, hh, ww, ok := g.shape4("discriminator", x)
		if !ok {
			return nil
		}
		if n%p != 0 {
			g.fail(fmt.Errorf("model: discriminator packs %d samples, the batch has %d", p, n))
			return nil
		}
		x = g.Reshape(x, n/p, c*p, hh, ww)
	}
	h := g.applyConv(x, d.layers[0], lrelu)
	for _, c := range d.layers[1:4] {
		h = g.applyConv(h, c, ident)
		h = g.InstanceNorm(h, lrelu)
	}
	if d.Cfg.BatchStd {
		h = g.MinibatchStd(h)
	}
	return g.applyConv(h, d.layers[4], ident)
}

// Load copies the discriminator's weights from w (a checkpoint). Weights
// of a discriminator with the minibatch standard deviation have an odd
// number of input channels in the last convolution (8 nf + 1), without it
// a multiple of 8, so a file of the other kind is refused with an error
// naming batch_std; other mismatches are WeightsFile.Load's.
func (d *Discriminator) Load(w *WeightsFile) error {
	p := d.layers[4].W
	if t, ok := w.File.Get(p.Name); ok && len(t.Shape) == 4 {
		if had := t.Shape[1]%2 == 1; had != d.Cfg.BatchStd {
			return fmt.Errorf("model: %s: discriminator weights %s batch_std (%s has %d input channels), this discriminator has batch_std: %v (%d); set disc.batch_std to match or train the discriminator afresh",
				w.Path, map[bool]string{true: "with", false: "without"}[had], p.Name, t.Shape[1], d.Cfg.BatchStd, p.Value.Shape()[1])
		}
	}
	return w.Load(d.M)
}
