package model

import (
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
)

// edsrMean is the RGB mean of DIV2K that EDSR subtracts (pdm-spec §4).
var edsrMean = []float64{0.4488, 0.4371, 0.4040}

// edsr is the EDSR-baseline super-resolution network (arch "edsr"): a
// head conv, NB residual blocks (conv-ReLU-conv scaled by ResScale), a
// body conv with a global skip, pixel-shuffle upsampling and a tail conv
// (or the light upsampler of SRConfig.Upsampler), in the RGBRange value
// range with the DIV2K mean shifted out (fixed, not trained). Its
// parameters keep the names pdmflow has always saved: sr.head,
// sr.body.N.conv1/conv2, sr.body.last, sr.up.N, sr.tail.
type edsr struct {
	Cfg    SRConfig
	head   conv
	blocks [][2]conv
	body   conv
	up     []conv
	tail   conv
}

func init() {
	registerSR("edsr", srArch{validate: validateEDSR, build: newEDSR, params: edsrParams})
}

func validateEDSR(c SRConfig) []error {
	var errs []error
	if c.Scale != 2 && c.Scale != 3 && c.Scale != 4 {
		errs = append(errs, fmt.Errorf("scale %d: edsr upsamples by 2, 3 or 4", c.Scale))
	}
	if c.Upsampler != "pixelshuffle" && c.Upsampler != "light" {
		errs = append(errs, fmt.Errorf("upsampler %q: pixelshuffle or light", c.Upsampler))
	}
	if c.ResScale <= 0 || c.RGBRange <= 0 {
		errs = append(errs, fmt.Errorf("res_scale/rgb_range %g/%g must be positive", c.ResScale, c.RGBRange))
	}
	if c.GC != 0 {
		errs = append(errs, fmt.Errorf("gc %d: edsr has no growth channels (an rrdb setting)", c.GC))
	}
	return errs
}

// newEDSR adds an EDSR's parameters to m (the random stream is the one
// pdmflow's EDSR has always drawn from, so a seed gives the weights it
// gave before the SR seam).
func newEDSR(m *Module, cfg SRConfig, seed uint64) srNet {
	r := rand.New(rand.NewPCG(seed, 0xed5))
	e := &edsr{Cfg: cfg}
	nf := cfg.NF
	e.head = m.newConv(r, "head", 3, nf, 3, 1, true)
	for i := 0; i < cfg.NB; i++ {
		e.blocks = append(e.blocks, [2]conv{
			m.newConv(r, fmt.Sprintf("body.%d.conv1", i), nf, nf, 3, 1, true),
			m.newConv(r, fmt.Sprintf("body.%d.conv2", i), nf, nf, 3, 1, true),
		})
	}
	e.body = m.newConv(r, "body.last", nf, nf, 3, 1, true)
	if cfg.Upsampler == "light" {
		e.tail = m.newConv(r, "tail", nf, 3*cfg.Scale*cfg.Scale, 3, 1, true)
		return e
	}
	for i, f := range upFactors(cfg.Scale) {
		e.up = append(e.up, m.newConv(r, fmt.Sprintf("up.%d", i), nf, f*f*nf, 3, 1, true))
	}
	e.tail = m.newConv(r, "tail", nf, 3, 3, 1, true)
	return e
}

// edsrParams is the parameter count newEDSR makes.
func edsrParams(c SRConfig) int {
	nf := c.NF
	n := convParams(3, nf, 3) + c.NB*2*convParams(nf, nf, 3) + convParams(nf, nf, 3)
	if c.Upsampler == "light" {
		return n + convParams(nf, 3*c.Scale*c.Scale, 3)
	}
	for _, f := range upFactors(c.Scale) {
		n += convParams(nf, f*f*nf, 3)
	}
	return n + convParams(nf, 3, 3)
}

// upFactors splits the scale into pixel-shuffle steps: x4 is two x2.
func upFactors(scale int) []int {
	if scale == 4 {
		return []int{2, 2}
	}
	return []int{scale}
}

// receptiveRadius counts the head, 2 per residual block, the body conv and
// the upsampling and tail convs (at most one LR pixel each).
func (e *edsr) receptiveRadius() int { return 1 + 2*e.Cfg.NB + 1 + len(e.up) + 1 }

func (e *edsr) forward(g *Graph, lr, bicubic *G.Node) *G.Node {
	rng := e.Cfg.RGBRange
	scale := []float64{rng, rng, rng}
	shift := make([]float64, 3)
	for i, m := range edsrMean {
		shift[i] = -rng * m
	}
	x := g.ChannelAffine(lr, scale, shift)
	h := g.applyConv(x, e.head, ident)
	res := h
	for _, b := range e.blocks {
		t := g.applyConv(res, b[0], relu)
		t = g.applyConv(t, b[1], ident)
		res = g.AddScaled(res, t, e.Cfg.ResScale)
	}
	res = g.applyConv(res, e.body, ident)
	h = g.AddScaled(h, res, 1)
	if e.Cfg.Upsampler == "light" {
		h = g.PixelShuffle(g.applyConv(h, e.tail, ident), e.Cfg.Scale)
	} else {
		for i, f := range upFactors(e.Cfg.Scale) {
			h = g.applyConv(h, e.up[i], ident)
			h = g.PixelShuffle(h, f)
		}
		h = g.applyConv(h, e.tail, ident)
	}
	inv := []float64{1 / rng, 1 / rng, 1 / rng}
	if e.Cfg.Residual {
		return g.AddScaled(bicubic, g.ChannelAffine(h, inv, make([]float64, 3)), 1)
	}
	return g.ChannelAffine(h, inv, edsrMean)
}
