package trainer

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/model"
)

// tinyConfig is a config small enough for unit tests.
func tinyConfig() *Config {
	c, _ := Preset("cpu-small")
	c.Name = "tiny"
	c.Batch, c.HRCrop, c.Steps = 2, 24, 6
	c.PDM.Kernel = model.KernelConfig{Size: 7, NC: 4, NF: 8, NB: 1, Conv: 1, Init: "box"}
	c.PDM.Noise = model.NoiseConfig{Mode: model.NoiseMixed, NC: 2, NF: 4, NB: 1, Conv: 3}
	c.Disc = model.DiscConfig{NF: 4, Out: 2, Stride: 1}
	c.SR.NF, c.SR.NB = 4, 1
	c.LogEvery, c.SampleEvery, c.CheckpointEvery = 2, 3, 2
	return c
}

func testData(t *testing.T) (hr, lr string) {
	dir := t.TempDir()
	hr, lr = filepath.Join(dir, "hr"), filepath.Join(dir, "lr")
	testutil.WriteImages(t, hr, 2, 40, 36, 1)
	testutil.WriteImages(t, lr, 3, 12, 10, 2)
	return hr, lr
}

func runTrainer(t *testing.T, cfg *Config, hr, lr, out string) *Trainer {
	t.Helper()
	return runTrainerWith(t, cfg, Options{HRDir: hr, LRDir: lr, Out: out})
}

func runTrainerWith(t *testing.T, cfg *Config, opt Options) *Trainer {
	t.Helper()
	var buf bytes.Buffer
	opt.Log, opt.Progress = slog.New(slog.NewTextHandler(&buf, nil)), &buf
	tr, err := New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	tr.Close()
	return tr
}

func paramBits(ms []*model.Module) []uint32 {
	var out []uint32
	for _, m := range ms {
		for _, p := range m.Params() {
			for _, v := range p.Float32Data() {
				out = append(out, math.Float32bits(v))
			}
		}
	}
	return out
}

// TestResumeIsExact trains 6 steps in one go and 6 steps as 4 + a restart
// from the checkpoint + 2, in both regimes and in PDM-SRGAN (D2 and the
// perceptual loss; its checkpoint holds D2 and D2's optimizer), and
// requires bit-identical weights, BatchNorm statistics and losses.
func TestResumeIsExact(t *testing.T) {
	hr, lr := testData(t)
	for _, regime := range []string{Joint, TwoStage, "srgan"} {
		t.Run(regime, func(t *testing.T) {
			cfg := tinyConfig()
			cfg.Regime = regime
			cfg.Stage1Steps = 3
			if regime == "srgan" {
				cfg.Regime = Joint
				cfg.Disc2 = model.DiscConfig{NF: 4, Out: 2, Stride: 1}
				cfg.Loss.Percep, cfg.Loss.SRAdv = 0.05, 0.05
				cfg.VGG = vggFixture
			}
			whole := runTrainer(t, cfg, hr, lr, filepath.Join(t.TempDir(), "whole"))
			split := filepath.Join(t.TempDir(), "split")
			first := *cfg
			first.Steps = 4
			runTrainer(t, &first, hr, lr, split)
			resumed := runTrainer(t, cfg, hr, lr, split)
			if resumed.Step() != 6 {
				t.Fatalf("resumed run ended at step %d", resumed.Step())
			}
			a, b := paramBits(whole.modules()), paramBits(resumed.modules())
			if len(a) != len(b) || len(a) == 0 {
				t.Fatalf("%d vs %d parameters", len(a), len(b))
			}
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("parameter value %d differs after resuming", i)
				}
			}
			la, _ := os.ReadFile(filepath.Join(split, LogFile))
			if !bytes.Contains(la, []byte("\n6,")) {
				t.Errorf("log of the resumed run lacks step 6:\n%s", la)
			}
			if regime == "srgan" {
				w, err := model.ReadWeightsFile(filepath.Join(split, CheckpointFile), model.KindCheckpoint)
				if err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"disc2.conv0.weight", "optim.disc2.disc2.conv4.bias.v"} {
					if _, ok := w.File.Get(name); !ok {
						t.Errorf("the checkpoint has no %s", name)
					}
				}
				if w.File.Metadata["pdmflow.optim.disc2.steps"] != "6" {
					t.Errorf("D2's optimizer made %q updates, want 6", w.File.Metadata["pdmflow.optim.disc2.steps"])
				}
			}
		})
	}
}

