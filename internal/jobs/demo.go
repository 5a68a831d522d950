package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pdmflow/pdmflow/diversity"
	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/internal/synth"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/trainer"
)

// DemoOptions configure the end-to-end demo.
type DemoOptions struct {
	Photos string // photographs to build the demo data from (with split.txt)
	Out    string
	// Own data instead of Photos: HR images, real LR images, and validation
	// pairs (LR images and their ground truth, same base names).
	HR, LR, ValHR, ValLR string
	Config               *trainer.Config // the PDM-SR run; the baseline uses it with bicubic degradation
	Producers            int             // producers per training run (default 2)
	// Dist is the synthetic target set's degradation distribution (a
	// synth.Dists name; default "default") when the demo builds its data.
	// The demo then also trains the SR network on the true degradation
	// (the oracle) and compares the learned distribution with the truth.
	Dist string
	// Directories to use instead of those inside Out (a study shares them
	// between runs): the demo data, the runs that do not depend on the
	// PDM (the bicubic-trained SR and the oracle SR) and the single-process
	// PDM-SR of CompareDirect, which does not depend on the stream's
	// settings. Empty: inside Out.
	DataDir, BicubicOut, OracleOut, DirectOut string
	// CompareDirect also trains PDM-SR in a single process, without the
	// stream (trainer on local directories: the SR step trains on the
	// averaged PDM's pairs of the same step), and scores it beside the
	// streamed run: the cost of the stream, if any.
	CompareDirect bool
	// LPIPS lists LPIPS weights files (lpips.Load); with them the table
	// also has each method's LPIPS.
	LPIPS []string
	// InitSR is pretrained SR weights every SR network of the demo starts
	// from (trainer.Options.InitSR); VGG the VGG19 weights of a PDM-SRGAN
	// config's perceptual loss (trainer.Options.VGG).
	InitSR, VGG string
	Metrics     *prometheus.Registry
	// Observer watches every training run of the demo, one after another
	// (trainer.Options.Observer).
	Observer trainer.Observer
	// Version is the pdmflow version recorded in results.json.
	Version  string
	Log      *slog.Logger
	Progress io.Writer
}

// DemoRow is one line of the results table: RGB and Y-channel PSNR and
// SSIM (4-pixel border), and LPIPS when the demo was given its weights.
type DemoRow struct {
	Method string  `json:"method"`
	PSNR   float64 `json:"psnr"`
	SSIM   float64 `json:"ssim"`
	PSNRY  float64 `json:"psnr_y"`
	SSIMY  float64 `json:"ssim_y"`
	LPIPS  float64 `json:"lpips,omitempty"`
	// Images are the per-image scores behind the means.
	Images []ImageScore `json:"images,omitempty"`
	// Diversity compares the PDM of a PDM-SR row with the truth (a
	// synthetic target set only).
	Diversity *diversity.Report `json:"diversity,omitempty"`
}

// DemoResult is what the demo measured.
type DemoResult struct {
	Rows []DemoRow `json:"rows"`
	Dist string    `json:"dist,omitempty"` // the synthetic target set's distribution
	Seed uint64    `json:"seed"`
	// Provenance: the pdmflow version (with its commit), the Go version,
	// the GEMM kernel the CPU used, the seed of the synthetic data, and the
	// full resolved config of the PDM-SR run.
	Version    string          `json:"version"`
	GoVersion  string          `json:"go_version"`
	GemmKernel string          `json:"gemm_kernel"`
	DataSeed   uint64          `json:"data_seed,omitempty"`
	FullConfig *trainer.Config `json:"config_full"`
	ValPairs   int             `json:"val_pairs"`
	Steps      int             `json:"steps"`
	Config     string          `json:"config"`
	Kernels    string          `json:"kernels_png"`
	Comparison string          `json:"comparison_png"`
	Learned    *KernelReport   `json:"learned_kernels,omitempty"`
	True       *KernelReport   `json:"true_kernels,omitempty"`
	// Diversity compares the learned distribution with the truth (a
	// synthetic target set only).
	Diversity *diversity.Report `json:"diversity,omitempty"`
	Seconds   float64           `json:"seconds"`
}

// KernelReport summarises a kernel distribution by the per-kernel width
// sqrt(sigma_major*sigma_minor) in HR pixels.
type KernelReport struct {
	MeanSigma float64 `json:"mean_sigma"`
	StdSigma  float64 `json:"std_sigma"`
	N         int     `json:"n"`
}

