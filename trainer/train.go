// Package trainer trains PDM and the SR network as in the paper's joint and
// two-stage regimes (pdm-spec §5): data sampling, the PDM, discriminator and
// SR steps with their optimizers, checkpoints that resume exactly, progress
// lines, and pictures of the learned kernels and of fake against real LR.
package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/internal/progress"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
)

// Options are the inputs of a run besides its config.
type Options struct {
	HRDir    string // high-resolution images (x_ref sources)
	LRDir    string // real low-resolution images (the target domain); unused for bicubic runs
	Out      string // output directory
	Log      *slog.Logger
	Progress io.Writer // progress lines (nil: none)
	// Stream, when set, takes the SR step's pairs (and the PDM step's HR
	// crops) from the pair stream instead of HRDir.
	Stream *StreamOptions
}

// Trainer runs one training job.
type Trainer struct {
	cfg  *Config
	opt  Options
	log  *slog.Logger
	hr   *dataset.Dataset
	real *dataset.Dataset

	PDM *model.PDM
	// PDMAvg is the moving average of PDM's weights when the config asks
	// for one (nil otherwise); see OutPDM.
	PDMAvg *model.PDM
	ema    *model.EMA
	Disc   *model.Discriminator
	SR     *model.EDSR

	optPDM, optD, optSR *model.Adam

	gPDM, gD, gSR, gFake, gAvg *model.Graph
	n                          nodes

	step int // steps completed

	// Per-step buffers, reused.
	hrBuf, realBuf, fakeBuf, lrBuf, bicBuf []float32

	acc   lossAcc
	meter *progress.Meter
	csv   *os.File

	// Streaming (Options.Stream).
	m              *metrics.Trainer
	cons           *consumer.Consumer
	consStop       context.CancelFunc
	consDone       chan struct{}
	streamRestored consumer.State
	published      int // step of the last weights publish (-1: none yet)
	publishRetry   bool
	publishNext    time.Time
	publishBackoff time.Duration
}

// nodes are the graph nodes the loop reads.
type nodes struct {
	gAdv, gNoise, fake, kern, noise *G.Node
	kCenter                         *G.Node
	dLoss, dReal, dFake             *G.Node
	srLoss, sr                      *G.Node
	fakeOnly                        *G.Node
	avgFake                         *G.Node
}

// New loads the data, builds the networks and, when out holds a checkpoint
// of the same config, restores it.
func New(cfg *Config, opt Options) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	t := &Trainer{cfg: cfg, opt: opt, log: opt.Log, published: -1, m: metrics.NewTrainer(nil)}
	var err error
	if opt.Stream == nil {
		if t.hr, err = dataset.Load(opt.HRDir, cfg.HRCrop, opt.Log); err != nil {
			return nil, err
		}
	}
	if cfg.TrainsPDM() {
		if opt.LRDir == "" {
			return nil, errors.New("trainer: a PDM run needs real LR images (--lr)")
		}
		if t.real, err = dataset.Load(opt.LRDir, cfg.LRCrop(), opt.Log); err != nil {
			return nil, err
		}
	}
	seed := cfg.Seed
	if cfg.TrainsPDM() {
		if t.PDM, err = model.NewPDM(cfg.PDM, tensor.Float32, seed+1); err != nil {
			return nil, err
		}
		if t.Disc, err = model.NewDiscriminator(cfg.Disc, tensor.Float32, seed+2); err != nil {
			return nil, err
		}
		if t.optPDM, err = model.NewAdam(cfg.Optim, t.PDM.Modules()...); err != nil {
			return nil, err
		}
		dopt := cfg.Optim
		if cfg.DiscLRScale > 0 {
			dopt.LR *= cfg.DiscLRScale
		}
		if t.optD, err = model.NewAdam(dopt, t.Disc.M); err != nil {
			return nil, err
		}
		if cfg.PDMEMA > 0 {
			if t.PDMAvg, err = model.NewPDM(cfg.PDM, tensor.Float32, seed+1); err != nil {
				return nil, err
			}
			if t.ema, err = model.NewEMA(cfg.PDMEMA, t.PDM.Modules(), t.PDMAvg.Modules()); err != nil {
				return nil, err
			}
		}
	}
	if t.SR, err = model.NewEDSR(cfg.SR, tensor.Float32, seed+3); err != nil {
		return nil, err
	}
	if t.optSR, err = model.NewAdam(cfg.Optim, t.SR.M); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(opt.Out, "samples"), 0o755); err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	if err := t.restore(); err != nil {
		return nil, err
	}
	if err := t.build(); err != nil {
		return nil, err
	}
	return t, nil
}

