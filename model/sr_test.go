package model

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
	"github.com/pdmflow/pdmflow/internal/safetensors"
)

// TestEDSRWeightsBeforeTheSeam: weights files of EDSR written by pdmflow
// before SR networks moved behind model.SR (testdata/make_edsr_v1.go) load
// with LoadSR, and give the same SR image, bit for bit, as the EDSR that
// wrote them gave.
func TestEDSRWeightsBeforeTheSeam(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "edsr_v1_io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	io, err := safetensors.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) ([]float32, []int) {
		ts, ok := io.Get(name)
		if !ok {
			t.Fatalf("no %s in the fixture", name)
		}
		v, err := ts.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return v, ts.Shape
	}
	lr, shape := get("lr")
	for _, name := range []string{"light", "pixelshuffle"} {
		s, err := LoadSR(filepath.Join("testdata", "edsr_v1_"+name+".safetensors"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Cfg.Arch != "edsr" {
			t.Fatalf("%s: arch %q", name, s.Cfg.Arch)
		}
		got, err := s.Upscale(lr, shape[1], shape[2], 0)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := get("sr_" + name)
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, the fixture %d", name, len(got), len(want))
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: value %d is %g, was %g", name, i, got[i], want[i])
			}
		}
	}
}

func randImage(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32()
	}
	return v
}

// TestUpscaleTilesMatchWhole: tiled upscaling with the receptive field as
// margin gives the whole-image result, for every architecture, with and
// without a residual, and for RRDB at x2 on an odd-sized image (padded to
// even sides).
func TestUpscaleTilesMatchWhole(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []SRConfig{
		{Arch: "edsr", Scale: 4, NF: 4, NB: 1, ResScale: 1, RGBRange: 255, Residual: true, Upsampler: "light"},
		{Arch: "edsr", Scale: 3, NF: 4, NB: 1, ResScale: 1, RGBRange: 255, Upsampler: "pixelshuffle"},
		{Arch: "rrdb", Scale: 4, NF: 4, NB: 1, GC: 2},
		{Arch: "rrdb", Scale: 2, NF: 4, NB: 1, GC: 2, Residual: true},
	} {
		s, err := NewSR(c, tensor.Float32, 3)
		if err != nil {
			t.Fatal(err)
		}
		const h, w = 21, 19
		lr := randImage(r, 3*h*w)
		whole, err := s.Upscale(lr, h, w, 0)
		if err != nil {
			t.Fatal(err)
		}
		tiled, err := s.Upscale(lr, h, w, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(whole) != 3*h*w*c.Scale*c.Scale || len(tiled) != len(whole) {
			t.Fatalf("%s x%d: %d and %d values", c.Arch, c.Scale, len(whole), len(tiled))
		}
		var worst float64
		for i := range whole {
			worst = max(worst, math.Abs(float64(whole[i]-tiled[i])))
		}
		if worst > 1e-6 {
			t.Errorf("%s x%d: tiles differ from the whole image by %g", c.Arch, c.Scale, worst)
		}
	}
}

// TestSRGradient checks the SR step's L1 loss through each architecture
// at each of its scales, plain and residual over a given bicubic
// upsampling, against central differences (EDSR at small widths; RRDB
// with one RRDB of nf 4 and growth 2).
func TestSRGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	var cfgs []SRConfig
	for _, scale := range []int{2, 3, 4} {
		for i, residual := range []bool{false, true} {
			up := []string{"pixelshuffle", "light"}[i]
			cfgs = append(cfgs, SRConfig{Arch: "edsr", Scale: scale, NF: 4, NB: 2, ResScale: 0.5, RGBRange: 255, Residual: residual, Upsampler: up})
		}
	}
	for _, scale := range []int{2, 4} {
		for _, residual := range []bool{false, true} {
			cfgs = append(cfgs, SRConfig{Arch: "rrdb", Scale: scale, NF: 4, NB: 1, GC: 2, Residual: residual})
		}
	}
	for _, cfg := range cfgs {
		e, err := NewSR(cfg, tensor.Float64, 4)
		if err != nil {
			t.Fatal(err)
		}
		// Off the init (RRDB's RDB convs start at a tenth of Kaiming's
		// scale and zero bias).
		jitter(r, 0.2, e.M)
		const n, h = 2, 4
		scale, residual := cfg.Scale, cfg.Residual
		feeds := map[string]*tensor.Dense{"lr": randDense(r, n, 3, h, h), "hr": randDense(r, n, 3, h*scale, h*scale)}
		if residual {
			feeds["bic"] = randDense(r, n, 3, h*scale, h*scale)
		}
		checkGraph(t, cfg.Arch, e.M, feeds, func(g *Graph) *G.Node {
			var bic *G.Node
			if residual {
				bic = g.Input("bic", n, 3, h*scale, h*scale)
			}
			sr := e.Forward(g, g.Input("lr", n, 3, h, h), bic)
			return g.MeanAbsDiff(sr, g.Input("hr", n, 3, h*scale, h*scale), 1)
		}, gradcheck.Options{Samples: 8, Eps: 1e-7, Tol: 1e-5})
	}
}

