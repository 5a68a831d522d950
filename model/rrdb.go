package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
)

// rrdb is ESRGAN's RRDBNet as BasicSR defines it (arch "rrdb"; pdm-spec
// §4, the SR network of the paper's Table 3):
//
//	feat = conv_first(x)                 x = lr, or pixel_unshuffle(lr, 2) at x2
//	feat = feat + conv_body(RRDB_nb(... RRDB_1(feat)))
//	feat = lrelu(conv_up1(nearest2(feat)))
//	feat = lrelu(conv_up2(nearest2(feat)))
//	out  = conv_last(lrelu(conv_hr(feat)))
//
// with RRDB(x) = 0.2 * RDB3(RDB2(RDB1(x))) + x and each RDB five 3x3
// convolutions densely connected, the first four adding GC channels with
// LeakyReLU(0.2): x1 = lrelu(conv1(x)), ..., x4 = lrelu(conv4(cat(x, x1,
// x2, x3))), RDB(x) = 0.2 * conv5(cat(x, x1, ..., x4)) + x. Inputs and
// outputs are in [0,1] with no mean shift. Parameters are named as
// BasicSR's state dict under "sr.": sr.conv_first, sr.body.N.rdbK.convJ,
// sr.conv_body, sr.conv_up1, sr.conv_up2, sr.conv_hr, sr.conv_last.
type rrdb struct {
	Cfg                    SRConfig
	first                  conv
	blocks                 [][3][5]conv
	body, up1, up2, hr, ln conv
}

func init() {
	registerSR("rrdb", srArch{validate: validateRRDB, build: newRRDB, multiple: rrdbMultiple, params: rrdbParams})
}

func validateRRDB(c SRConfig) []error {
	var errs []error
	if c.Scale != 2 && c.Scale != 4 {
		errs = append(errs, fmt.Errorf("scale %d: rrdb upsamples by 4 (two nearest x2 steps) or by 2 (the same after a x2 pixel unshuffle of its input, as BasicSR's RRDBNet); not by %d", c.Scale, c.Scale))
	}
	if c.GC < 1 {
		errs = append(errs, fmt.Errorf("gc %d: rrdb needs growth channels (32 in ESRGAN)", c.GC))
	}
	if c.ResScale != 0 {
		errs = append(errs, fmt.Errorf("res_scale %g: rrdb's residual scaling is ESRGAN's fixed 0.2; leave res_scale out (0)", c.ResScale))
	}
	if c.RGBRange != 0 {
		errs = append(errs, fmt.Errorf("rgb_range %g: rrdb works in [0,1] with no mean shift; leave rgb_range out (0)", c.RGBRange))
	}
	if c.Upsampler != "" {
		errs = append(errs, fmt.Errorf("upsampler %q: rrdb's upsampler is fixed (nearest x2 + conv, twice); leave upsampler out", c.Upsampler))
	}
	return errs
}

// rrdbMultiple: at x2 the input is pixel-unshuffled by 2.
func rrdbMultiple(c SRConfig) int { return 4 / c.Scale }

// rrdbParams is the parameter count newRRDB makes.
func rrdbParams(c SRConfig) int {
	nf, gc, m := c.NF, c.GC, 4/max(1, c.Scale)
	// conv_first; conv_body, conv_up1, conv_up2, conv_hr; conv_last.
	n := convParams(3*m*m, nf, 3) + 4*convParams(nf, nf, 3) + convParams(nf, 3, 3)
	rdb := 0
	for j := range 5 {
		out := gc
		if j == 4 {
			out = nf
		}
		rdb += convParams(nf+j*gc, out, 3)
	}
	return n + c.NB*3*rdb
}

// rrdbResidualScale is ESRGAN's residual scaling of RDBs and RRDBs.
const rrdbResidualScale = 0.2