// Step is the number of steps completed.
func (t *Trainer) Step() int { return t.step }

// OutPDM is the PDM the run hands on: to the SR step's pairs, to producers,
// to pdm.safetensors and the kernel pictures. It is the moving average
// when the config keeps one, the trained weights otherwise.
func (t *Trainer) OutPDM() *model.PDM {
	if t.PDMAvg != nil {
		return t.PDMAvg
	}
	return t.PDM
}

func (t *Trainer) modules() []*model.Module {
	var ms []*model.Module
	if t.PDM != nil {
		ms = append(ms, t.PDM.Modules()...)
		ms = append(ms, t.Disc.M)
	}
	return append(ms, t.SR.M)
}

// build makes the graphs of the steps this run needs.
func (t *Trainer) build() error {
	c := t.cfg
	b, s, hs := c.Batch, c.HRCrop, c.LRCrop()
	t.hrBuf = make([]float32, b*3*s*s)
	t.fakeBuf = make([]float32, b*3*hs*hs)
	t.lrBuf = make([]float32, b*3*hs*hs)
	if c.SR.Residual {
		t.bicBuf = make([]float32, b*3*s*s)
	}
	if c.TrainsPDM() {
		t.realBuf = make([]float32, b*3*hs*hs)
		zk, zn := t.PDM.LatentShapes(b, hs, hs)
		// PDM step: the generator loss with the discriminator frozen.
		g := model.NewGraph(tensor.Float32)
		g.Train(t.PDM.Modules()...)
		var znN *G.Node
		if zn != nil {
			znN = g.Input("zn", zn...)
		}
		out := t.PDM.Forward(g, g.Input("hr", b, 3, s, s), g.Input("zk", zk...), znN, true)
		t.n.gAdv = g.MeanSquare(t.Disc.Forward(g, out.Fake), 1, c.Loss.Adv)
		loss := t.n.gAdv
		if out.Noise != nil {
			t.n.gNoise = g.MeanSquare(out.Noise, 0, c.Loss.NoiseReg)
			loss = g.Sum(loss, t.n.gNoise)
		}
		if c.Loss.KernelCenter > 0 {
			ks := c.PDM.Kernel.Size
			t.n.kCenter = g.KernelCentroid(out.Kernel, ks, float64(ks/2)+float64(c.Scale()-1)/2, c.Loss.KernelCenter)
			loss = g.Sum(loss, t.n.kCenter)
		}
		t.n.fake, t.n.kern, t.n.noise = out.Fake, out.Kernel, out.Noise
		g.Keep(out.Fake, out.Kernel, out.Noise) // read after the step
		g.Backward(loss)
		if err := g.Err(); err != nil {
			return fmt.Errorf("trainer: PDM step graph: %w", err)
		}
		t.gPDM = g
		// Discriminator step on real LR and the (detached) fake LR.
		g = model.NewGraph(tensor.Float32)
		g.Train(t.Disc.M)
		t.n.dReal = g.MeanSquare(t.Disc.Forward(g, g.Input("real", b, 3, hs, hs)), 1, 0.5*c.Loss.Adv)
		t.n.dFake = g.MeanSquare(t.Disc.Forward(g, g.Input("fake", b, 3, hs, hs)), 0, 0.5*c.Loss.Adv)
		t.n.dLoss = g.Sum(t.n.dReal, t.n.dFake)
		g.Backward(t.n.dLoss)
		if err := g.Err(); err != nil {
			return fmt.Errorf("trainer: discriminator step graph: %w", err)
		}
		t.gD = g
		if t.PDMAvg != nil && t.opt.Stream == nil {
			// The averaged PDM's degradation of the same batch and latents,
			// with inference BatchNorm as producers run it: the SR step's
			// input.
			g = model.NewGraph(tensor.Float32)
			var znN *G.Node
			if zn != nil {
				znN = g.Input("zn", zn...)
			}
			t.n.avgFake = t.PDMAvg.Forward(g, g.Input("hr", b, 3, s, s), g.Input("zk", zk...), znN, false).Fake
			g.Keep(t.n.avgFake)
			if err := g.Err(); err != nil {
				return fmt.Errorf("trainer: averaged PDM graph: %w", err)
			}
			t.gAvg = g
		}
		if c.Regime == TwoStage {
			// Second stage: PDM forward only (BatchNorm in train mode, as
			// the official code keeps netDeg in train mode).
			g = model.NewGraph(tensor.Float32)
			var znN *G.Node
			if zn != nil {
				znN = g.Input("zn", zn...)
			}
			t.n.fakeOnly = t.PDM.Forward(g, g.Input("hr", b, 3, s, s), g.Input("zk", zk...), znN, true).Fake
			g.Keep(t.n.fakeOnly)
			if err := g.Err(); err != nil {
				return fmt.Errorf("trainer: PDM forward graph: %w", err)
			}
			t.gFake = g
		}
	}
	g := model.NewGraph(tensor.Float32)
	g.Train(t.SR.M)
	var bic *G.Node
	if c.SR.Residual {
		bic = g.Input("bic", b, 3, s, s)
	}
	t.n.sr = t.SR.Forward(g, g.Input("lr", b, 3, hs, hs), bic)
	t.n.srLoss = g.MeanAbsDiff(t.n.sr, g.Input("hr", b, 3, s, s), c.Loss.L1)
	g.Backward(t.n.srLoss)
	if err := g.Err(); err != nil {
		return fmt.Errorf("trainer: SR step graph: %w", err)
	}
	t.gSR = g
	// The step's graphs run one after another: they share one arena, so
	// each reuses the buffers the others have finished with.
	for _, o := range []*model.Graph{t.gPDM, t.gD, t.gAvg, t.gFake} {
		if o != nil {
			o.ShareArena(t.gSR)
		}
	}
	return nil
}

