// Package trainer trains PDM and the SR network as in the paper's joint and
// two-stage regimes (pdm-spec §5): data sampling, the PDM, discriminator and
// SR steps with their optimizers, checkpoints that resume exactly, progress
// lines, and pictures of the learned kernels and of fake against real LR.
package trainer

import (
	"cmp"
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
	"github.com/pdmflow/pdmflow/diversity"
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
	// Degrade, when set in a bicubic run, makes the SR step's LR images
	// instead of bicubic downsampling: a known degradation, such as the
	// true one of a synthetic target set (an oracle SR network, the limit
	// for the network and budget). It degrades hr (3 x s x s in [0,1]) into
	// lr (3 x s/scale x s/scale), drawing from r.
	Degrade func(lr, hr []float32, s int, r *rand.Rand) error
	// Version is the pdmflow version recorded in the run's RunFile.
	Version string
	// Val, when set, scores the SR network on validation pairs every
	// Val.Every steps and at the end, and keeps the best weights.
	Val *ValOptions
	// Truth, when set, is the truth file of the real LR set (a synthetic
	// target set's truth.json): every report then compares the learned
	// distribution with it (Wasserstein-1 and spread ratio of the kernel
	// width and the noise level).
	Truth string
	// Observer, when set, watches the run as it trains (a live dashboard):
	// reports, pictures, the learned distribution. See Observer.
	Observer Observer
	// InitSR, when set, is an SR weights file (kind "sr") of the config's
	// architecture and shape that the SR network starts from instead of
	// its random init, as the official code starts from a pretrained EDSR.
	// Ignored when the run resumes from a checkpoint.
	InitSR string
	// VGG is the VGG19 weights file of the perceptual loss; it overrides
	// Config.VGG.
	VGG string
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
	// dz is the mean distance between the latents of the PDM step's pairs,
	// per kernel tap (the mode-seeking loss reads it as the step runs).
	dz   float64
	Disc *model.Discriminator
	SR   *model.SR
	// Disc2 is PDM-SRGAN's discriminator on HR images (nil without
	// loss.sr_adv); vgg the perceptual loss's feature network (nil without
	// loss.percep).
	Disc2 *model.Discriminator
	vgg   *model.VGG

	optPDM, optD, optSR, optD2 *model.Adam

	gPDM, gD, gSR, gD2, gFake, gAvg *model.Graph
	n                               nodes

	step    int  // steps completed
	resumed bool // restored from a checkpoint

	// probe, set by tests only, sees every graph's feeds just before it
	// runs and every optimizer just before it steps.
	probe *stepProbe

	// Per-step buffers, reused.
	hrBuf, realBuf, fakeBuf, lrBuf, bicBuf, srBuf []float32

	acc   lossAcc
	meter *progress.Meter
	csv   *os.File

	// The distribution monitor (PDM runs), the warnings in force, and the
	// truth it compares with (nil: none).
	mon       *diversity.Monitor
	monWarned map[string]bool
	truth     diversity.Sample

	// Validation pairs (Options.Val), and the best PSNR so far and its step.
	val      []valPair
	bestPSNR float64
	bestStep int

	// Streaming (Options.Stream).
	m              *metrics.Trainer
	cons           *consumer.Consumer
	consStop       context.CancelFunc
	consDone       chan struct{}
	streamRestored consumer.State
	published      int // step of the last weights publish (-1: none yet)
	// versionSteps is the step at which each weights version this run
	// published was made: a streamed pair's age is the step it is trained
	// at minus its version's.
	versionSteps   map[uint64]int
	ageMax         int // the oldest pair trained since the last report
	publishRetry   bool
	publishNext    time.Time
	publishBackoff time.Duration
}

// stepProbe is a test's view of a training step: run is called with each
// graph's stage ("pdm", "disc", "fake", "avg", "sr", "disc2") and feeds
// just before the graph runs, update with each optimizer's stage, the
// optimizer and its gradients just before it steps. Either may be nil.
type stepProbe struct {
	run    func(stage string, feeds map[string]*tensor.Dense)
	update func(stage string, o *model.Adam, grads []*tensor.Dense)
}

