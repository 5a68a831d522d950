package model

import (
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/kernels"
)

// Degraded is one degradation of an HR image.
type Degraded struct {
	H, W   int       // LR size
	LR     []float32 // 3 x H x W as generated (not clamped or rounded)
	Clean  []float32 // y_clean, before noise
	Noise  []float32 // n (nil when the noise mode is off)
	Kernel []float32 // k*k, or k*k x H x W for spatially variant kernels
}

// Degrade applies the PDM to one HR image (3 x h x w, values in [0,1]) with
// latents drawn from r, using BatchNorm's running statistics so that the
// result depends only on the image, the weights and r.
func (p *PDM) Degrade(hr []float32, h, w int, r *rand.Rand) (*Degraded, error) {
	if len(hr) != 3*h*w {
		return nil, fmt.Errorf("model: degrade: %d values for a 3x%dx%d image", len(hr), h, w)
	}
	s := kernels.BlurShape{N: 1, C: 3, H: h, W: w, KS: p.Cfg.Kernel.Size, Scale: p.Cfg.Scale}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("model: degrade: %w", err)
	}
	lh, lw := s.OutH(), s.OutW()
	zk, zn := p.SampleLatents(r, tensor.Float32, 1, lh, lw)
	g := NewGraph(tensor.Float32)
	defer g.Close()
	feeds := map[string]*tensor.Dense{"hr": tensor.New(tensor.WithShape(1, 3, h, w), tensor.WithBacking(hr)), "zk": zk}
	zkN := g.Input("zk", zk.Shape()...)
	var znN *G.Node
	if zn != nil {
		znN = g.Input("zn", zn.Shape()...)
		feeds["zn"] = zn
	}
	out := p.Forward(g, g.Input("hr", 1, 3, h, w), zkN, znN, false)
	g.Keep(out.Fake, out.Clean, out.Noise, out.Kernel)
	if err := g.Err(); err != nil {
		return nil, err
	}
	if err := g.Run(feeds); err != nil {
		return nil, err
	}
	d := &Degraded{H: lh, W: lw}
	d.LR = append([]float32(nil), Float32s(out.Fake)...)
	d.Clean = append([]float32(nil), Float32s(out.Clean)...)
	if out.Noise != nil {
		d.Noise = append([]float32(nil), Float32s(out.Noise)...)
	}
	d.Kernel = append([]float32(nil), Float32s(out.Kernel)...)
	return d, nil
}

// ReceptiveRadius is how many LR pixels around an output pixel's own
// position influence it: the head, 2 per residual block, the body conv and
// the upsampling convs (at most one LR pixel each).
func (e *EDSR) ReceptiveRadius() int { return 1 + 2*e.Cfg.NB + 1 + len(e.up) + 1 }