// Close releases the graphs and the log file.
func (t *Trainer) Close() {
	for _, g := range []*model.Graph{t.gPDM, t.gD, t.gSR, t.gFake, t.gAvg} {
		if g != nil {
			g.Close()
		}
	}
	if t.csv != nil {
		t.csv.Close()
	}
}

func dense(shape []int, d []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
}

// stepRand is the randomness of one step: a generator keyed by the run's
// seed and the step number, so a resumed run draws what the uninterrupted
// run would have drawn.
func (t *Trainer) stepRand(step int) *rand.Rand {
	return rand.New(rand.NewPCG(t.cfg.Seed^0x70646d666c6f77, uint64(step)))
}

func grads(g *model.Graph, o *model.Adam) []*tensor.Dense {
	gs := make([]*tensor.Dense, len(o.Params()))
	for i, p := range o.Params() {
		gs[i] = g.Grad(p)
	}
	return gs
}

// trainStep runs one step of pdm-spec §5.
func (t *Trainer) trainStep(ctx context.Context) error {
	c := t.cfg
	step := t.step
	r := t.stepRand(step)
	b, s, hs := c.Batch, c.HRCrop, c.LRCrop()
	var streamed []consumer.Entry
	if t.cons != nil {
		var err error
		if streamed, err = t.streamBatch(ctx); err != nil {
			return err
		}
	} else {
		for i := 0; i < b; i++ {
			t.hr.Sample(r, s, t.hrBuf[i*3*s*s:(i+1)*3*s*s])
		}
	}
	hr := dense([]int{b, 3, s, s}, t.hrBuf)
	var zk, zn *tensor.Dense
	if c.TrainsPDM() {
		for i := 0; i < b; i++ {
			t.real.Sample(r, hs, t.realBuf[i*3*hs*hs:(i+1)*3*hs*hs])
		}
		zk, zn = t.PDM.SampleLatents(r, tensor.Float32, b, hs, hs)
	}
	feedsPDM := map[string]*tensor.Dense{"hr": hr, "zk": zk}
	if zn != nil {
		feedsPDM["zn"] = zn
	}
	if c.TrainsPDMAt(step) {
		// 1. PDM step: LSGAN against the frozen discriminator plus the noise
		// regulariser.
		if err := t.gPDM.Run(feedsPDM); err != nil {
			return err
		}
		copy(t.fakeBuf, model.Float32s(t.n.fake)) // the pre-update fake LR
		t.acc.add("g_adv", model.Scalar(t.n.gAdv))
		if t.n.kCenter != nil {
			t.acc.add("k_center", model.Scalar(t.n.kCenter)/c.Loss.KernelCenter)
		}
		if t.n.gNoise != nil {
			t.acc.add("noise_reg", model.Scalar(t.n.gNoise))
			t.acc.add("noise_std", rms(model.Float32s(t.n.noise)))
		}
		norm, err := t.optPDM.Step(grads(t.gPDM, t.optPDM))
		if err != nil {
			return fmt.Errorf("trainer: PDM step %d: %w", step, err)
		}
		t.acc.add("pdm_gnorm", norm)
		if t.ema != nil {
			t.ema.Update()
		}
		// 2. Discriminator step on the same fake LR, detached.
		if err := t.gD.Run(map[string]*tensor.Dense{"real": dense([]int{b, 3, hs, hs}, t.realBuf), "fake": dense([]int{b, 3, hs, hs}, t.fakeBuf)}); err != nil {
			return err
		}
		t.acc.add("d", model.Scalar(t.n.dLoss))
		t.acc.add("d_real", model.Scalar(t.n.dReal))
		t.acc.add("d_fake", model.Scalar(t.n.dFake))
		if _, err := t.optD.Step(grads(t.gD, t.optD)); err != nil {
			return fmt.Errorf("trainer: discriminator step %d: %w", step, err)
		}
	} else if c.TrainsPDM() && t.cons == nil {
		if err := t.gFake.Run(feedsPDM); err != nil {
			return err
		}
		copy(t.fakeBuf, model.Float32s(t.n.fakeOnly))
	}
	if !c.TrainsSR(step) {
		return nil
	}
	// 3. SR step on the fake LR, quantised to 8 bits and detached (or on
	// bicubic-downsampled HR for the baseline).
	switch {
	case t.cons != nil:
		// The streamed y_ref, generated by a producer with recent weights.
		kernels.Quantize8(t.lrBuf, t.lrBuf)
	case t.gAvg != nil:
		// The fake LR of the averaged PDM, after this step's update.
		if err := t.gAvg.Run(feedsPDM); err != nil {
			return err
		}
		kernels.Quantize8(t.lrBuf, model.Float32s(t.n.avgFake))
	case c.TrainsPDM():
		kernels.Quantize8(t.lrBuf, t.fakeBuf)
	default:
		kernels.ResizeBicubic(b*3, s, s, hs, hs, t.lrBuf, t.hrBuf)
		kernels.Quantize8(t.lrBuf, t.lrBuf)
	}
	feeds := map[string]*tensor.Dense{"lr": dense([]int{b, 3, hs, hs}, t.lrBuf), "hr": hr}
	if c.SR.Residual {
		kernels.ResizeBicubic(b*3, hs, hs, s, s, t.bicBuf, t.lrBuf)
		feeds["bic"] = dense([]int{b, 3, s, s}, t.bicBuf)
	}
	if err := t.gSR.Run(feeds); err != nil {
		return err
	}
	t.acc.add("l1", model.Scalar(t.n.srLoss))
	if _, err := t.optSR.Step(grads(t.gSR, t.optSR)); err != nil {
		return fmt.Errorf("trainer: SR step %d: %w", step, err)
	}
	if streamed != nil {
		t.m.Pairs.Add(float64(len(streamed)))
		if t.opt.Stream.OnTrained != nil {
			t.opt.Stream.OnTrained(step, streamed)
		}
	}
	return nil
}