// Demo builds the demo data (unless own data is given), trains PDM-SR and
// the same SR network on bicubic pairs, super-resolves the validation LR
// images with both and with bicubic upsampling, and scores all three.
// Finished stages are not redone when it runs again on the same Out.
func Demo(ctx context.Context, o DemoOptions) (*DemoResult, error) {
	start := time.Now()
	cfg := o.Config
	hr, lr, valHR, valLR := o.HR, o.LR, o.ValHR, o.ValLR
	var manifest *synth.Manifest
	truth := ""
	if hr == "" && lr == "" && valHR == "" && valLR == "" {
		data := filepath.Join(o.Out, "data")
		if o.DataDir != "" {
			data = o.DataDir
		}
		var err error
		if manifest, err = ensureDemoData(o.Photos, data, o.Dist, o.Log); err != nil {
			return nil, err
		}
		truth = filepath.Join(data, diversity.TruthFile)
		hr, lr = filepath.Join(data, "hr"), filepath.Join(data, "lr")
		valHR, valLR = filepath.Join(data, "val", "hr"), filepath.Join(data, "val", "lr")
	} else if hr == "" || lr == "" || valHR == "" || valLR == "" {
		return nil, errors.New("jobs: own data needs all of HR, LR, validation HR and validation LR directories")
	}
	pdmOut, bicOut := filepath.Join(o.Out, "pdm-sr"), filepath.Join(o.Out, "bicubic-sr")
	if o.BicubicOut != "" {
		bicOut = o.BicubicOut
	}
	o.Log.Info("demo: training PDM-SR", "steps", cfg.Steps, "out", pdmOut)
	// The PDM-SR run is scored on the validation pairs while it trains
	// (its train_log.csv: val_psnr, val_ssim).
	val := &trainer.ValOptions{HR: valHR, LR: valLR, Every: cfg.SampleEvery}
	if err := train(ctx, cfg, hr, lr, truth, pdmOut, val, o); err != nil {
		return nil, err
	}
	bic := *cfg
	bic.Degradation = trainer.DegradeBicubic
	bic.Name = cfg.Name + "-bicubic"
	o.Log.Info("demo: training the same SR network on bicubic pairs", "steps", bic.Steps, "out", bicOut)
	if err := train(ctx, &bic, hr, "", "", bicOut, nil, o); err != nil {
		return nil, err
	}
	res := &DemoResult{Steps: cfg.Steps, Config: cfg.Name, Seed: cfg.Seed, Version: o.Version, GoVersion: runtime.Version(),
		GemmKernel: kernels.GemmKernel(), FullConfig: cfg}
	if manifest != nil {
		res.DataSeed = manifest.Seed
	}
	type method struct {
		name, dir string
		opts      SROptions
		pdm       string // the PDM of a PDM-SR row
	}
	methods := []method{
		{"bicubic upsampling", "bicubic", SROptions{Bicubic: true, Scale: cfg.Scale()}, ""},
		{"SR trained on bicubic pairs", "bicubic-sr", SROptions{Weights: filepath.Join(bicOut, trainer.SRFile), Tile: 128}, ""},
		{"PDM-SR (SR trained on PDM pairs)", "pdm-sr", SROptions{Weights: filepath.Join(pdmOut, trainer.SRFile), Tile: 128}, filepath.Join(pdmOut, trainer.PDMFile)},
	}
	if o.CompareDirect {
		directOut := cmp.Or(o.DirectOut, filepath.Join(o.Out, "pdm-sr-direct"))
		o.Log.Info("demo: training PDM-SR in one process, without the stream", "out", directOut)
		if err := trainDirect(ctx, cfg, hr, lr, truth, directOut, o); err != nil {
			return nil, err
		}
		methods = append(methods, method{"PDM-SR, single process (no stream)", "pdm-sr-direct",
			SROptions{Weights: filepath.Join(directOut, trainer.SRFile), Tile: 128}, filepath.Join(directOut, trainer.PDMFile)})
	}
	if manifest != nil {
		res.Dist = manifest.Params.Name
		oracleOut := filepath.Join(o.Out, "oracle-sr")
		if o.OracleOut != "" {
			oracleOut = o.OracleOut
		}
		o.Log.Info("demo: training the same SR network on the true degradation (the oracle)", "dist", res.Dist, "out", oracleOut)
		if err := trainOracle(ctx, cfg, manifest.Params, hr, oracleOut, o); err != nil {
			return nil, err
		}
		methods = append(methods, method{"oracle SR (trained on the true degradation)", "oracle-sr", SROptions{Weights: filepath.Join(oracleOut, trainer.SRFile), Tile: 128}, ""})
	}
	var outs []string
	for _, m := range methods {
		m.opts.In = valLR
		m.opts.Out = filepath.Join(o.Out, "results", m.dir)
		m.opts.Log = o.Log
		m.opts.Replace = true // the demo's own results, made again on every run
		if err := SR(ctx, m.opts); err != nil {
			return nil, err
		}
		ev, err := EvalWith(ctx, EvalOptions{SR: m.opts.Out, GT: valHR, Border: cfg.Scale(), LPIPS: o.LPIPS})
		if err != nil {
			return nil, err
		}
		evY, err := EvalWith(ctx, EvalOptions{SR: m.opts.Out, GT: valHR, Border: cfg.Scale(), Y: true})
		if err != nil {
			return nil, err
		}
		res.ValPairs = len(ev.Images)
		row := DemoRow{Method: m.name, PSNR: *ev.PSNR, SSIM: *ev.SSIM, PSNRY: *evY.PSNR, SSIMY: *evY.SSIM, Images: ev.Images}
		if ev.LPIPS != nil {
			row.LPIPS = *ev.LPIPS
		}
		if m.pdm != "" && manifest != nil {
			sub := "diversity"
			if m.dir != "pdm-sr" {
				sub = filepath.Join("diversity", m.dir)
			}
			dv, err := Diversity(DiversityOptions{Weights: m.pdm, Truth: truth, HR: hr, HRCrop: cfg.HRCrop, Samples: 512, Seed: 1, Out: filepath.Join(o.Out, sub)})
			if err != nil {
				return nil, err
			}
			row.Diversity = dv.Report
			if m.dir == "pdm-sr" {
				res.Diversity = dv.Report
			}
		}
		res.Rows = append(res.Rows, row)
		outs = append(outs, m.opts.Out)
	}
	res.Kernels = filepath.Join(pdmOut, trainer.KernelsFile)
	if p, err := model.LoadPDM(filepath.Join(pdmOut, trainer.PDMFile)); err == nil && !p.Cfg.Kernel.Spatial {
		k, err := trainer.SampleKernels(p, rand.New(rand.NewPCG(7, 7)), 256)
		if err == nil {
			sp := model.MeasureKernels(k, 256, p.Cfg.Kernel.Size)
			res.Learned = &KernelReport{MeanSigma: sp.MeanSigma, StdSigma: sp.StdSigma, N: 256}
		}
	}
	if manifest != nil {
		res.True = trueKernels(manifest)
	}
	res.Comparison = filepath.Join(o.Out, "comparison.png")
	var labels []string
	for _, m := range methods {
		labels = append(labels, m.dir)
	}
	if err := comparison(valLR, valHR, outs, labels, cfg.Scale(), res.Comparison); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(o.Out, "results.json"), b, 0o644); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.Out, "results.md"), []byte(res.Markdown()), 0o644); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return res, nil
}

