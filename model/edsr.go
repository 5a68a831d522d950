package model

import (
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// edsrMean is the RGB mean of DIV2K that EDSR subtracts (pdm-spec §4).
var edsrMean = []float64{0.4488, 0.4371, 0.4040}

// EDSR is the EDSR-baseline super-resolution network: a head conv, NB
// residual blocks (conv-ReLU-conv scaled by ResScale), a body conv with a
// global skip, pixel-shuffle upsampling and a tail conv (or the light
// upsampler of SRConfig.Upsampler), in the RGBRange
// value range with the DIV2K mean shifted out (fixed, not trained).
type EDSR struct {
	Cfg    SRConfig
	M      *Module // "sr.*"
	head   conv
	blocks [][2]conv
	body   conv
	up     []conv
	tail   conv
}

// NewEDSR builds an EDSR with parameters of type dt.
func NewEDSR(cfg SRConfig, dt tensor.Dtype, seed uint64) (*EDSR, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0xed5))
	e := &EDSR{Cfg: cfg, M: NewModule("sr", dt)}
	nf := cfg.NF
	e.head = e.M.newConv(r, "head", 3, nf, 3, 1, true)
	for i := 0; i < cfg.NB; i++ {
		e.blocks = append(e.blocks, [2]conv{
			e.M.newConv(r, fmt.Sprintf("body.%d.conv1", i), nf, nf, 3, 1, true),
			e.M.newConv(r, fmt.Sprintf("body.%d.conv2", i), nf, nf, 3, 1, true),
		})
	}
	e.body = e.M.newConv(r, "body.last", nf, nf, 3, 1, true)
	if cfg.Upsampler == "light" {
		e.tail = e.M.newConv(r, "tail", nf, 3*cfg.Scale*cfg.Scale, 3, 1, true)
		return e, nil
	}
	for i, f := range upFactors(cfg.Scale) {
		e.up = append(e.up, e.M.newConv(r, fmt.Sprintf("up.%d", i), nf, f*f*nf, 3, 1, true))
	}
	e.tail = e.M.newConv(r, "tail", nf, 3, 3, 1, true)
	return e, nil
}

// upFactors splits the scale into pixel-shuffle steps: x4 is two x2.
func upFactors(scale int) []int {
	if scale == 4 {
		return []int{2, 2}
	}
	return []int{scale}
}

// Forward adds the SR image of lr (N x 3 x h x w in [0,1]). With
// Cfg.Residual, bicubic must be lr upsampled by bicubic interpolation
// (N x 3 x h*s x w*s) and the network adds its output to it; otherwise
// bicubic is ignored and may be nil.
func (e *EDSR) Forward(g *Graph, lr, bicubic *G.Node) *G.Node {
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
