package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/kernels"
)

// DefaultTile is DegradeTiled's tile side in LR pixels: with the margins
// the networks see, about 600x600 HR pixels at x4, a few tens of MiB of
// activations with the presets' networks.
const DefaultTile = 128

// HRSource fills dst (3 x h x w floats in [0, 1], planar RGB) with the
// rectangle of an HR image whose top-left corner is (x0, y0).
type HRSource func(x0, y0, w, h int, dst []float32) error

// DegradedImage is one degradation of an HR image by DegradeTiled.
type DegradedImage struct {
	H, W int       // LR size
	LR   []float32 // 3 x H x W as generated (not clamped or rounded)
	// Kernel is the k*k kernel of a spatially invariant PDM (nil for
	// spatially variant kernels, one per LR pixel).
	Kernel []float32
	// NoiseRMS is the root mean square of the noise over the image (0
	// when the noise mode is off).
	NoiseRMS float64
}

// DegradeTiled applies the PDM to an HR image of h x w pixels read
// through src, in tiles of at most tile x tile LR pixels (tile <= 0:
// DefaultTile), so that memory stays bounded whatever the image size:
// besides the tile being worked on, it holds the image's LR result, its
// noise and z_n (4 + 4 + 4*nc bytes per LR pixel and channel), never the
// image in floats or a whole-image graph.
//
// The result is Degrade's for the same r, bit for bit: the latents are
// drawn for the whole image in Degrade's order; each tile is computed
// with a margin that covers everything an output pixel depends on (the
// blur's support, the kernel and noise networks' receptive fields), so
// its pixels are those of a whole-image pass; the noise's per-plane mean
// (Cfg.Noise.ZeroMean) and its RMS are taken over the whole image, in
// Degrade's order.
func (p *PDM) DegradeTiled(src HRSource, h, w, tile int, r *rand.Rand) (*DegradedImage, error) {
	cfg := p.Cfg
	s := kernels.BlurShape{N: 1, C: 3, H: h, W: w, KS: cfg.Kernel.Size, Scale: cfg.Scale}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("model: degrade: %w", err)
	}
	if tile <= 0 {
		tile = DefaultTile
	}
	sc := cfg.Scale
	lh, lw := s.OutH(), s.OutW()
	zk, zn := p.SampleLatents(r, tensor.Float32, 1, lh, lw)
	zkv := zk.Data().([]float32)
	var znv []float32
	if zn != nil {
		znv = zn.Data().([]float32)
	}
	// The margin, in LR pixels: the blur reads KS/2 HR pixels around an
	// output pixel (reflected at the window's edge: wrong within e LR
	// pixels of it), the spatial kernel network's convolutions see mk LR
	// pixels (zero padded at the edge), the noise network m.
	e := (cfg.Kernel.Size/2+sc-1)/sc + 1
	mk, m := 0, 0
	if cfg.Kernel.Spatial {
		mk = (cfg.Kernel.Conv / 2) * (1 + 2*cfg.Kernel.NB)
	}
	if p.Noise != nil {
		m = (cfg.Noise.Conv / 2) * (1 + 2*cfg.Noise.NB)
	}
	margin := m + mk + e

	out := &DegradedImage{H: lh, W: lw, LR: make([]float32, 3*lh*lw)}
	var noise []float32
	if p.Noise != nil {
		noise = make([]float32, 3*lh*lw)
	}
	// The tiles run without the zero mean, taken over the whole image below.
	flat := *p
	flat.Cfg.Noise.ZeroMean = false
	var hr []float32
	for ty0 := 0; ty0 < lh; ty0 += tile {
		for tx0 := 0; tx0 < lw; tx0 += tile {
			ty1, tx1 := min(lh, ty0+tile), min(lw, tx0+tile)
			wy0, wx0 := max(0, ty0-margin), max(0, tx0-margin)
			wy1, wx1 := min(lh, ty1+margin), min(lw, tx1+margin)
			// The HR window starts on the LR grid (an LR pixel sits on HR
			// pixel sc*i) and gives exactly wy1-wy0 x wx1-wx0 LR pixels.
			hy0, hx0 := wy0*sc, wx0*sc
			hh, hw := min(h, wy1*sc)-hy0, min(w, wx1*sc)-hx0
			wh, ww := wy1-wy0, wx1-wx0
			if n := 3 * hh * hw; cap(hr) < n {
				hr = make([]float32, n)
			}
			hr = hr[:3*hh*hw]
			if err := src(hx0, hy0, hw, hh, hr); err != nil {
				return nil, err
			}
			var zkw, znw []float32
			if cfg.Kernel.Spatial {
				zkw = cropPlanes(zkv, cfg.Kernel.NC, lh, lw, wy0, wx0, wh, ww)
			} else {
				zkw = zkv
			}
			if znv != nil {
				znw = cropPlanes(znv, cfg.Noise.NC, lh, lw, wy0, wx0, wh, ww)
			}
			res, err := flat.degradeWindow(hr, hh, hw, zkw, znw, wh, ww)
			if err != nil {
				return nil, fmt.Errorf("model: degrade: tile at LR (%d, %d): %w", tx0, ty0, err)
			}
			if res.lh != wh || res.lw != ww {
				return nil, fmt.Errorf("model: degrade: a %dx%d HR window gave %dx%d LR pixels, want %dx%d", hh, hw, res.lh, res.lw, wh, ww)
			}
			// The tile's core, from the window's result: y_clean and the
			// noise (added below), or without noise the result itself.
			core := func(dst, src []float32) {
				pastePlanes(dst, src, lh, lw, wh, ww, ty0-wy0, tx0-wx0, ty0, tx0, ty1-ty0, tx1-tx0)
			}
			if noise != nil {
				core(out.LR, res.clean)
				core(noise, res.noise)
			} else {
				core(out.LR, res.fake)
			}
			if out.Kernel == nil && !cfg.Kernel.Spatial {
				out.Kernel = append([]float32(nil), res.kernel...)
			}
		}
	}
	if noise == nil {
		return out, nil
	}
	if cfg.Noise.ZeroMean {
		kernels.CenterPlanes(3, lh*lw, noise, noise)
	}
	var ss float64
	for i, v := range noise {
		out.LR[i] += v // y = y_clean + n, as Forward's AddScaled(clean, noise, 1)
		ss += float64(v) * float64(v)
	}
	out.NoiseRMS = math.Sqrt(ss / float64(len(noise)))
	return out, nil
}