// Upscale runs the SR network on one LR image (3 x h x w in [0,1]) and
// returns the SR image (3 x h*s x w*s, unclamped). Images larger than tile
// LR pixels on a side are processed in tiles whose margins cover the
// receptive field, so the result equals a whole-image pass while the
// network's memory stays bounded (the result itself is 12 bytes per SR
// pixel: UpscaleTiles hands tiles over instead).
func (e *EDSR) Upscale(lr []float32, h, w, tile int) ([]float32, error) {
	if len(lr) != 3*h*w || h < 1 || w < 1 {
		return nil, fmt.Errorf("model: upscale: %d values for a 3x%dx%d image", len(lr), h, w)
	}
	s := e.Cfg.Scale
	W := w * s
	out := make([]float32, 3*h*s*w*s)
	err := e.UpscaleTiles(lr, h, w, tile, func(y0, x0, th, tw int, v []float32) error {
		for c := 0; c < 3; c++ {
			for y := 0; y < th; y++ {
				copy(out[(c*h*s+y0+y)*W+x0:(c*h*s+y0+y)*W+x0+tw], v[(c*th+y)*tw:])
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpscaleTiles runs the SR network on one LR image (3 x h x w in [0,1])
// tile by tile (tile LR pixels a side, margins covering the receptive
// field; tile <= 0: the whole image at once) and hands each tile's SR
// pixels to put: 3 x th x tw unclamped values for the SR rectangle at
// (x0, y0), valid until put returns. Together the tiles are Upscale's
// result.
func (e *EDSR) UpscaleTiles(lr []float32, h, w, tile int, put func(y0, x0, th, tw int, v []float32) error) error {
	if len(lr) != 3*h*w || h < 1 || w < 1 {
		return fmt.Errorf("model: upscale: %d values for a 3x%dx%d image", len(lr), h, w)
	}
	if tile <= 0 || (h <= tile && w <= tile) {
		return e.upscaleTile(lr, h, w, 0, 0, h, w, 0, 0, h, w, put)
	}
	m := e.ReceptiveRadius()
	for y0 := 0; y0 < h; y0 += tile {
		for x0 := 0; x0 < w; x0 += tile {
			y1, x1 := min(h, y0+tile), min(w, x0+tile)
			// The tile's input window: its core plus the margin.
			wy0, wx0 := max(0, y0-m), max(0, x0-m)
			wy1, wx1 := min(h, y1+m), min(w, x1+m)
			if err := e.upscaleTile(lr, h, w, wy0, wx0, wy1, wx1, y0, x0, y1, x1, put); err != nil {
				return err
			}
		}
	}
	return nil
}

// upscaleTile runs the network on the window [wy0,wy1) x [wx0,wx1) of lr
// and hands the part of the result over the core [y0,y1) x [x0,x1) to put.
func (e *EDSR) upscaleTile(lr []float32, h, w, wy0, wx0, wy1, wx1, y0, x0, y1, x1 int, put func(y0, x0, th, tw int, v []float32) error) error {
	s := e.Cfg.Scale
	th, tw := wy1-wy0, wx1-wx0
	in := make([]float32, 3*th*tw)
	for c := 0; c < 3; c++ {
		for y := 0; y < th; y++ {
			copy(in[(c*th+y)*tw:(c*th+y+1)*tw], lr[(c*h+wy0+y)*w+wx0:(c*h+wy0+y)*w+wx1])
		}
	}
	g := NewGraph(tensor.Float32)
	defer g.Close()
	feeds := map[string]*tensor.Dense{"lr": tensor.New(tensor.WithShape(1, 3, th, tw), tensor.WithBacking(in))}
	lrN := g.Input("lr", 1, 3, th, tw)
	var bic *G.Node
	if e.Cfg.Residual {
		up := make([]float32, 3*th*s*tw*s)
		kernels.ResizeBicubic(3, th, tw, th*s, tw*s, up, in)
		feeds["bic"] = tensor.New(tensor.WithShape(1, 3, th*s, tw*s), tensor.WithBacking(up))
		bic = g.Input("bic", 1, 3, th*s, tw*s)
	}
	sr := e.Forward(g, lrN, bic)
	g.Keep(sr)
	if err := g.Err(); err != nil {
		return err
	}
	if err := g.Run(feeds); err != nil {
		return err
	}
	v := Float32s(sr)
	TW := tw * s
	ch, cw := (y1-y0)*s, (x1-x0)*s
	core := make([]float32, 3*ch*cw)
	for c := 0; c < 3; c++ {
		for y := 0; y < ch; y++ {
			ty := y + (y0-wy0)*s
			copy(core[(c*ch+y)*cw:(c*ch+y+1)*cw], v[(c*th*s+ty)*TW+(x0-wx0)*s:])
		}
	}
	return put(y0*s, x0*s, ch, cw, core)
}

// Sampler runs a PDM's forward pass in inference mode (BatchNorm's running
// statistics) on batches of a fixed shape, keeping its graph between
// batches. Each sample's output depends only on its own image and latents,
// so a batch gives what Degrade gives for its samples one at a time.
// A Sampler is not safe for concurrent use.
type Sampler struct {
	p          *PDM
	g          *Graph
	n, h, w    int // batch and HR size
	lh, lw     int // LR size
	out        PDMOutput
	zkShape    []int
	znShape    []int
	zkBuf      []float32
	znBuf      []float32
	zkPerImage int
	znPerImage int
}

// NewSampler prepares the forward pass for batches of n HR images of
// h x w pixels.
func (p *PDM) NewSampler(n, h, w int) (*Sampler, error) {
	s := kernels.BlurShape{N: n, C: 3, H: h, W: w, KS: p.Cfg.Kernel.Size, Scale: p.Cfg.Scale}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("model: sampler: %w", err)
	}
	sm := &Sampler{p: p, n: n, h: h, w: w, lh: s.OutH(), lw: s.OutW()}
	sm.zkShape, sm.znShape = p.LatentShapes(n, sm.lh, sm.lw)
	sm.zkPerImage = prod(sm.zkShape) / n
	sm.zkBuf = make([]float32, prod(sm.zkShape))
	g := NewGraph(tensor.Float32)
	var znN *G.Node
	if sm.znShape != nil {
		sm.znPerImage = prod(sm.znShape) / n
		sm.znBuf = make([]float32, prod(sm.znShape))
		znN = g.Input("zn", sm.znShape...)
	}
	sm.out = p.Forward(g, g.Input("hr", n, 3, h, w), g.Input("zk", sm.zkShape...), znN, false)
	g.Keep(sm.out.Fake, sm.out.Clean, sm.out.Noise, sm.out.Kernel)
	if err := g.Err(); err != nil {
		g.Close()
		return nil, err
	}
	sm.g = g
	return sm, nil
}

func prod(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}

// LRSize is the LR height and width the sampler produces.
func (s *Sampler) LRSize() (int, int) { return s.lh, s.lw }

// Close releases the graph.
func (s *Sampler) Close() { s.g.Close() }

// Run degrades a batch: hr holds n images (n x 3 x h x w in [0,1]) and
// rands[i] draws the latents of image i exactly as Degrade draws them, so
// that any sample can be regenerated alone. The result's slices are views
// into the sampler's buffers, valid until the next Run.
func (s *Sampler) Run(hr []float32, rands []*rand.Rand) (*Degraded, error) {
	if len(hr) != s.n*3*s.h*s.w || len(rands) != s.n {
		return nil, fmt.Errorf("model: sampler: %d values and %d generators for a batch of %d x 3x%dx%d", len(hr), len(rands), s.n, s.h, s.w)
	}
	for i, r := range rands {
		var zn []float32
		if s.znBuf != nil {
			zn = s.znBuf[i*s.znPerImage : (i+1)*s.znPerImage]
		}
		s.p.DrawLatents(r, s.zkBuf[i*s.zkPerImage:(i+1)*s.zkPerImage], zn)
	}
	return s.RunLatents(hr, s.zkBuf, s.znBuf)
}

// RunLatents degrades a batch with the given latents (laid out as
// PDM.LatentShapes(n, lh, lw); zn nil when unused). The result's slices
// are views into the sampler's buffers, valid until the next run.
func (s *Sampler) RunLatents(hr, zk, zn []float32) (*Degraded, error) {
	if len(hr) != s.n*3*s.h*s.w || len(zk) != len(s.zkBuf) || len(zn) != len(s.znBuf) {
		return nil, fmt.Errorf("model: sampler: %d values and latents of %d and %d for a batch of %d x 3x%dx%d", len(hr), len(zk), len(zn), s.n, s.h, s.w)
	}
	feeds := map[string]*tensor.Dense{
		"hr": tensor.New(tensor.WithShape(s.n, 3, s.h, s.w), tensor.WithBacking(hr)),
		"zk": tensor.New(tensor.WithShape(s.zkShape...), tensor.WithBacking(zk)),
	}
	if s.znShape != nil {
		feeds["zn"] = tensor.New(tensor.WithShape(s.znShape...), tensor.WithBacking(zn))
	}
	if err := s.g.Run(feeds); err != nil {
		return nil, err
	}
	d := &Degraded{H: s.lh, W: s.lw, LR: Float32s(s.out.Fake), Clean: Float32s(s.out.Clean), Kernel: Float32s(s.out.Kernel)}
	if s.out.Noise != nil {
		d.Noise = Float32s(s.out.Noise)
	}
	return d, nil
}