func rms(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s / float64(max(1, len(v))))
}

// Run trains until the configured number of steps or until ctx is
// cancelled; either way it leaves a checkpoint and the latest weights in
// the output directory. A cancelled run returns ctx's error.
func (t *Trainer) Run(ctx context.Context) error {
	c := t.cfg
	if err := os.WriteFile(filepath.Join(t.opt.Out, "config.yaml"), c.YAML(), 0o644); err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	if err := t.openCSV(); err != nil {
		return err
	}
	if t.opt.Stream != nil {
		if err := t.startStream(ctx); err != nil {
			return err
		}
		defer t.stopStream()
		t.publish(ctx)
	}
	t.meter = &progress.Meter{Out: t.opt.Progress, Unit: "step", Total: c.Steps, PerUnit: float64(c.Batch), RateUnit: "pairs/s"}
	t.meter.Start(t.step)
	t.log.Info("training", "config", c.Name, "regime", c.Regime, "degradation", c.Degradation,
		"from_step", t.step, "steps", c.Steps, "batch", c.Batch, "hr_crop", c.HRCrop,
		"hr_images", t.hrCount(), "streaming", t.opt.Stream != nil, "lr_images", t.realCount(), "out", t.opt.Out, "workers", kernels.Workers())
	var waitStart time.Time
	for t.step < c.Steps {
		if err := ctx.Err(); err != nil {
			t.log.Info("interrupted, saving a checkpoint", "step", t.step)
			if err := t.Save(); err != nil {
				return err
			}
			return err
		}
		waitStart = time.Now()
		if err := t.trainStep(ctx); err != nil {
			if ctx.Err() != nil {
				continue // interrupted while waiting for data: checkpoint above
			}
			if errors.Is(err, consumer.ErrExhausted) {
				// A replayed archive ran out: keep what was trained.
				t.log.Warn("the pair source is exhausted, stopping", "step", t.step, "steps", c.Steps)
				if serr := t.Save(); serr != nil {
					return serr
				}
				return fmt.Errorf("trainer: stopped at step %d of %d: %w", t.step, c.Steps, err)
			}
			return err
		}
		t.acc.add("step_s", time.Since(waitStart).Seconds())
		t.m.StepSeconds.Observe(time.Since(waitStart).Seconds())
		t.m.Steps.Inc()
		t.step++
		t.publish(ctx)
		if every(c.LogEvery, t.step) || t.step == c.Steps {
			t.report()
		}
		if every(c.SampleEvery, t.step) || t.step == c.Steps {
			if err := t.pictures(); err != nil {
				return err
			}
		}
		if every(c.CheckpointEvery, t.step) || t.step == c.Steps {
			if err := t.Save(); err != nil {
				return err
			}
		}
	}
	t.log.Info("training done", "steps", t.step, "out", t.opt.Out)
	return nil
}

