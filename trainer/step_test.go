package trainer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/model"
)

// The training step itself, for a shrunken copy of every preset (issue 17
// item 8): the order of pdm-spec §5, the discriminator on the pre-update
// fake, the SR step leaving PDM alone, PDM-SRGAN's terms reaching SR, finite
// losses, and each preset's step count and learning-rate schedule.

// vggFixture is the reduced random-weight VGG19 of package model's tests.
var vggFixture = filepath.Join("..", "model", "testdata", "vgg19_small.pth")

// presetSchedule is what each preset says about its length and schedule,
// as its comments state them (2e5 steps halving at 50k, 100k and 150k;
// the official code's 200k steps per stage, halving at 50k, 100k and 150k;
// cpu-small's own): the test fails if a preset changes without this table.
var presetSchedule = map[string]struct {
	steps, stage1 int
	milestones    []int
}{
	"2017Track2":                {200000, 0, []int{50000, 100000, 150000}},
	"2018Track2":                {200000, 0, []int{50000, 100000, 150000}},
	"2018Track4":                {200000, 0, []int{50000, 100000, 150000}},
	"2020Track1":                {200000, 0, []int{50000, 100000, 150000}},
	"2020Track2":                {200000, 0, []int{50000, 100000, 150000}},
	"srgan":                     {200000, 0, []int{50000, 100000, 150000}},
	"2017Track2-official":       {200000, 0, []int{50000, 100000, 150000}},
	"2018Track2-official":       {400000, 200000, []int{50000, 100000, 150000, 250000, 300000, 350000}},
	"2018Track4-official":       {400000, 200000, []int{50000, 100000, 150000, 250000, 300000, 350000}},
	"2020Track1-official":       {200000, 0, []int{50000, 100000, 150000}},
	"2020Track2-official":       {400000, 200000, []int{50000, 100000, 150000, 250000, 300000, 350000}},
	"2020Track1-srgan-official": {400000, 200000, []int{50000, 100000, 150000}},
	"cpu-small":                 {1500, 0, []int{1000}},
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// shrink returns preset name at test size: the step count, the first
// stage and the milestones divided by their greatest common divisor (the
// same schedule, a few steps long), networks of a few channels, batch 2,
// HR crops of 24. Regime, losses and their weights, kernel size, noise
// mode, strides and the rest stay the preset's.
func shrink(t *testing.T, name string) *Config {
	t.Helper()
	c, err := Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	g := c.Steps
	if c.Regime == TwoStage {
		g = gcd(g, c.Stage1Steps)
	}
	for _, m := range c.Optim.Milestones {
		g = gcd(g, m)
	}
	c.Steps /= g
	c.Stage1Steps /= g
	c.Optim.Milestones = slices.Clone(c.Optim.Milestones)
	for i := range c.Optim.Milestones {
		c.Optim.Milestones[i] /= g
	}
	if c.Steps > 10 {
		t.Fatalf("%s: %d steps after shrinking by %d", name, c.Steps, g)
	}
	c.Batch, c.HRCrop = 2, 24
	c.PDM.Kernel.NF, c.PDM.Kernel.NB = 8, 1
	if c.PDM.Noise.Mode != model.NoiseOff {
		c.PDM.Noise.NF, c.PDM.Noise.NB = 4, 1
	}
	c.Disc.NF, c.Disc.Out = 4, 4
	if c.HasDisc2() {
		c.Disc2.NF, c.Disc2.Out = 4, 4
	}
	c.SR.NF, c.SR.NB = 4, 1
	if c.SR.Arch == "rrdb" {
		c.SR.GC = 2
	}
	c.LogEvery, c.SampleEvery, c.CheckpointEvery = 0, 0, 0
	if err := c.Validate(); err != nil {
		t.Fatalf("%s shrunk: %v", name, err)
	}
	return c
}

func newQuiet(t *testing.T, c *Config, hr, lr string, opt Options) *Trainer {
	t.Helper()
	opt.HRDir, opt.LRDir = hr, lr
	if opt.Out == "" {
		opt.Out = t.TempDir()
	}
	opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if c.Loss.Percep > 0 {
		opt.VGG = vggFixture
	}
	tr, err := New(c, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

// snapshot copies the values of every parameter (weights and buffers) of
// modules, with which are learnable.
type snapshot struct {
	names     []string
	bits      [][]uint32
	learnable []bool
}

func snap(ms ...*model.Module) snapshot {
	var s snapshot
	for _, m := range ms {
		for _, p := range m.Params() {
			b := make([]uint32, 0, p.Value.Shape().TotalSize())
			for _, v := range p.Float32Data() {
				b = append(b, math.Float32bits(v))
			}
			s.names = append(s.names, p.Name)
			s.bits = append(s.bits, b)
			s.learnable = append(s.learnable, p.Learnable)
		}
	}
	return s
}

// changed lists the parameters whose values differ between a and b (of
// the same modules); learnableOnly skips buffers.
func changed(a, b snapshot, learnableOnly bool) []string {
	var out []string
	for i := range a.names {
		if learnableOnly && !a.learnable[i] {
			continue
		}
		if !slices.Equal(a.bits[i], b.bits[i]) {
			out = append(out, a.names[i])
		}
	}
	return out
}

func cloneFeeds(f map[string]*tensor.Dense) map[string]*tensor.Dense {
	out := map[string]*tensor.Dense{}
	for k, v := range f {
		if v != nil {
			out[k] = v.Clone().(*tensor.Dense)
		}
	}
	return out
}

// pdmFake runs PDM's forward pass in training mode (as the PDM step does)
// with the weights of s on the PDM step's feeds.
func pdmFake(t *testing.T, cfg model.PDMConfig, s snapshot, feeds map[string]*tensor.Dense) []float32 {
	t.Helper()
	p, err := model.NewPDM(cfg, tensor.Float32, 0)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, m := range p.Modules() {
		for _, q := range m.Params() {
			if q.Name != s.names[i] {
				t.Fatalf("snapshot parameter %s against %s", s.names[i], q.Name)
			}
			d := q.Value.Data().([]float32)
			for j, b := range s.bits[i] {
				d[j] = math.Float32frombits(b)
			}
			i++
		}
	}
	g := model.NewGraph(tensor.Float32)
	defer g.Close()
	var zn *G.Node
	if v, ok := feeds["zn"]; ok {
		zn = g.Input("zn", v.Shape()...)
	}
	out := p.Forward(g, g.Input("hr", feeds["hr"].Shape()...), g.Input("zk", feeds["zk"].Shape()...), zn, true)
	g.Keep(out.Fake)
	if err := g.Run(feeds); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), model.Float32s(out.Fake)...)
}

// srOutput runs the SR network with the weights of s on the SR step's
// feeds (lr, and bic for a residual network).
func srOutput(t *testing.T, cfg model.SRConfig, s snapshot, feeds map[string]*tensor.Dense) []float32 {
	t.Helper()
	net, err := model.NewSR(cfg, tensor.Float32, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range net.M.Params() {
		d := q.Value.Data().([]float32)
		for j, b := range s.bits[i] {
			d[j] = math.Float32frombits(b)
		}
	}
	g := model.NewGraph(tensor.Float32)
	defer g.Close()
	f := map[string]*tensor.Dense{"lr": feeds["lr"]}
	var bic *G.Node
	if v, ok := feeds["bic"]; ok {
		bic, f["bic"] = g.Input("bic", v.Shape()...), v
	}
	out := net.Forward(g, g.Input("lr", feeds["lr"].Shape()...), bic)
	g.Keep(out)
	if err := g.Run(f); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), model.Float32s(out)...)
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// expectedStages is the order of pdm-spec §5 for step s of c: the PDM
// step and its update, the D1 step on the same fake and its update, the
// SR step on that fake (or on a rerun of the frozen PDM in a two-stage
// run's second stage, or on the moving average's) and its update, then
// D2's step and update. "run:" is a graph run, "update:" an optimizer step.
func expectedStages(c *Config, s int) []string {
	var out []string
	pdm := c.Regime == Joint || s < c.Stage1Steps
	sr := c.Regime == Joint || s >= c.Stage1Steps
	if pdm {
		out = append(out, "run:pdm", "update:pdm", "run:disc", "update:disc")
	}
	if !sr {
		return out
	}
	switch {
	case !pdm:
		out = append(out, "run:fake")
	case c.PDMEMA > 0:
		out = append(out, "run:avg")
	}
	out = append(out, "run:sr", "update:sr")
	if c.HasDisc2() {
		out = append(out, "run:disc2", "update:disc2")
	}
	return out
}

// TestTrainingStepPerPreset runs every step of a shrunken copy of every
// preset and checks, at each step: the graphs run and the optimizers step
// in pdm-spec §5's order for the preset's regime; the fake LR the
// discriminator trains on is bit for bit the one the PDM's weights before
// their update make (recomputed from a snapshot, and not the one the
// updated weights make); the SR step (from the SR stage's first graph to
// the end of the step, D2 included) leaves PDM's weights and D1's
// bit-unchanged while it changes SR's; D2 trains on the SR step's HR
// against the SR image of the weights before the SR update (recomputed);
// every loss is finite; each
// optimizer steps at the preset's learning rate for its own update count
// (Adam's lr, halved by gamma at each milestone reached), and the presets
// have the step counts and milestones their comments state.
func TestTrainingStepPerPreset(t *testing.T) {
	hr, lr := testData(t)
	for _, name := range Presets() {
		t.Run(name, func(t *testing.T) {
			full, err := Preset(name)
			if err != nil {
				t.Fatal(err)
			}
			want, ok := presetSchedule[name]
			if !ok {
				t.Fatalf("preset %s has no expected schedule in this test", name)
			}
			if full.Steps != want.steps || (full.Regime == TwoStage) != (want.stage1 > 0) || (want.stage1 > 0 && full.Stage1Steps != want.stage1) ||
				!slices.Equal(full.Optim.Milestones, want.milestones) || full.Optim.Gamma != 0.5 || full.Optim.LR != 2e-4 {
				t.Errorf("preset %s: steps %d, stage 1 %d, milestones %v, gamma %g, lr %g; want %d, %d, %v, 0.5, 2e-4",
					name, full.Steps, full.Stage1Steps, full.Optim.Milestones, full.Optim.Gamma, full.Optim.LR, want.steps, want.stage1, want.milestones)
			}
			c := shrink(t, name)
			tr := newQuiet(t, c, hr, lr, Options{})
			if tr.PDM == nil {
				t.Fatalf("%s trains no PDM", name)
			}
			d1lr := c.Optim.LR
			if c.DiscLRScale > 0 {
				d1lr *= c.DiscLRScale
			}
			rateFor := map[string]float64{"pdm": c.Optim.LR, "disc": d1lr, "sr": c.Optim.LR, "disc2": c.Optim.LR}
			updates := map[string]int{} // updates each optimizer has made
			var (
				stages                    []string
				pdmBefore, srStart, srPre snapshot
				pdmFeeds, discFeeds       map[string]*tensor.Dense
				srFeeds, d2Feeds          map[string]*tensor.Dense
				srStarted, fakeRerun      bool
				problems                  []string
			)
			pdmMods := func() []*model.Module {
				ms := append([]*model.Module{}, tr.PDM.Modules()...)
				ms = append(ms, tr.Disc.M)
				if tr.PDMAvg != nil {
					ms = append(ms, tr.PDMAvg.Modules()...)
				}
				return ms
			}
			tr.probe = &stepProbe{
				run: func(stage string, feeds map[string]*tensor.Dense) {
					stages = append(stages, "run:"+stage)
					switch stage {
					case "pdm":
						pdmBefore = snap(tr.PDM.Modules()...)
						pdmFeeds = cloneFeeds(feeds)
					case "disc":
						discFeeds = cloneFeeds(feeds)
					case "sr":
						srPre, srFeeds = snap(tr.SR.M), cloneFeeds(feeds)
					case "disc2":
						d2Feeds = cloneFeeds(feeds)
					}
					if (stage == "fake" || stage == "avg" || stage == "sr") && !srStarted {
						srStarted, fakeRerun = true, stage == "fake"
						srStart = snap(pdmMods()...)
					}
				},
				update: func(stage string, o *model.Adam, gs []*tensor.Dense) {
					stages = append(stages, "update:"+stage)
					k := updates[stage]
					if o.Steps != k {
						problems = append(problems, fmt.Sprintf("%s's optimizer has made %d updates, this run %d", stage, o.Steps, k))
					}
					rate := rateFor[stage]
					for _, m := range c.Optim.Milestones {
						if k >= m {
							rate *= 0.5
						}
					}
					if got := o.Cfg.RateAt(o.Steps); math.Abs(got-rate) > 1e-15 {
						problems = append(problems, fmt.Sprintf("%s's update %d at rate %g, the preset's schedule %g", stage, k, got, rate))
					}
					updates[stage]++
				},
			}
			for s := 0; s < c.Steps; s++ {
				stages, pdmFeeds, discFeeds, srFeeds, d2Feeds, srStarted, problems = nil, nil, nil, nil, nil, false, nil
				srBefore := snap(tr.SR.M)
				tr.acc = lossAcc{}
				if err := tr.BenchStep(context.Background()); err != nil {
					t.Fatalf("step %d: %v", s, err)
				}
				for _, p := range problems {
					t.Errorf("step %d: %s", s, p)
				}
				if w := expectedStages(c, s); !slices.Equal(stages, w) {
					t.Errorf("step %d: ran %v, want %v", s, stages, w)
				}
				for k, v := range tr.acc.sum {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Errorf("step %d: loss %s is %v", s, k, v)
					}
				}
				if pdmFeeds != nil {
					// D1 trained on the fake LR of the weights before the PDM
					// update, bit for bit, not on the updated weights'.
					fake := discFeeds["fake"].Data().([]float32)
					if !sameBits(pdmFake(t, c.PDM, pdmBefore, pdmFeeds), fake) {
						t.Errorf("step %d: the discriminator's fake LR is not the one the PDM made before its update", s)
					}
					if sameBits(pdmFake(t, c.PDM, snap(tr.PDM.Modules()...), pdmFeeds), fake) {
						t.Errorf("step %d: the updated PDM makes the same fake LR: the check above cannot tell", s)
					}
				}
				if d2Feeds != nil {
					// D2 trained on real HR against the SR image of the weights
					// before the SR update, detached.
					fake := d2Feeds["fake"].Data().([]float32)
					if !sameBits(srOutput(t, c.SR, srPre, srFeeds), fake) {
						t.Errorf("step %d: D2's fake is not the SR image of the weights before the SR update", s)
					}
					if sameBits(srOutput(t, c.SR, snap(tr.SR.M), srFeeds), fake) {
						t.Errorf("step %d: the updated SR network makes the same image: the check above cannot tell", s)
					}
					if !sameBits(d2Feeds["real"].Data().([]float32), srFeeds["hr"].Data().([]float32)) {
						t.Errorf("step %d: D2's real images are not the SR step's HR target", s)
					}
				}
				if srStarted {
					after := snap(pdmMods()...)
					if d := changed(srStart, after, true); len(d) > 0 {
						t.Errorf("step %d: the SR step changed PDM or D1 weights %v", s, d)
					}
					if d := changed(srStart, after, false); len(d) > 0 && !fakeRerun {
						t.Errorf("step %d: the SR step changed PDM or D1 buffers %v", s, d)
					}
					if len(changed(srBefore, snap(tr.SR.M), true)) == 0 {
						t.Errorf("step %d: the SR step left SR's weights unchanged", s)
					}
				}
			}
			if want := map[bool]int{true: c.Stage1Steps, false: c.Steps}[c.Regime == TwoStage]; updates["pdm"] != want {
				t.Errorf("PDM updated %d times in %d steps, want %d", updates["pdm"], c.Steps, want)
			}
			t.Logf("%s at %d steps: updates %v", name, c.Steps, updates)
		})
	}
}