// TestTrainWritesOutputs checks what a run leaves behind and that the
// weights it writes load into degrade and sr.
func TestTrainWritesOutputs(t *testing.T) {
	hr, lr := testData(t)
	out := filepath.Join(t.TempDir(), "out")
	runTrainer(t, tinyConfig(), hr, lr, out)
	for _, f := range []string{CheckpointFile, PDMFile, SRFile, KernelsFile, SamplesFile, LogFile, "config.yaml", "samples/kernels_000003.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	p, err := model.LoadPDM(filepath.Join(out, PDMFile))
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.Degrade(make([]float32, 3*20*20), 20, 20, rand.New(rand.NewPCG(1, 1)))
	if err != nil || d.W != 5 || d.H != 5 {
		t.Fatalf("degrade: %v %+v", err, d)
	}
	if _, err := model.LoadSR(filepath.Join(out, SRFile)); err != nil {
		t.Fatal(err)
	}
	// A run with a different config refuses to resume from this directory.
	other := tinyConfig()
	other.PDM.Kernel.NF = 6
	if _, err := New(other, Options{HRDir: hr, LRDir: lr, Out: out}); err == nil {
		t.Fatal("resumed a checkpoint of another config")
	}
}

func TestBicubicBaselineTrains(t *testing.T) {
	hr, _ := testData(t)
	cfg := tinyConfig()
	cfg.Degradation = DegradeBicubic
	out := filepath.Join(t.TempDir(), "bic")
	runTrainer(t, cfg, hr, "", out)
	if _, err := os.Stat(filepath.Join(out, PDMFile)); err == nil {
		t.Error("a bicubic run wrote PDM weights")
	}
	if _, err := os.Stat(filepath.Join(out, SRFile)); err != nil {
		t.Error(err)
	}
}

func TestBadData(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyConfig()
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(empty, 0o755)
	if _, err := New(cfg, Options{HRDir: empty, LRDir: empty, Out: filepath.Join(dir, "o")}); err == nil {
		t.Error("empty directory accepted")
	}
	tiny := filepath.Join(dir, "tiny")
	testutil.WriteImages(t, tiny, 2, 8, 8, 3)
	if _, err := New(cfg, Options{HRDir: tiny, LRDir: tiny, Out: filepath.Join(dir, "o")}); err == nil {
		t.Error("images smaller than the crop accepted")
	}
	bad := filepath.Join(dir, "bad")
	testutil.WriteImages(t, bad, 1, 40, 40, 4)
	os.WriteFile(filepath.Join(bad, "broken.png"), []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	if _, err := New(cfg, Options{HRDir: bad, LRDir: bad, Out: filepath.Join(dir, "o")}); err == nil {
		t.Error("corrupt image accepted")
	}
}

// TestInitSR: --init-sr starts the SR network from the given weights (and
// run.json says so), refuses weights of another architecture naming the
// setting, and is ignored when the run resumes from its checkpoint.
func TestInitSR(t *testing.T) {
	hr, lr := testData(t)
	dir := t.TempDir()
	cfg := tinyConfig()
	cfg.Steps = 2
	pre, err := model.NewSR(cfg.SR, tensor.Float32, 99)
	if err != nil {
		t.Fatal(err)
	}
	init := filepath.Join(dir, "pretrained.safetensors")
	if err := model.SaveSR(init, pre); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	tr, err := New(cfg, Options{HRDir: hr, LRDir: lr, Out: out, InitSR: init})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(paramBits([]*model.Module{tr.SR.M}), paramBits([]*model.Module{pre.M})) {
		t.Error("the SR network does not start from --init-sr's weights")
	}
	fresh, err := New(cfg, Options{HRDir: hr, LRDir: lr, Out: filepath.Join(dir, "fresh")})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(paramBits([]*model.Module{fresh.SR.M}), paramBits([]*model.Module{pre.M})) {
		t.Error("a run without --init-sr starts from the same weights")
	}
	fresh.Close()
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	trained := paramBits([]*model.Module{tr.SR.M})
	tr.Close()
	rec, err := os.ReadFile(filepath.Join(out, RunFile))
	if err != nil || !bytes.Contains(rec, []byte(`"init_sr": "`+init+`"`)) {
		t.Errorf("run.json does not record --init-sr: %s %v", rec, err)
	}
	// Resuming ignores --init-sr: the SR network is the checkpoint's.
	again, err := New(cfg, Options{HRDir: hr, LRDir: lr, Out: out, InitSR: init})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(paramBits([]*model.Module{again.SR.M}), trained) {
		t.Error("resuming with --init-sr replaced the checkpoint's SR weights")
	}
	again.Close()
	// Weights of another architecture are refused, naming it.
	rrdb, _ := model.NewSR(model.SRConfig{Arch: "rrdb", Scale: 4, NF: 4, NB: 1, GC: 2}, tensor.Float32, 1)
	other := filepath.Join(dir, "rrdb.safetensors")
	if err := model.SaveSR(other, rrdb); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Options{HRDir: hr, LRDir: lr, Out: filepath.Join(dir, "x"), InitSR: other}); err == nil || !strings.Contains(err.Error(), "sr.arch: file rrdb, run edsr") {
		t.Errorf("RRDB weights for an EDSR run: %v", err)
	}
}