// TestResampleOpGradients checks the nearest upsampling, pixel unshuffle
// and max-pool layers' input gradients against central differences (the
// input is made a parameter).
func TestResampleOpGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, c := range []struct {
		name string
		op   func(g *Graph, x *G.Node) *G.Node
	}{
		{"upsample-nearest", func(g *Graph, x *G.Node) *G.Node { return g.UpsampleNearest(x, 2) }},
		{"pixelunshuffle", func(g *Graph, x *G.Node) *G.Node { return g.PixelUnshuffle(x, 2) }},
		{"maxpool2", func(g *Graph, x *G.Node) *G.Node { return g.MaxPool2(x) }},
	} {
		m := NewModule("m", tensor.Float64)
		x := m.add("x", true, randDense(r, 2, 3, 6, 4).Data().([]float64), 2, 3, 6, 4)
		checkGraph(t, c.name, m, map[string]*tensor.Dense{}, func(g *Graph) *G.Node {
			y := c.op(g, g.Param(x))
			return g.MeanSquare(y, 0.3, 1)
		}, gradcheck.Options{})
	}
	// The pixel unshuffle is PyTorch's: out[c*4 + i*2 + j, y, x] = in[c, 2y+i, 2x+j].
	g := NewGraph(tensor.Float64)
	defer g.Close()
	in := g.Input("x", 1, 1, 2, 4)
	out := g.PixelUnshuffle(in, 2)
	g.Keep(out)
	if err := g.Run(map[string]*tensor.Dense{"x": tensor.New(tensor.WithShape(1, 1, 2, 4), tensor.WithBacking([]float64{0, 1, 2, 3, 4, 5, 6, 7}))}); err != nil {
		t.Fatal(err)
	}
	if got, want := Float64s(out), []float64{0, 2, 1, 3, 4, 6, 5, 7}; !slices.Equal(got, want) {
		t.Errorf("pixel unshuffle = %v, want %v", got, want)
	}
}

// TestResizeDataRefusesGradients: ResizeData has no gradient, so the graph
// fails when its input depends on a trained parameter instead of dropping
// the gradient.
func TestResizeDataRefusesGradients(t *testing.T) {
	m := NewModule("m", tensor.Float32)
	x := m.add("x", true, make([]float64, 3*8*8), 1, 3, 8, 8)
	g := NewGraph(tensor.Float32)
	defer g.Close()
	g.Train(m)
	g.ResizeData(g.Param(x), 2, 2)
	if err := g.Err(); err == nil || !strings.Contains(err.Error(), "no gradient") {
		t.Fatalf("resize of a trained value: %v", err)
	}
}