// windowResult is the forward pass over one window.
type windowResult struct {
	lh, lw                     int
	clean, noise, fake, kernel []float32
}

// degradeWindow runs the forward pass (inference BatchNorm) on one HR
// window with its latents.
func (p *PDM) degradeWindow(hr []float32, h, w int, zk, zn []float32, lh, lw int) (*windowResult, error) {
	g := NewGraph(tensor.Float32)
	defer g.Close()
	zkShape, znShape := p.LatentShapes(1, lh, lw)
	feeds := map[string]*tensor.Dense{
		"hr": tensor.New(tensor.WithShape(1, 3, h, w), tensor.WithBacking(hr)),
		"zk": tensor.New(tensor.WithShape(zkShape...), tensor.WithBacking(zk)),
	}
	var znN *G.Node
	if znShape != nil {
		if len(zn) != prod(znShape) {
			return nil, errors.New("z_n of the wrong size")
		}
		feeds["zn"] = tensor.New(tensor.WithShape(znShape...), tensor.WithBacking(zn))
		znN = g.Input("zn", znShape...)
	}
	out := p.Forward(g, g.Input("hr", 1, 3, h, w), g.Input("zk", zkShape...), znN, false)
	g.Keep(out.Fake, out.Clean, out.Noise, out.Kernel)
	if err := g.Err(); err != nil {
		return nil, err
	}
	if err := g.Run(feeds); err != nil {
		return nil, err
	}
	res := &windowResult{lh: out.Clean.Shape()[2], lw: out.Clean.Shape()[3]}
	res.clean = append([]float32(nil), Float32s(out.Clean)...)
	res.fake = append([]float32(nil), Float32s(out.Fake)...)
	if out.Noise != nil {
		res.noise = append([]float32(nil), Float32s(out.Noise)...)
	}
	res.kernel = append([]float32(nil), Float32s(out.Kernel)...)
	return res, nil
}

// cropPlanes copies the h x w window at (y0, x0) of c planes of H x W.
func cropPlanes(v []float32, c, H, W, y0, x0, h, w int) []float32 {
	out := make([]float32, c*h*w)
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h; y++ {
			copy(out[(ch*h+y)*w:(ch*h+y+1)*w], v[(ch*H+y0+y)*W+x0:])
		}
	}
	return out
}

// pastePlanes copies the h x w region at (sy, sx) of 3 planes of sh x sw
// (src) to (dy, dx) of 3 planes of H x W (dst).
func pastePlanes(dst, src []float32, H, W, sh, sw, sy, sx, dy, dx, h, w int) {
	for ch := 0; ch < 3; ch++ {
		for y := 0; y < h; y++ {
			copy(dst[(ch*H+dy+y)*W+dx:(ch*H+dy+y)*W+dx+w], src[(ch*sh+sy+y)*sw+sx:])
		}
	}
}
