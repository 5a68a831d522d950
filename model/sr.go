package model

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/kernels"
)

// SR is a super-resolution network: the one type the trainer, `pdmflow
// sr`, the demo, validation, the benchmark and `pdmflow import` use,
// whatever its architecture. It is built from an SRConfig, whose Arch
// selects an entry of the architecture table (srArchs): each
// architecture is one file that registers itself there (edsr.go,
// rrdb.go) and implements srNet. Its parameters are the module "sr.*",
// saved as weights of kind "sr".
type SR struct {
	Cfg SRConfig
	M   *Module // "sr.*"
	net srNet
}

// srNet is what an architecture implements.
type srNet interface {
	// forward adds the network on lr (N x 3 x h x w in [0,1], h and w
	// multiples of the architecture's input multiple). With Cfg.Residual,
	// bic is lr upsampled by bicubic interpolation (N x 3 x h*s x w*s) and
	// the output is a residual over it; otherwise bic is nil.
	forward(g *Graph, lr, bic *G.Node) *G.Node
	// receptiveRadius is how many LR pixels around an output pixel's own
	// position can influence it (an upper bound).
	receptiveRadius() int
}

// srArch is an entry of the architecture table.
type srArch struct {
	// validate reports the settings of c the architecture cannot use (c's
	// common fields are already checked).
	validate func(c SRConfig) []error
	// build adds the architecture's parameters to m, initialised from seed.
	build func(m *Module, c SRConfig, seed uint64) srNet
	// multiple is the number the LR sides must be a multiple of (nil: 1).
	multiple func(c SRConfig) int
	// params is the number of parameters build adds, computed without
	// building (SRConfig.ParamCount: weights files are checked with it
	// before anything is allocated).
	params func(c SRConfig) int
}

var srArchs = map[string]srArch{}

// registerSR adds an architecture to the table (from the init function of
// its file).
func registerSR(name string, a srArch) {
	if _, dup := srArchs[name]; dup || a.validate == nil || a.build == nil || a.params == nil {
		panic(fmt.Sprintf("model: SR architecture %q registered twice or incompletely", name))
	}
	srArchs[name] = a
}