func every(n, step int) bool { return n > 0 && step%n == 0 }

func (t *Trainer) hrCount() int {
	if t.hr == nil {
		return 0
	}
	return len(t.hr.Items)
}

func (t *Trainer) realCount() int {
	if t.real == nil {
		return 0
	}
	return len(t.real.Items)
}

// report prints the progress line and appends the interval's averages to
// train_log.csv.
func (t *Trainer) report() {
	avg := t.acc.means()
	t.acc = lossAcc{}
	if t.n.kern != nil && t.cfg.TrainsPDMAt(t.step-1) && !t.cfg.PDM.Kernel.Spatial {
		sp := model.MeasureKernels(model.Float32s(t.n.kern), t.cfg.Batch, t.cfg.PDM.Kernel.Size)
		avg = append(avg, kv{"k_sigma", sp.MeanSigma}, kv{"k_sigma_std", sp.StdSigma}, kv{"k_aniso", sp.MeanAniso})
	}
	var fields []string
	for _, f := range avg {
		if f.k == "step_s" || f.k == "pdm_gnorm" || f.k == "d_real" || f.k == "d_fake" {
			continue
		}
		fields = append(fields, fmt.Sprintf("%s %.4g", f.k, f.v))
	}
	t.meter.Print(t.step, strings.Join(fields, " "))
	attrs := []any{"step", t.step}
	for _, f := range avg {
		attrs = append(attrs, f.k, f.v)
		t.m.Losses.WithLabelValues(f.k).Set(f.v)
	}
	t.log.Debug("progress", attrs...)
	t.writeCSV(avg)
}

// lossAcc averages named values over a reporting interval, in the order
// they were first seen.
type lossAcc struct {
	order []string
	sum   map[string]float64
	n     map[string]int
}

type kv struct {
	k string
	v float64
}

func (a *lossAcc) add(k string, v float64) {
	if a.sum == nil {
		a.sum, a.n = map[string]float64{}, map[string]int{}
	}
	if _, ok := a.n[k]; !ok {
		a.order = append(a.order, k)
	}
	a.sum[k] += v
	a.n[k]++
}

func (a *lossAcc) means() []kv {
	var out []kv
	for _, k := range a.order {
		out = append(out, kv{k, a.sum[k] / float64(a.n[k])})
	}
	return out
}