func (p *stepProbe) ran(stage string, feeds map[string]*tensor.Dense) {
	if p != nil && p.run != nil {
		p.run(stage, feeds)
	}
}

func (p *stepProbe) updated(stage string, o *model.Adam, grads []*tensor.Dense) {
	if p != nil && p.update != nil {
		p.update(stage, o, grads)
	}
}

// nodes are the graph nodes the loop reads.
type nodes struct {
	gAdv, gNoise, fake, kern, noise *G.Node
	kCenter                         *G.Node
	kSmooth, kRadius, modeSeek      *G.Node
	dLoss, dReal, dFake             *G.Node
	srLoss, sr                      *G.Node
	srL1, srPercep, srAdv           *G.Node
	d2Loss, d2Real, d2Fake          *G.Node
	fakeOnly                        *G.Node
	avgFake                         *G.Node
}

// New loads the data, builds the networks and, when out holds a checkpoint
// of the same config, restores it.
func New(cfg *Config, opt Options) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opt.Degrade != nil && (cfg.TrainsPDM() || opt.Stream != nil) {
		return nil, errors.New("trainer: a given degradation (Options.Degrade) replaces bicubic downsampling in a bicubic run on local data; this run trains PDM or reads a stream")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	t := &Trainer{cfg: cfg, opt: opt, log: opt.Log, published: -1, m: metrics.NewTrainer(nil), bestPSNR: math.Inf(-1)}
	if opt.Val != nil {
		if err := opt.Val.check(); err != nil {
			return nil, err
		}
		if opt.Val.Border == 0 {
			opt.Val.Border = 4
		}
		var err error
		if t.val, err = loadVal(opt.Val, cfg.Scale()); err != nil {
			return nil, err
		}
	}
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
		t.mon = diversity.NewMonitor(diversity.DefaultMonitorConfig())
		if opt.Truth != "" {
			tr, err := diversity.ReadTruth(opt.Truth)
			if err != nil {
				return nil, err
			}
			if tr.Scale != cfg.Scale() {
				return nil, fmt.Errorf("trainer: the truth file %s is of a x%d set, the config x%d", opt.Truth, tr.Scale, cfg.Scale())
			}
			t.truth = tr.Sample()
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
			src, shadow := t.PDM.Modules(), t.PDMAvg.Modules()
			if cfg.PDMEMAKernelOnly {
				// The noise network is copied after each step (updateAvg).
				src, shadow = src[:1], shadow[:1]
			}
			if t.ema, err = model.NewEMA(cfg.PDMEMA, src, shadow); err != nil {
				return nil, err
			}
			t.updateAvg()
		}
	}
	if t.SR, err = model.NewSR(cfg.SR, tensor.Float32, seed+3); err != nil {
		return nil, err
	}
	if t.optSR, err = model.NewAdam(cfg.Optim, t.SR.M); err != nil {
		return nil, err
	}
	if cfg.HasDisc2() {
		if t.Disc2, err = model.NewDiscriminatorNamed("disc2", cfg.Disc2, tensor.Float32, seed+4); err != nil {
			return nil, err
		}
		if t.optD2, err = model.NewAdam(cfg.Optim, t.Disc2.M); err != nil {
			return nil, err
		}
	}
	if cfg.Loss.Percep > 0 {
		path := cmp.Or(opt.VGG, cfg.VGG)
		if path == "" {
			return nil, fmt.Errorf("trainer: loss.percep %g needs VGG19 weights: --vgg FILE or vgg: PATH in the config (torchvision's vgg19 state dict, .pth or safetensors; pdmflow downloads none)", cfg.Loss.Percep)
		}
		if t.vgg, err = model.LoadVGG19(path, tensor.Float32); err != nil {
			return nil, fmt.Errorf("trainer: perceptual loss: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(opt.Out, "samples"), 0o755); err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	if err := t.restore(); err != nil {
		return nil, err
	}
	if opt.InitSR != "" {
		if t.resumed {
			t.log.Info("resuming: the SR network continues from the checkpoint, --init-sr is ignored", "init_sr", opt.InitSR, "step", t.step)
		} else if err := t.SR.LoadInit(opt.InitSR); err != nil {
			return nil, fmt.Errorf("trainer: --init-sr: %w", err)
		} else {
			t.log.Info("SR network initialised from pretrained weights", "init_sr", opt.InitSR, "arch", cfg.SR.Arch)
		}
	}
	if err := t.build(); err != nil {
		return nil, err
	}
	return t, nil
}

// updateAvg copies the trained noise network into the handed-on PDM when
// the average covers the kernel network only.
func (t *Trainer) updateAvg() {
	if !t.cfg.PDMEMAKernelOnly || t.PDM.Noise == nil {
		return
	}
	dst := t.PDMAvg.Noise.Params()
	for i, p := range t.PDM.Noise.Params() {
		copy(dst[i].Float32Data(), p.Float32Data())
	}
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
	ms = append(ms, t.SR.M)
	if t.Disc2 != nil {
		ms = append(ms, t.Disc2.M)
	}
	return ms
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
		ks := c.PDM.Kernel.Size
		c0 := float64(ks/2) + float64(c.Scale()-1)/2 // the middle of the block, in taps
		if c.Loss.KernelCenter > 0 {
			t.n.kCenter = g.KernelCentroid(out.Kernel, ks, c0, c.Loss.KernelCenter)
			loss = g.Sum(loss, t.n.kCenter)
		}
		// Priors against degenerate and collapsed kernels (docs/decisions.md).
		if c.Loss.KernelSmooth > 0 {
			t.n.kSmooth = g.KernelSmooth(out.Kernel, ks, c.Loss.KernelSmooth)
			loss = g.Sum(loss, t.n.kSmooth)
		}
		if c.Loss.KernelRadius > 0 {
			t.n.kRadius = g.KernelRadius(out.Kernel, ks, c0, c0, c.Loss.KernelRadiusPx, c.Loss.KernelRadius)
			loss = g.Sum(loss, t.n.kRadius)
		}
		if c.Loss.ModeSeeking > 0 {
			t.n.modeSeek = g.ModeSeeking(out.Kernel, &t.dz, c.Loss.ModeSeeking, c.Loss.ModeSeekingEpsilon())
			loss = g.Sum(loss, t.n.modeSeek)
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
	hrN := g.Input("hr", b, 3, s, s)
	t.n.srL1 = g.MeanAbsDiff(t.n.sr, hrN, c.Loss.L1)
	terms := []*G.Node{t.n.srL1}
	if t.vgg != nil {
		// PDM-SRGAN (pdm-spec §4): the perceptual term, whose gradient
		// reaches the SR network (the official code's does not).
		t.n.srPercep = t.vgg.Perceptual(g, t.n.sr, hrN, c.Loss.Percep)
		terms = append(terms, t.n.srPercep)
	}
	if t.Disc2 != nil {
		// LSGAN against D2, frozen in this graph.
		t.n.srAdv = g.MeanSquare(t.Disc2.Forward(g, t.n.sr), 1, c.Loss.SRAdv)
		terms = append(terms, t.n.srAdv)
		g.Keep(t.n.sr) // D2's fake, read after the step
	}
	t.n.srLoss = g.Sum(terms...)
	g.Backward(t.n.srLoss)
	if err := g.Err(); err != nil {
		return fmt.Errorf("trainer: SR step graph: %w", err)
	}
	t.gSR = g
	if t.Disc2 != nil {
		// D2 step (pdm-spec §5 step 4): real HR against the SR image of the
		// SR step, detached.
		t.srBuf = make([]float32, b*3*s*s)
		g = model.NewGraph(tensor.Float32)
		g.Train(t.Disc2.M)
		t.n.d2Real = g.MeanSquare(t.Disc2.Forward(g, g.Input("real", b, 3, s, s)), 1, 0.5*c.Loss.SRAdv)
		t.n.d2Fake = g.MeanSquare(t.Disc2.Forward(g, g.Input("fake", b, 3, s, s)), 0, 0.5*c.Loss.SRAdv)
		t.n.d2Loss = g.Sum(t.n.d2Real, t.n.d2Fake)
		g.Backward(t.n.d2Loss)
		if err := g.Err(); err != nil {
			return fmt.Errorf("trainer: SR discriminator step graph: %w", err)
		}
		t.gD2 = g
	}
	// The step's graphs run one after another: they share one arena, so
	// each reuses the buffers the others have finished with.
	for _, o := range []*model.Graph{t.gPDM, t.gD, t.gAvg, t.gFake, t.gD2} {
		if o != nil {
			o.ShareArena(t.gSR)
		}
	}
	return nil
}

// Close releases the graphs and the log file.
func (t *Trainer) Close() {
	for _, g := range []*model.Graph{t.gPDM, t.gD, t.gSR, t.gD2, t.gFake, t.gAvg} {
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
		if t.n.modeSeek != nil {
			// Per tap: the kernels' distance is a mean over their taps, so
			// the ratio is the kernels' whole L1 distance per unit of z's.
			t.dz = model.LatentPairDistance(zk.Data().([]float32), b) / float64(c.PDM.Kernel.Size*c.PDM.Kernel.Size)
		}
	}
	feedsPDM := map[string]*tensor.Dense{"hr": hr, "zk": zk}
	if zn != nil {
		feedsPDM["zn"] = zn
	}
	if c.TrainsPDMAt(step) {
		// 1. PDM step: LSGAN against the frozen discriminator plus the noise
		// regulariser.
		t.probe.ran("pdm", feedsPDM)
		if err := t.gPDM.Run(feedsPDM); err != nil {
			return err
		}
		copy(t.fakeBuf, model.Float32s(t.n.fake)) // the pre-update fake LR
		t.acc.add("g_adv", model.Scalar(t.n.gAdv))
		if t.n.kCenter != nil {
			t.acc.add("k_center", model.Scalar(t.n.kCenter)/c.Loss.KernelCenter)
		}
		if t.n.kSmooth != nil {
			t.acc.add("k_smooth", model.Scalar(t.n.kSmooth)/c.Loss.KernelSmooth)
		}
		if t.n.kRadius != nil {
			t.acc.add("k_radius", model.Scalar(t.n.kRadius)/c.Loss.KernelRadius)
		}
		if t.n.modeSeek != nil {
			t.acc.add("mode_seek", model.Scalar(t.n.modeSeek)/c.Loss.ModeSeeking)
		}
		if t.n.gNoise != nil {
			t.acc.add("noise_reg", model.Scalar(t.n.gNoise))
			t.acc.add("noise_std", rms(model.Float32s(t.n.noise)))
		}
		gp := grads(t.gPDM, t.optPDM)
		t.probe.updated("pdm", t.optPDM, gp)
		norm, err := t.optPDM.Step(gp)
		if err != nil {
			return fmt.Errorf("trainer: PDM step %d: %w", step, err)
		}
		t.acc.add("pdm_gnorm", norm)
		if t.ema != nil {
			t.ema.Update()
			t.updateAvg()
		}
		// 2. Discriminator step on the same fake LR, detached.
		feedsD := map[string]*tensor.Dense{"real": dense([]int{b, 3, hs, hs}, t.realBuf), "fake": dense([]int{b, 3, hs, hs}, t.fakeBuf)}
		t.probe.ran("disc", feedsD)
		if err := t.gD.Run(feedsD); err != nil {
			return err
		}
		t.acc.add("d", model.Scalar(t.n.dLoss))
		t.acc.add("d_real", model.Scalar(t.n.dReal))
		t.acc.add("d_fake", model.Scalar(t.n.dFake))
		gd := grads(t.gD, t.optD)
		t.probe.updated("disc", t.optD, gd)
		if _, err := t.optD.Step(gd); err != nil {
			return fmt.Errorf("trainer: discriminator step %d: %w", step, err)
		}
	} else if c.TrainsPDM() && t.cons == nil {
		t.probe.ran("fake", feedsPDM)
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
		t.probe.ran("avg", feedsPDM)
		if err := t.gAvg.Run(feedsPDM); err != nil {
			return err
		}
		kernels.Quantize8(t.lrBuf, model.Float32s(t.n.avgFake))
	case c.TrainsPDM():
		kernels.Quantize8(t.lrBuf, t.fakeBuf)
	case t.opt.Degrade != nil:
		for i := 0; i < b; i++ {
			if err := t.opt.Degrade(t.lrBuf[i*3*hs*hs:(i+1)*3*hs*hs], t.hrBuf[i*3*s*s:(i+1)*3*s*s], s, r); err != nil {
				return fmt.Errorf("trainer: step %d: degrading sample %d: %w", step, i, err)
			}
		}
		kernels.Quantize8(t.lrBuf, t.lrBuf)
	default:
		kernels.ResizeBicubic(b*3, s, s, hs, hs, t.lrBuf, t.hrBuf)
		kernels.Quantize8(t.lrBuf, t.lrBuf)
	}
	feeds := map[string]*tensor.Dense{"lr": dense([]int{b, 3, hs, hs}, t.lrBuf), "hr": hr}
	if c.SR.Residual {
		kernels.ResizeBicubic(b*3, hs, hs, s, s, t.bicBuf, t.lrBuf)
		feeds["bic"] = dense([]int{b, 3, s, s}, t.bicBuf)
	}
	t.probe.ran("sr", feeds)
	if err := t.gSR.Run(feeds); err != nil {
		return err
	}
	t.acc.add("l1", model.Scalar(t.n.srL1))
	if t.n.srPercep != nil {
		t.acc.add("percep", model.Scalar(t.n.srPercep))
	}
	if t.n.srAdv != nil {
		t.acc.add("sr_adv", model.Scalar(t.n.srAdv))
		copy(t.srBuf, model.Float32s(t.n.sr)) // made before the SR update
	}
	gs := grads(t.gSR, t.optSR)
	t.probe.updated("sr", t.optSR, gs)
	if _, err := t.optSR.Step(gs); err != nil {
		return fmt.Errorf("trainer: SR step %d: %w", step, err)
	}
	if t.gD2 != nil {
		// 4. D2 step: real HR against the step's SR image, detached.
		feedsD2 := map[string]*tensor.Dense{"real": hr, "fake": dense([]int{b, 3, s, s}, t.srBuf)}
		t.probe.ran("disc2", feedsD2)
		if err := t.gD2.Run(feedsD2); err != nil {
			return err
		}
		t.acc.add("d2", model.Scalar(t.n.d2Loss))
		t.acc.add("d2_real", model.Scalar(t.n.d2Real))
		t.acc.add("d2_fake", model.Scalar(t.n.d2Fake))
		gd := grads(t.gD2, t.optD2)
		t.probe.updated("disc2", t.optD2, gd)
		if _, err := t.optD2.Step(gd); err != nil {
			return fmt.Errorf("trainer: SR discriminator step %d: %w", step, err)
		}
	}
	if streamed != nil {
		t.observeAges(streamed)
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
	if err := t.recordStart(); err != nil {
		return err
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
	t.observeBegin()
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
		if t.val != nil && (every(t.opt.Val.Every, t.step) || t.step == c.Steps) {
			vals, err := t.validate()
			if err != nil {
				return err
			}
			for _, v := range vals {
				t.acc.add(v.k, v.v)
			}
		}
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
	avg = append(avg, t.observeDiversity()...)
	if t.cons != nil && len(t.versionSteps) > 0 {
		avg = append(avg, kv{"pair_age_max", float64(t.ageMax)})
		t.ageMax = 0
	}
	var fields []string
	for _, f := range avg {
		switch f.k {
		case "step_s", "pdm_gnorm", "d_real", "d_fake", "d2_real", "d2_fake", "k_width", "k_aniso_std", "k_pair_ratio", "k_hf_excess",
			"noise_level_std", "spread_noise", "w1_noise":
			continue // in the CSV and the metrics
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
	t.observeReport(avg)
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