// train runs one training job through the stream: an embedded JetStream
// server, a file store, o.Producers producers and the trainer in this
// process, the same code paths as a distributed deployment.
func train(ctx context.Context, cfg *trainer.Config, hr, lr, truth, out string, val *trainer.ValOptions, o DemoOptions) error {
	return Pipeline(ctx, PipelineOptions{
		Config: cfg, Run: "demo-" + cfg.Degradation, HR: hr, LR: lr, Out: out, Truth: truth, Val: val, Version: o.Version,
		Producers: o.Producers, Log: o.Log, Progress: o.Progress, Registry: o.Metrics, Observer: o.Observer, InitSR: o.InitSR, VGG: o.VGG,
	})
}

// trainDirect trains PDM-SR in this process on local directories, without
// the stream.
func trainDirect(ctx context.Context, cfg *trainer.Config, hr, lr, truth, out string, o DemoOptions) error {
	t, err := trainer.New(cfg, trainer.Options{HRDir: hr, LRDir: lr, Out: out, Truth: truth, Log: o.Log, Progress: o.Progress, Version: o.Version, InitSR: o.InitSR, VGG: o.VGG,
		Observer: o.Observer})
	if err != nil {
		return err
	}
	defer t.Close()
	return t.Run(ctx)
}

// trainOracle trains the SR network of cfg on pairs made with the true
// degradation distribution p (in this process: the degradation is the
// target set's, known only here), for as many steps as the others.
func trainOracle(ctx context.Context, cfg *trainer.Config, p synth.Params, hr, out string, o DemoOptions) error {
	oc := *cfg
	oc.Degradation = trainer.DegradeBicubic
	oc.Name = cfg.Name + "-oracle"
	t, err := trainer.New(&oc, trainer.Options{HRDir: hr, Out: out, Log: o.Log, Progress: o.Progress, Version: o.Version, InitSR: o.InitSR, VGG: o.VGG, Observer: o.Observer,
		Degrade: func(lr, x []float32, s int, r *rand.Rand) error {
			d := p.Sample(r)
			y, _, _, err := p.Apply(x, s, s, &d, r)
			copy(lr, y)
			return err
		}})
	if err != nil {
		return err
	}
	defer t.Close()
	return t.Run(ctx)
}