// SRArchs lists the registered architectures.
func SRArchs() []string {
	names := make([]string, 0, len(srArchs))
	for n := range srArchs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NewSR builds the SR network cfg describes, with parameters of type dt
// initialised from seed.
func NewSR(cfg SRConfig, dt tensor.Dtype, seed uint64) (*SR, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &SR{Cfg: cfg, M: NewModule("sr", dt)}
	s.net = srArchs[cfg.Arch].build(s.M, cfg, seed)
	return s, nil
}

// Forward adds the SR image of lr (N x 3 x h x w in [0,1]). With
// Cfg.Residual, bicubic must be lr upsampled by bicubic interpolation
// (N x 3 x h*s x w*s) and the network adds its output to it; otherwise
// bicubic must be nil.
func (s *SR) Forward(g *Graph, lr, bicubic *G.Node) *G.Node {
	n, _, h, w, ok := g.shape4("sr", lr)
	if !ok {
		return nil
	}
	if m := s.InputMultiple(); h%m != 0 || w%m != 0 {
		g.fail(fmt.Errorf("model: sr: a %s x%d network takes LR sides that are multiples of %d, not %dx%d", s.Cfg.Arch, s.Cfg.Scale, m, w, h))
		return nil
	}
	sc := s.Cfg.Scale
	switch {
	case s.Cfg.Residual && bicubic == nil:
		g.fail(errors.New("model: sr: a residual network needs the bicubic upsampling of its input"))
		return nil
	case !s.Cfg.Residual && bicubic != nil:
		g.fail(errors.New("model: sr: a bicubic upsampling given to a network that is not residual"))
		return nil
	case bicubic != nil && !bicubic.Shape().Eq(tensor.Shape{n, 3, h * sc, w * sc}):
		g.fail(fmt.Errorf("model: sr: bicubic upsampling of shape %v for an input of %v at x%d", bicubic.Shape(), lr.Shape(), sc))
		return nil
	}
	return s.net.forward(g, lr, bicubic)
}

// ReceptiveRadius is how many LR pixels around an output pixel's own
// position can influence it: Upscale's tile margin.
func (s *SR) ReceptiveRadius() int { return s.net.receptiveRadius() }

// InputMultiple is the number the LR sides given to Forward must be a
// multiple of (2 for RRDB at x2, which starts with a pixel unshuffle; 1
// otherwise). Upscale pads images to it.
func (s *SR) InputMultiple() int {
	if f := srArchs[s.Cfg.Arch].multiple; f != nil {
		return f(s.Cfg)
	}
	return 1
}

// Upscale runs the SR network on one LR image (3 x h x w in [0,1]) and
// returns the SR image (3 x h*s x w*s, unclamped). Images larger than tile
// LR pixels on a side are processed in tiles whose margins cover the
// receptive field, so the result equals a whole-image pass while the
// network's memory stays bounded (the result itself is 12 bytes per SR
// pixel: UpscaleTiles hands tiles over instead). An image whose sides are
// not multiples of InputMultiple is padded at the bottom and right by
// repeating its last row and column, and the result cropped.
func (s *SR) Upscale(lr []float32, h, w, tile int) ([]float32, error) {
	if len(lr) != 3*h*w || h < 1 || w < 1 {
		return nil, fmt.Errorf("model: upscale: %d values for a 3x%dx%d image", len(lr), h, w)
	}
	sc := s.Cfg.Scale
	H, W := h*sc, w*sc
	out := make([]float32, 3*H*W)
	err := s.UpscaleTiles(lr, h, w, tile, func(y0, x0, th, tw int, v []float32) error {
		for c := 0; c < 3; c++ {
			for y := 0; y < th; y++ {
				copy(out[(c*H+y0+y)*W+x0:][:tw], v[(c*th+y)*tw:])
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
func (s *SR) UpscaleTiles(lr []float32, h, w, tile int, put func(y0, x0, th, tw int, v []float32) error) error {
	if len(lr) != 3*h*w || h < 1 || w < 1 {
		return fmt.Errorf("model: upscale: %d values for a 3x%dx%d image", len(lr), h, w)
	}
	mult := s.InputMultiple()
	up := func(n int) int { return (n + mult - 1) / mult * mult }
	ph, pw := up(h), up(w)
	src := lr
	if ph != h || pw != w {
		src = make([]float32, 3*ph*pw)
		for c := 0; c < 3; c++ {
			for y := 0; y < ph; y++ {
				row := lr[(c*h+min(y, h-1))*w:][:w]
				dst := src[(c*ph+y)*pw:][:pw]
				copy(dst, row)
				for x := w; x < pw; x++ {
					dst[x] = row[w-1]
				}
			}
		}
	}
	if tile <= 0 || (ph <= tile && pw <= tile) {
		return s.upscaleTile(src, ph, pw, h, w, 0, 0, ph, pw, 0, 0, ph, pw, put)
	}
	tile, m := up(tile), up(s.ReceptiveRadius())
	for y0 := 0; y0 < ph; y0 += tile {
		for x0 := 0; x0 < pw; x0 += tile {
			y1, x1 := min(ph, y0+tile), min(pw, x0+tile)
			// The tile's input window: its core plus the margin.
			wy0, wx0 := max(0, y0-m), max(0, x0-m)
			wy1, wx1 := min(ph, y1+m), min(pw, x1+m)
			if err := s.upscaleTile(src, ph, pw, h, w, wy0, wx0, wy1, wx1, y0, x0, y1, x1, put); err != nil {
				return err
			}
		}
	}
	return nil
}

// upscaleTile runs the network on the window [wy0,wy1) x [wx0,wx1) of lr
// (ph x pw, padded from h x w) and hands the part of the result over the
// core [y0,y1) x [x0,x1), cropped to the unpadded image, to put.
func (s *SR) upscaleTile(lr []float32, ph, pw, h, w, wy0, wx0, wy1, wx1, y0, x0, y1, x1 int, put func(y0, x0, th, tw int, v []float32) error) error {
	sc := s.Cfg.Scale
	y1, x1 = min(y1, h), min(x1, w)
	if y0 >= y1 || x0 >= x1 {
		return nil // all padding
	}
	th, tw := wy1-wy0, wx1-wx0
	in := make([]float32, 3*th*tw)
	for c := 0; c < 3; c++ {
		for y := 0; y < th; y++ {
			copy(in[(c*th+y)*tw:(c*th+y+1)*tw], lr[(c*ph+wy0+y)*pw+wx0:(c*ph+wy0+y)*pw+wx1])
		}
	}
	g := NewGraph(tensor.Float32)
	defer g.Close()
	feeds := map[string]*tensor.Dense{"lr": tensor.New(tensor.WithShape(1, 3, th, tw), tensor.WithBacking(in))}
	lrN := g.Input("lr", 1, 3, th, tw)
	var bic *G.Node
	if s.Cfg.Residual {
		up := make([]float32, 3*th*sc*tw*sc)
		kernels.ResizeBicubic(3, th, tw, th*sc, tw*sc, up, in)
		feeds["bic"] = tensor.New(tensor.WithShape(1, 3, th*sc, tw*sc), tensor.WithBacking(up))
		bic = g.Input("bic", 1, 3, th*sc, tw*sc)
	}
	sr := s.Forward(g, lrN, bic)
	g.Keep(sr)
	if err := g.Err(); err != nil {
		return err
	}
	if err := g.Run(feeds); err != nil {
		return err
	}
	v := Float32s(sr)
	TW := tw * sc
	ch, cw := (y1-y0)*sc, (x1-x0)*sc
	core := make([]float32, 3*ch*cw)
	for c := 0; c < 3; c++ {
		for y := 0; y < ch; y++ {
			ty := y + (y0-wy0)*sc
			copy(core[(c*ch+y)*cw:][:cw], v[(c*th*sc+ty)*TW+(x0-wx0)*sc:])
		}
	}
	return put(y0*sc, x0*sc, ch, cw, core)
}

// SaveSR writes an SR network's weights and config to path (kind "sr").
func SaveSR(path string, s *SR) error {
	b, err := EncodeWeights(KindSR, s.Cfg, nil, nil, s.M)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b)
}

// LoadSR reads an SR network saved by SaveSR, built as float32.
func LoadSR(path string) (*SR, error) {
	w, err := ReadWeightsFile(path, KindSR)
	if err != nil {
		return nil, err
	}
	return w.SR()
}

// SR builds the SR network the file's config describes and loads its
// weights.
func (w *WeightsFile) SR() (*SR, error) {
	var cfg SRConfig
	if err := w.Config(&cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model: %s: %w", w.Path, err)
	}
	if err := w.checkParams("SR network", cfg.ParamCount(), "sr"); err != nil {
		return nil, err
	}
	s, err := NewSR(cfg, tensor.Float32, 0)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", w.Path, err)
	}
	if err := w.Load(s.M); err != nil {
		return nil, err
	}
	return s, nil
}

// LoadInit copies into s the weights of an SR weights file (kind "sr") of
// the same configuration: pretrained weights to start training from. A
// file of another architecture or configuration is refused with the
// settings that differ.
func (s *SR) LoadInit(path string) error {
	w, err := ReadWeightsFile(path, KindSR)
	if err != nil {
		return err
	}
	var cfg SRConfig
	if err := w.Config(&cfg); err != nil {
		return err
	}
	if diff := cfg.differences(s.Cfg); len(diff) > 0 {
		return fmt.Errorf("model: %s holds an SR network of another configuration than this run's (%s); initial weights must be of the same architecture and shape", path, strings.Join(diff, ", "))
	}
	return w.Load(s.M)
}

// differences lists the settings in which c differs from o, as
// "field: c's value, o's value".
func (c SRConfig) differences(o SRConfig) []string {
	var out []string
	a, b := reflect.ValueOf(c), reflect.ValueOf(o)
	for i := range a.NumField() {
		f := a.Type().Field(i)
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			out = append(out, fmt.Sprintf("sr.%s: file %v, run %v", name, a.Field(i).Interface(), b.Field(i).Interface()))
		}
	}
	return slices.Clip(out)
}
