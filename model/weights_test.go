package model

import (
	"encoding/json"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/safetensors"
)

func tinyPDMConfig() PDMConfig {
	return PDMConfig{
		Scale:  2,
		Kernel: KernelConfig{Size: 3, NC: 2, NF: 3, NB: 1, Conv: 1, Init: "box"},
		Noise:  NoiseConfig{Mode: NoiseMixed, NC: 1, NF: 2, NB: 1, Conv: 3},
	}
}

// allocated runs f and returns the bytes it allocated.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestWeightsConfigCheckedFirst: a weights file's config is checked before
// anything is built from it. A small file whose config asks for a big
// network (within the dimension bounds, or far outside them) is refused,
// naming what is wrong, and costs next to nothing.
func TestWeightsConfigCheckedFirst(t *testing.T) {
	big := PDMConfig{
		Scale:  4,
		Kernel: KernelConfig{Size: 21, NC: 64, NF: 900, NB: 6, Conv: 1, Init: "box"},
		Noise:  NoiseConfig{Mode: NoiseMixed, NC: 3, NF: 400, NB: 6, Conv: 3},
	}
	if err := big.Validate(); err != nil {
		t.Fatalf("the in-bounds config is invalid: %v", err)
	}
	huge := big
	huge.Kernel.NF = 20000
	deep := big
	deep.Noise.NB = 100000
	wide := big
	wide.Noise.NC = 1 << 40
	for _, c := range []struct {
		name    string
		cfg     PDMConfig
		mention []string
	}{
		// First: within the bounds, but the file holds no tensors.
		{"within bounds", big, []string{"parameters", "bytes"}},
		{"kernel.nf 20000", huge, []string{"kernel.nf 20000"}},
		{"noise.nb 100000", deep, []string{"noise.nb 100000"}},
		{"noise.nc 2^40", wide, []string{"noise.nc"}},
	} {
		b, err := EncodeWeights(KindPDM, c.cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var perr error
		n := allocated(func() {
			var w *WeightsFile
			if w, perr = DecodeWeights("w.safetensors", b, KindPDM); perr == nil {
				_, perr = w.PDM()
			}
		})
		if perr == nil {
			t.Fatalf("%s: a %d-byte file with no tensors built a PDM", c.name, len(b))
		}
		for _, m := range c.mention {
			if !strings.Contains(perr.Error(), m) {
				t.Errorf("%s: error %q does not mention %q", c.name, perr, m)
			}
		}
		if !strings.Contains(perr.Error(), "w.safetensors") {
			t.Errorf("%s: error %q does not name the file", c.name, perr)
		}
		if n > 4<<20 {
			t.Fatalf("%s: refusing a %d-byte file allocated %d bytes", c.name, len(b), n)
		}
	}
}

// TestWeightsTensorBytesChecked: tensors that do not add up to the config's
// parameters are refused before the network is built, SR weights too.
func TestWeightsTensorBytesChecked(t *testing.T) {
	cfg := tinyPDMConfig()
	p, err := NewPDM(cfg, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	good, err := EncodeWeights(KindPDM, cfg, nil, nil, p.Modules()...)
	if err != nil {
		t.Fatal(err)
	}
	w, err := DecodeWeights("good", good, KindPDM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.PDM(); err != nil {
		t.Fatalf("good weights: %v", err)
	}
	bigger := cfg
	bigger.Noise.NF = 200
	bad, _ := EncodeWeights(KindPDM, bigger, nil, nil, p.Modules()...)
	w, err = DecodeWeights("bad", bad, KindPDM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.PDM(); err == nil || !strings.Contains(err.Error(), "parameters") {
		t.Fatalf("weights of a smaller network under a bigger config: %v", err)
	}

	sr := SRConfig{Arch: "edsr", Scale: 4, NF: 500, NB: 30, ResScale: 1, RGBRange: 255, Upsampler: "pixelshuffle"}
	b, _ := EncodeWeights(KindSR, sr, nil, nil)
	path := t.TempDir() + "/sr.safetensors"
	if err := WriteFileAtomic(path, b); err != nil {
		t.Fatal(err)
	}
	var lerr error
	if n := allocated(func() { _, lerr = LoadSR(path) }); lerr == nil || n > 4<<20 {
		t.Fatalf("SR weights without tensors: %v, %d bytes allocated", lerr, n)
	}
}

// TestParamCount: the parameter counts computed from a config are what
// building the network allocates.
func TestParamCount(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	modes := []string{NoiseMixed, NoiseZOnly, NoiseContentOnly, NoiseOff}
	for i := 0; i < 40; i++ {
		c := PDMConfig{
			Scale:  1 + r.IntN(4),
			Kernel: KernelConfig{Size: 1 + 2*r.IntN(5), NC: 1 + r.IntN(5), NF: 1 + r.IntN(6), NB: r.IntN(3), Spatial: r.IntN(2) == 0, Conv: 1 + 2*r.IntN(2), Init: "box"},
			Noise:  NoiseConfig{Mode: modes[r.IntN(len(modes))], NC: 1 + r.IntN(4), NF: 1 + r.IntN(6), NB: r.IntN(3), Conv: 1 + 2*r.IntN(2)},
		}
		p, err := NewPDM(c, tensor.Float32, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.ParamCount(), countParams(p.Modules()...); got != want {
			t.Fatalf("%+v: ParamCount %d, NewPDM made %d", c, got, want)
		}
	}
	for i := 0; i < 10; i++ {
		// Content-dependent kernels take the HR image too.
		c := PDMConfig{Scale: 2, Kernel: KernelConfig{Size: 3, NC: 1 + r.IntN(4), NF: 1 + r.IntN(5), NB: r.IntN(2), Spatial: true, Mix: true, Conv: 1 + 2*r.IntN(2), Init: "box"},
			Noise: NoiseConfig{Mode: NoiseOff}}
		p, err := NewPDM(c, tensor.Float32, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.ParamCount(), countParams(p.Modules()...); got != want {
			t.Fatalf("%+v: ParamCount %d, NewPDM made %d", c, got, want)
		}
	}
	var srs []SRConfig
	for _, up := range []string{"light", "pixelshuffle"} {
		for _, s := range []int{2, 3, 4} {
			srs = append(srs, SRConfig{Arch: "edsr", Scale: s, NF: 1 + r.IntN(6), NB: r.IntN(3), ResScale: 1, RGBRange: 255, Upsampler: up})
		}
	}
	for _, s := range []int{2, 4} {
		srs = append(srs, SRConfig{Arch: "rrdb", Scale: s, NF: 1 + r.IntN(6), NB: r.IntN(3), GC: 1 + r.IntN(4)})
	}
	for _, c := range srs {
		e, err := NewSR(c, tensor.Float32, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.ParamCount(), countParams(e.M); got != want {
			t.Fatalf("%+v: ParamCount %d, NewSR made %d", c, got, want)
		}
	}
	for _, d := range []DiscConfig{{NF: 3, Out: 5, Stride: 2}, {NF: 2, Out: 3, Stride: 1, Pack: 2}, {NF: 2, Out: 4, Stride: 1, BatchStd: true}} {
		disc, err := NewDiscriminator(d, tensor.Float32, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := d.ParamCount(), countParams(disc.M); got != want {
			t.Fatalf("%+v: ParamCount %d, NewDiscriminator made %d", d, got, want)
		}
	}
}

func countParams(ms ...*Module) int {
	n := 0
	for _, m := range ms {
		for _, p := range m.Params() {
			n += p.Value.Shape().TotalSize()
		}
	}
	return n
}

// FuzzWeightsConfig feeds arbitrary config metadata, with the tensors of a
// tiny PDM, to the weights reader: it never panics, never builds a network
// the file's tensors do not fill, and refuses without allocating more than
// the file's size in networks.
func FuzzWeightsConfig(f *testing.F) {
	cfg := tinyPDMConfig()
	p, err := NewPDM(cfg, tensor.Float32, 1)
	if err != nil {
		f.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, m := range p.Modules() {
		for _, q := range m.Params() {
			ts = append(ts, safetensors.FromFloat32s(q.Name, q.Value.Shape(), q.Float32Data()))
		}
	}
	good, _ := json.Marshal(cfg)
	f.Add(string(good))
	f.Add(`{"scale":4,"kernel":{"size":21,"nc":64,"nf":20000,"nb":8,"spatial":false,"conv":1,"init":"box","init_sigma":0},"noise":{"mode":"off"}}`)
	f.Add(`{"scale":2,"kernel":{"size":3,"nc":2,"nf":3,"nb":1,"conv":1,"init":"gaussian","init_sigma":1e308},"noise":{"mode":"mixed","nc":1,"nf":2,"nb":1,"conv":3}}`)
	f.Add(`{"scale":2,"kernel":{"size":-3}}`)
	f.Add(`{"scale":2,"kernel":{"size":3,"nc":2,"nf":3,"nb":1,"conv":1,"init":"box"},"noise":{"mode":"content-only","nc":0,"nf":2,"nb":1,"conv":3}}`)
	f.Fuzz(func(t *testing.T, config string) {
		var buf strings.Builder
		meta := map[string]string{MetaKind: KindPDM, MetaVersion: "1", MetaConfig: config}
		if err := safetensors.Encode(&buf, meta, ts); err != nil {
			t.Fatal(err)
		}
		b := []byte(buf.String())
		var q *PDM
		var perr error
		n := allocated(func() {
			var w *WeightsFile
			if w, perr = DecodeWeights("fuzz", b, KindPDM); perr == nil {
				q, perr = w.PDM()
			}
		})
		if perr != nil {
			if n > 16*uint64(len(b))+(8<<20) {
				t.Fatalf("refusing config %q allocated %d bytes", config, n)
			}
			return
		}
		if got := countParams(q.Modules()...); got != cfg.ParamCount() {
			t.Fatalf("config %q built a PDM of %d parameters from the tensors of one of %d", config, got, cfg.ParamCount())
		}
	})
}