// TestSRConfigRefusals: settings an architecture cannot use are errors
// that name them.
func TestSRConfigRefusals(t *testing.T) {
	for _, c := range []struct {
		cfg  SRConfig
		want string
	}{
		{SRConfig{Arch: "rrdb", Scale: 3, NF: 4, NB: 1, GC: 2}, "scale 3: rrdb upsamples by 4"},
		{SRConfig{Arch: "rrdb", Scale: 4, NF: 4, NB: 1}, "gc 0"},
		{SRConfig{Arch: "rrdb", Scale: 4, NF: 4, NB: 1, GC: 2, ResScale: 1}, "res_scale 1: rrdb's residual scaling"},
		{SRConfig{Arch: "rrdb", Scale: 4, NF: 4, NB: 1, GC: 2, Upsampler: "light"}, "upsampler \"light\""},
		{SRConfig{Arch: "edsr", Scale: 4, NF: 4, NB: 1, GC: 2, ResScale: 1, RGBRange: 255, Upsampler: "light"}, "gc 2: edsr"},
		{SRConfig{Arch: "edsr", Scale: 5, NF: 4, NB: 1, ResScale: 1, RGBRange: 255, Upsampler: "light"}, "scale 5"},
		{SRConfig{Arch: "srcnn", Scale: 4, NF: 4}, "arch \"srcnn\": edsr or rrdb"},
	} {
		if _, err := NewSR(c.cfg, tensor.Float32, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
}

// TestRRDBInit: the RDB convolutions start as BasicSR's
// default_init_weights(0.1) (kaiming normal, fan in, times 0.1; zero bias),
// the others with PyTorch's default; the names are BasicSR's.
func TestRRDBInit(t *testing.T) {
	s, err := NewSR(SRConfig{Arch: "rrdb", Scale: 4, NF: 64, NB: 1, GC: 32}, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sr.conv_first.weight", "sr.body.0.rdb3.conv5.bias", "sr.conv_body.weight", "sr.conv_up1.weight", "sr.conv_up2.weight", "sr.conv_hr.weight", "sr.conv_last.weight"} {
		if s.M.Param(name) == nil {
			t.Errorf("no parameter %s", name)
		}
	}
	for j, fanIn := range []int{64 * 9, 96 * 9, 128 * 9, 160 * 9, 192 * 9} {
		w := s.M.Param("sr.body.0.rdb2.conv" + string(rune('1'+j)) + ".weight").Float32Data()
		var ss float64
		for _, v := range w {
			ss += float64(v) * float64(v)
		}
		std, want := math.Sqrt(ss/float64(len(w))), 0.1*math.Sqrt(2/float64(fanIn))
		if math.Abs(std/want-1) > 0.05 {
			t.Errorf("conv%d: std %g, want %g", j+1, std, want)
		}
		for _, b := range s.M.Param("sr.body.0.rdb2.conv" + string(rune('1'+j)) + ".bias").Float32Data() {
			if b != 0 {
				t.Fatalf("conv%d: bias %g, want 0", j+1, b)
			}
		}
	}
	// conv_first keeps PyTorch's default, U(-1/sqrt(fanIn), 1/sqrt(fanIn)).
	bound := 1 / math.Sqrt(27)
	var big bool
	for _, v := range s.M.Param("sr.conv_first.weight").Float32Data() {
		if math.Abs(float64(v)) > bound {
			t.Fatalf("conv_first weight %g beyond %g", v, bound)
		}
		big = big || math.Abs(float64(v)) > bound/2
	}
	if !big {
		t.Error("conv_first looks scaled down")
	}
}

// TestLoadInit: initial SR weights load into a network of the same
// configuration and are refused, naming the settings, otherwise.
func TestLoadInit(t *testing.T) {
	cfg := SRConfig{Arch: "rrdb", Scale: 4, NF: 4, NB: 1, GC: 2}
	a, _ := NewSR(cfg, tensor.Float32, 1)
	path := filepath.Join(t.TempDir(), "sr.safetensors")
	if err := SaveSR(path, a); err != nil {
		t.Fatal(err)
	}
	b, _ := NewSR(cfg, tensor.Float32, 2)
	if err := b.LoadInit(path); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.M.Param("sr.conv_last.weight").Float32Data(), b.M.Param("sr.conv_last.weight").Float32Data()) {
		t.Error("weights not loaded")
	}
	other := cfg
	other.GC = 3
	c, _ := NewSR(other, tensor.Float32, 2)
	if err := c.LoadInit(path); err == nil || !strings.Contains(err.Error(), "sr.gc: file 2, run 3") {
		t.Errorf("another growth: %v", err)
	}
	e, _ := NewSR(SRConfig{Arch: "edsr", Scale: 4, NF: 4, NB: 1, ResScale: 1, RGBRange: 255, Upsampler: "light"}, tensor.Float32, 2)
	if err := e.LoadInit(path); err == nil || !strings.Contains(err.Error(), "sr.arch: file rrdb, run edsr") {
		t.Errorf("another architecture: %v", err)
	}
}
