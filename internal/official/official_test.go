package official

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/safetensors"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/pth"
)

// io reads a case's inputs and PyTorch's outputs.
func io(t *testing.T, name string) map[string]*tensor.Dense {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tensor.Dense{}
	for _, ts := range f.Tensors {
		v, err := ts.Float64s()
		if err != nil {
			t.Fatal(err)
		}
		f32 := make([]float32, len(v))
		for i, x := range v {
			f32[i] = float32(x)
		}
		out[ts.Name] = tensor.New(tensor.WithShape(ts.Shape...), tensor.WithBacking(f32))
	}
	return out
}

// convert reads testdata/NAME.pth, converts it, saves the result and
// returns the saved file's path.
func convert(t *testing.T, name, kind string, o Options) (string, *Result) {
	t.Helper()
	f, err := pth.ReadFile(filepath.Join("testdata", name+".pth"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(kind, f, o)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".safetensors")
	if err := res.Save(path); err != nil {
		t.Fatal(err)
	}
	return path, res
}

// compare checks got against PyTorch's float64 values within tol
// (absolute, on values of order 1) and returns the largest difference.
func compare(t *testing.T, what string, got []float32, want *tensor.Dense, tol float64) float64 {
	t.Helper()
	w := want.Data().([]float32)
	if len(got) != len(w) {
		t.Fatalf("%s: %d values, PyTorch %d", what, len(got), len(w))
	}
	var worst float64
	for i := range w {
		d := math.Abs(float64(got[i]) - float64(w[i]))
		worst = max(worst, d)
		if !(d <= tol) {
			t.Fatalf("%s[%d] = %g, PyTorch %g", what, i, got[i], w[i])
		}
	}
	return worst
}

// TestPDMAgainstPyTorch: DegModel checkpoints with the official names
// (random weights and BatchNorm statistics; make_checkpoints.py), one with
// per-pixel z_n mixed with the clean LR through 3x3 convolutions (zip
// format) and one with z_n alone, 1x1 convolutions and a one-channel
// noise (legacy format), convert to pdmflow PDMs whose kernels and
// degraded images (inference BatchNorm) match PyTorch's for the same HR
// images and latents within 1e-5.
func TestPDMAgainstPyTorch(t *testing.T) {
	for _, c := range []struct {
		name, mode string
		conv, dim  int
	}{{"pdm_mixed", model.NoiseMixed, 3, 3}, {"pdm_zonly", model.NoiseZOnly, 1, 1}} {
		path, res := convert(t, c.name, KindPDM, Options{})
		p, err := model.LoadPDM(path)
		if err != nil {
			t.Fatal(err)
		}
		if p.Cfg.Noise.Mode != c.mode || p.Cfg.Noise.Conv != c.conv || p.Cfg.Kernel.Size != 7 || p.Cfg.Kernel.NB != 2 || p.Cfg.Noise.NB != 2 || p.Cfg.Scale != 4 {
			t.Errorf("%s: inferred config %+v", c.name, p.Cfg)
		}
		t.Logf("%s notes: %q", c.name, res.Notes)
		if c.dim == 1 && !strings.Contains(strings.Join(res.Notes, " "), "one output channel") {
			t.Errorf("%s: no note on the one-channel noise", c.name)
		}
		in := io(t, c.name)
		g := model.NewGraph(tensor.Float32)
		hr, zk, zn := in["hr"], in["zk"], in["zn"]
		out := p.Forward(g, g.Input("hr", hr.Shape()...), g.Input("zk", zk.Shape()...), g.Input("zn", zn.Shape()...), false)
		g.Keep(out.Kernel, out.Fake)
		if err := g.Err(); err != nil {
			t.Fatal(err)
		}
		if err := g.Run(map[string]*tensor.Dense{"hr": hr, "zk": zk, "zn": zn}); err != nil {
			t.Fatal(err)
		}
		dk := compare(t, c.name+" kernel", model.Float32s(out.Kernel), in["kernel"], 1e-5)
		dy := compare(t, c.name+" y", model.Float32s(out.Fake), in["y"], 1e-5)
		t.Logf("%s: kernel within %.2g, y within %.2g of PyTorch (float64)", c.name, dk, dy)
		g.Close()
	}
}

// TestDiscAgainstPyTorch: the official PatchGAN (model.0 ... model.11,
// 64-channel-style output of nf channels) converts with its stride and
// gives PyTorch's patch map within 1e-5.
func TestDiscAgainstPyTorch(t *testing.T) {
	path, _ := convert(t, "disc", KindDisc, Options{Stride: 2})
	d, err := model.LoadDiscriminator(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.Cfg != (model.DiscConfig{NF: 4, Out: 4, Stride: 2}) {
		t.Errorf("config %+v", d.Cfg)
	}
	in := io(t, "disc")
	g := model.NewGraph(tensor.Float32)
	defer g.Close()
	out := d.Forward(g, g.Input("x", in["x"].Shape()...))
	g.Keep(out)
	if err := g.Run(map[string]*tensor.Dense{"x": in["x"]}); err != nil {
		t.Fatal(err)
	}
	t.Logf("disc: within %.2g of PyTorch", compare(t, "disc", model.Float32s(out), in["out"], 1e-5))
}

// TestEDSRAgainstPyTorch: EDSR checkpoints (x4 and x3, residual scaling 1
// and 0.1) whose mean shifts were trained away from the DIV2K shifts
// convert, with the shifts folded into the head and tail, to pdmflow EDSRs
// whose SR images match PyTorch's within 1e-5 (values in [0, 1]).
func TestEDSRAgainstPyTorch(t *testing.T) {
	for _, c := range []struct {
		name     string
		scale    int
		resScale float64
	}{{"edsr_x4", 4, 1}, {"edsr_x3", 3, 0.1}} {
		path, res := convert(t, c.name, KindEDSR, Options{ResScale: c.resScale})
		e, err := model.LoadSR(path)
		if err != nil {
			t.Fatal(err)
		}
		if e.Cfg.Scale != c.scale || e.Cfg.NF != 8 || e.Cfg.NB != 2 || e.Cfg.ResScale != c.resScale {
			t.Errorf("%s: config %+v", c.name, e.Cfg)
		}
		if !strings.Contains(strings.Join(res.Notes, " "), "folded") {
			t.Errorf("%s: notes %q", c.name, res.Notes)
		}
		in := io(t, c.name)
		g := model.NewGraph(tensor.Float32)
		var bic *G.Node
		out := e.Forward(g, g.Input("lr", in["lr"].Shape()...), bic)
		g.Keep(out)
		if err := g.Run(map[string]*tensor.Dense{"lr": in["lr"]}); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: within %.2g of PyTorch", c.name, compare(t, c.name, model.Float32s(out), in["sr"], 1e-5))
		g.Close()
	}
}

// TestRRDBAgainstPyTorch: RRDBNet checkpoints (make_rrdb.py: BasicSR's
// names at x4, at x2 under Real-ESRGAN's "params_ema" key, and the x4
// network under the original ESRGAN code's names) convert to pdmflow RRDBs
// whose SR images match PyTorch's float64 outputs within 1e-5.
func TestRRDBAgainstPyTorch(t *testing.T) {
	for _, c := range []struct {
		name, io string
		scale    int
		prefix   string
	}{{"rrdb_x4", "rrdb_x4", 4, ""}, {"rrdb_x2", "rrdb_x2", 2, "params_ema"}, {"rrdb_x4_esrgan", "rrdb_x4", 4, ""}} {
		path, res := convert(t, c.name, KindRRDB, Options{Prefix: c.prefix})
		s, err := model.LoadSR(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := (model.SRConfig{Arch: "rrdb", Scale: c.scale, NF: 4, NB: 2, GC: 2}); s.Cfg != want {
			t.Errorf("%s: config %+v, want %+v", c.name, s.Cfg, want)
		}
		t.Logf("%s notes: %q", c.name, res.Notes)
		in := io(t, c.io)
		g := model.NewGraph(tensor.Float32)
		out := s.Forward(g, g.Input("lr", in["lr"].Shape()...), nil)
		g.Keep(out)
		if err := g.Run(map[string]*tensor.Dense{"lr": in["lr"]}); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: within %.2g of PyTorch", c.name, compare(t, c.name, model.Float32s(out), in["sr"], 1e-5))
		g.Close()
	}
}

// TestRefusals: a checkpoint of another network, a tensor no rule claims,
// a missing stride, a noise input that cannot be read without
// --noise-mode, and a prefix that selects nothing are errors that say so.
func TestRefusals(t *testing.T) {
	read := func(name string) *pth.File {
		f, err := pth.ReadFile(filepath.Join("testdata", name+".pth"))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	withExtra := read("disc")
	extra := withExtra.Tensors[0]
	extra.Name = "model.99.weight"
	withExtra.Tensors = append(withExtra.Tensors, extra)
	for _, c := range []struct {
		kind string
		f    *pth.File
		o    Options
		want string
	}{
		{KindPDM, read("edsr_x4"), Options{}, "not a DegModel checkpoint"},
		{KindEDSR, read("pdm_mixed"), Options{}, "not an EDSR checkpoint"},
		{KindDisc, read("disc"), Options{}, "stride"},
		{KindDisc, withExtra, Options{Stride: 1}, "model.99.weight of the checkpoint have no place"},
		{KindPDM, read("pdm_mixed"), Options{NoiseMode: model.NoiseContentOnly}, "content-only noise network takes the 3 channels"},
		{KindPDM, read("pdm_mixed"), Options{Prefix: "params"}, `under "params"`},
		{KindRRDB, read("disc"), Options{}, "not an RRDB checkpoint"},
		{KindRRDB, read("rrdb_x2"), Options{}, "not an RRDB checkpoint"}, // its tensors are under params_ema
		{"srcnn", read("disc"), Options{}, `kind "srcnn"`},
	} {
		_, err := Convert(c.kind, c.f, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.kind, err, c.want)
		}
	}
	// "module." (DataParallel) is stripped, a prefix selects a sub-dict.
	f := read("disc")
	for i := range f.Tensors {
		f.Tensors[i].Name = "params.module." + f.Tensors[i].Name
	}
	if _, err := Convert(KindDisc, f, Options{Stride: 1, Prefix: "params"}); err != nil {
		t.Errorf("params.module. names: %v", err)
	}
}

// TestRulePatterns: placeholders, index arithmetic, and names that a
// pattern must not match.
func TestRulePatterns(t *testing.T) {
	for _, c := range []struct {
		rule       Rule
		ours, want string
		ok         bool
	}{
		{Rule{Ours: "kernel.body.{n}.conv1.{p}", Theirs: "deg_kernel.deg_kernel.{n+3}.body.0.{p}"}, "kernel.body.12.conv1.running_mean", "deg_kernel.deg_kernel.15.body.0.running_mean", true},
		{Rule{Ours: "sr.up.{n}.{p}", Theirs: "tail.0.{n*2}.{p}"}, "sr.up.1.bias", "tail.0.2.bias", true},
		{Rule{Ours: "kernel.head.{p}", Theirs: "x.0.{p}"}, "kernel.head.bn.weight", "", false},
		{Rule{Ours: "sr.body.{n}.conv1.{p}", Theirs: "b"}, "sr.body.last.weight", "", false},
	} {
		cr, err := compile(c.rule)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := cr.theirs(c.ours)
		if err != nil || ok != c.ok || got != c.want {
			t.Errorf("%+v on %s: %q %v %v, want %q %v", c.rule, c.ours, got, ok, err, c.want, c.ok)
		}
	}
	if _, err := compile(Rule{Ours: "a.{n+1}", Theirs: "b"}); err == nil {
		t.Error("arithmetic in Ours accepted")
	}
}