// srGrads runs a shrunken copy of preset name, modified by edit, until its
// SR network's first update and returns the gradients of that update.
func srGrads(t *testing.T, name, hr, lr string, edit func(c *Config)) [][]float32 {
	t.Helper()
	c := shrink(t, name)
	edit(c)
	tr := newQuiet(t, c, hr, lr, Options{})
	var out [][]float32
	tr.probe = &stepProbe{update: func(stage string, o *model.Adam, gs []*tensor.Dense) {
		if stage != "sr" || out != nil {
			return
		}
		for _, g := range gs {
			out = append(out, slices.Clone(g.Data().([]float32)))
		}
	}}
	for s := 0; out == nil && s < c.Steps; s++ {
		if err := tr.BenchStep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if out == nil {
		t.Fatalf("%s: the SR network never updated", name)
	}
	return out
}

// maxDiff is the largest difference between two sets of gradients, and
// the largest gradient of a.
func maxDiff(a, b [][]float32) (diff, scale float64) {
	for i := range a {
		for j := range a[i] {
			diff = max(diff, math.Abs(float64(a[i][j]-b[i][j])))
			scale = max(scale, math.Abs(float64(a[i][j])))
		}
	}
	return diff, scale
}

// TestSRGANTermsReachSR: in every PDM-SRGAN preset (a shrunken copy),
// the perceptual and the adversarial terms each change the gradient of the
// SR network's first update: the same run without the term (same weights,
// data and latents) gives another gradient. With the official code's
// detached perceptual loss the first comparison would find none.
func TestSRGANTermsReachSR(t *testing.T) {
	hr, lr := testData(t)
	n := 0
	for _, name := range Presets() {
		c, _ := Preset(name)
		if c.Loss.Percep == 0 && c.Loss.SRAdv == 0 {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			if c.Loss.Percep == 0 || c.Loss.SRAdv == 0 {
				t.Fatalf("%s has only one of the PDM-SRGAN terms (percep %g, sr_adv %g)", name, c.Loss.Percep, c.Loss.SRAdv)
			}
			all := srGrads(t, name, hr, lr, func(*Config) {})
			noPercep := srGrads(t, name, hr, lr, func(c *Config) { c.Loss.Percep = 0 })
			noAdv := srGrads(t, name, hr, lr, func(c *Config) { c.Loss.SRAdv, c.Disc2 = 0, model.DiscConfig{} })
			for _, x := range []struct {
				term  string
				other [][]float32
			}{{"perceptual", noPercep}, {"adversarial", noAdv}} {
				d, s := maxDiff(all, x.other)
				if !(d > 1e-6*s) || d == 0 {
					t.Errorf("the %s term does not reach SR: its gradient differs by %g without it (largest gradient %g)", x.term, d, s)
				}
				t.Logf("%s term: SR's gradient differs by up to %.3g (largest %.3g)", x.term, d, s)
			}
		})
	}
	if n < 2 {
		t.Errorf("%d PDM-SRGAN presets, want 2020Track1-srgan-official and srgan", n)
	}
}

// TestSRGANRefusals: PDM-SRGAN settings that cannot work are refused with
// what is missing.
func TestSRGANRefusals(t *testing.T) {
	hr, lr := testData(t)
	c := shrink(t, "srgan")
	if _, err := New(c, Options{HRDir: hr, LRDir: lr, Out: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "needs VGG19 weights: --vgg FILE") {
		t.Errorf("no VGG weights: %v", err)
	}
	if _, err := New(c, Options{HRDir: hr, LRDir: lr, Out: t.TempDir(), VGG: filepath.Join("..", "internal", "official", "testdata", "disc.pth")}); err == nil || !strings.Contains(err.Error(), "model.0.weight is not part of VGG19") {
		t.Errorf("other weights as VGG: %v", err)
	}
	d := *c
	d.Disc2 = model.DiscConfig{}
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "loss.sr_adv 0.05 needs disc2") {
		t.Errorf("sr_adv without disc2: %v", err)
	}
	d = *c
	d.Loss.SRAdv = 0
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "disc2 is set but loss.sr_adv is 0") {
		t.Errorf("disc2 without sr_adv: %v", err)
	}
}