// ensureDemoData builds the demo data of the distribution dist (default:
// "default") into dir unless a manifest of the same photos and parameters
// is already there.
func ensureDemoData(photos, dir, dist string, log *slog.Logger) (*synth.Manifest, error) {
	opts := synth.DefaultOptions()
	opts.Log = log
	if dist != "" {
		var err error
		if opts.Params, err = synth.Dist(dist); err != nil {
			return nil, err
		}
	}
	_, truthErr := os.Stat(filepath.Join(dir, diversity.TruthFile))
	if b, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err == nil && truthErr == nil {
		var m synth.Manifest
		if json.Unmarshal(b, &m) == nil && reflect.DeepEqual(m.Params, opts.Params) && m.Seed == opts.Seed {
			if split, err := synth.ReadSplit(photos); err == nil && fmt.Sprint(split) == fmt.Sprint(m.Split) {
				log.Info("demo: reusing data", "dir", dir)
				return &m, nil
			}
		}
	}
	log.Info("demo: building data", "photos", photos, "dir", dir)
	return synth.Build(photos, dir, opts)
}

func trueKernels(m *synth.Manifest) *KernelReport {
	var sig []float64
	for name, d := range m.Images {
		if strings.HasPrefix(name, "lr/") {
			sig = append(sig, math.Sqrt(d.Stats.SigmaMajor*d.Stats.SigmaMinor))
		}
	}
	if len(sig) == 0 {
		return nil
	}
	r := &KernelReport{N: len(sig)}
	for _, s := range sig {
		r.MeanSigma += s
	}
	r.MeanSigma /= float64(len(sig))
	for _, s := range sig {
		r.StdSigma += (s - r.MeanSigma) * (s - r.MeanSigma)
	}
	r.StdSigma = math.Sqrt(r.StdSigma / float64(len(sig)))
	return r
}

// Markdown renders the results table.
func (r *DemoResult) Markdown() string {
	var b strings.Builder
	lp := len(r.Rows) > 0 && r.Rows[0].LPIPS != 0
	b.WriteString("| method | PSNR (dB) | SSIM | PSNR-Y (dB) | SSIM-Y |")
	if lp {
		b.WriteString(" LPIPS |")
	}
	b.WriteString("\n| --- | ---: | ---: | ---: | ---: |")
	if lp {
		b.WriteString(" ---: |")
	}
	b.WriteString("\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %.2f | %.4f | %.2f | %.4f |", row.Method, row.PSNR, row.SSIM, row.PSNRY, row.SSIMY)
		if lp {
			fmt.Fprintf(&b, " %.4f |", row.LPIPS)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n%d validation pairs, RGB and BT.601 Y, 4-pixel border crop; config %s, seed %d, %d steps; %.0f s in all.\n", r.ValPairs, r.Config, r.Seed, r.Steps, r.Seconds)
	if r.Dist != "" {
		fmt.Fprintf(&b, "Target set: synthetic, distribution %q.\n", r.Dist)
	}
	if d := r.Diversity; d != nil {
		w, n := d.Get(diversity.Width), d.Get(diversity.Noise)
		fmt.Fprintf(&b, "Learned against true: kernel width %.2f +- %.2f against %.2f +- %.2f HR px (spread ratio %.2f, W1 %.3f); noise level %.4f +- %.4f against %.4f +- %.4f (spread ratio %.2f, W1 %.4f).\n",
			w.Mean, w.Std, w.TrueMean, w.TrueStd, w.SpreadRatio, w.W1, n.Mean, n.Std, n.TrueMean, n.TrueStd, n.SpreadRatio, n.W1)
	}
	if r.Learned != nil {
		fmt.Fprintf(&b, "Learned kernel width sqrt(sigma1*sigma2): mean %.2f, std %.2f HR px (%d samples)", r.Learned.MeanSigma, r.Learned.StdSigma, r.Learned.N)
		if r.True != nil {
			fmt.Fprintf(&b, "; true distribution of the real LR set: mean %.2f, std %.2f (%d images)", r.True.MeanSigma, r.True.StdSigma, r.True.N)
		}
		b.WriteString(".\n")
	}
	return b.String()
}

func upNearest(im *imageio.Image, s int) *imageio.Image {
	w, h := im.W*s, im.H*s
	out := &imageio.Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for c := 0; c < 3; c++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				out.Pix[(c*h+y)*w+x] = im.Pix[(c*im.H+y/s)*im.W+x/s]
			}
		}
	}
	return out
}

func paste(dst, src *imageio.Image, x0, y0 int) {
	for c := 0; c < 3; c++ {
		for y := 0; y < src.H; y++ {
			copy(dst.Pix[(c*dst.H+y0+y)*dst.W+x0:], src.Pix[(c*src.H+y)*src.W:(c*src.H+y+1)*src.W])
		}
	}
}