// newRRDB adds an RRDBNet's parameters to m: PyTorch's default init,
// except the RDB convolutions, which get BasicSR's default_init_weights(…,
// 0.1): kaiming_normal_ (fan in, gain sqrt 2) scaled by 0.1, bias 0.
func newRRDB(m *Module, cfg SRConfig, seed uint64) srNet {
	r := rand.New(rand.NewPCG(seed, 0x44db))
	nf, gc := cfg.NF, cfg.GC
	e := &rrdb{Cfg: cfg}
	in := 3 * rrdbMultiple(cfg) * rrdbMultiple(cfg)
	e.first = m.newConv(r, "conv_first", in, nf, 3, 1, true)
	for b := 0; b < cfg.NB; b++ {
		var blk [3][5]conv
		for k := range 3 {
			for j := range 5 {
				cin, cout := nf+j*gc, gc
				if j == 4 {
					cout = nf
				}
				blk[k][j] = m.newKaimingConv(r, fmt.Sprintf("body.%d.rdb%d.conv%d", b, k+1, j+1), cin, cout, 3, 0.1)
			}
		}
		e.blocks = append(e.blocks, blk)
	}
	e.body = m.newConv(r, "conv_body", nf, nf, 3, 1, true)
	e.up1 = m.newConv(r, "conv_up1", nf, nf, 3, 1, true)
	e.up2 = m.newConv(r, "conv_up2", nf, nf, 3, 1, true)
	e.hr = m.newConv(r, "conv_hr", nf, nf, 3, 1, true)
	e.ln = m.newConv(r, "conv_last", nf, 3, 3, 1, true)
	return e
}

// newKaimingConv adds a k x k convolution in -> out (stride 1, padding
// k/2) with BasicSR's default_init_weights: weights from kaiming_normal_
// (N(0, 2/fanIn)) times scale, bias 0.
func (m *Module) newKaimingConv(r *rand.Rand, name string, in, out, k int, scale float64) conv {
	fanIn := in * k * k
	std := math.Sqrt(2/float64(fanIn)) * scale
	w := make([]float64, out*fanIn)
	for i := range w {
		w[i] = r.NormFloat64() * std
	}
	return conv{
		W:      m.add(name+".weight", true, w, out, in, k, k),
		B:      m.add(name+".bias", true, make([]float64, out), out),
		Stride: 1,
		Pad:    k / 2,
	}
}

// receptiveRadius: on the grid of conv_first (LR, or LR/2 at x2),
// conv_first and conv_body one pixel each, every RDB five (its longest
// path), and the four convolutions after the upsamplings 1/2 + 3/4 of a
// pixel, rounded up to 2; times the unshuffle factor in LR pixels, plus
// the pixels of one unshuffle block.
func (e *rrdb) receptiveRadius() int {
	u := rrdbMultiple(e.Cfg)
	return (1+15*e.Cfg.NB+1+2)*u + u - 1
}

func (e *rrdb) forward(g *Graph, lr, bic *G.Node) *G.Node {
	x := lr
	if u := rrdbMultiple(e.Cfg); u > 1 {
		x = g.PixelUnshuffle(lr, u)
	}
	feat := g.applyConv(x, e.first, ident)
	h := feat
	for _, blk := range e.blocks {
		in := h
		for _, rdb := range blk {
			h = g.rdb(h, rdb)
		}
		h = g.AddScaled(in, h, rrdbResidualScale)
	}
	feat = g.AddScaled(feat, g.applyConv(h, e.body, ident), 1)
	feat = g.applyConv(g.UpsampleNearest(feat, 2), e.up1, lrelu)
	feat = g.applyConv(g.UpsampleNearest(feat, 2), e.up2, lrelu)
	out := g.applyConv(g.applyConv(feat, e.hr, lrelu), e.ln, ident)
	if e.Cfg.Residual {
		return g.AddScaled(bic, out, 1)
	}
	return out
}

// rdb is one residual dense block: 0.2 * conv5(cat(x, x1..x4)) + x.
func (g *Graph) rdb(x *G.Node, c [5]conv) *G.Node {
	cat := x
	for j := range 4 {
		cat = g.Concat(cat, g.applyConv(cat, c[j], lrelu))
	}
	return g.AddScaled(x, g.applyConv(cat, c[4], ident), rrdbResidualScale)
}
