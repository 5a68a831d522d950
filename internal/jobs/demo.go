package jobs

import (
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
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/internal/synth"
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
	Metrics              *prometheus.Registry
	Log                  *slog.Logger
	Progress             io.Writer
}

// DemoRow is one line of the results table.
type DemoRow struct {
	Method string  `json:"method"`
	PSNR   float64 `json:"psnr"`
	SSIM   float64 `json:"ssim"`
}

// DemoResult is what the demo measured.
type DemoResult struct {
	Rows       []DemoRow     `json:"rows"`
	ValPairs   int           `json:"val_pairs"`
	Steps      int           `json:"steps"`
	Config     string        `json:"config"`
	Kernels    string        `json:"kernels_png"`
	Comparison string        `json:"comparison_png"`
	Learned    *KernelReport `json:"learned_kernels,omitempty"`
	True       *KernelReport `json:"true_kernels,omitempty"`
	Seconds    float64       `json:"seconds"`
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
	if hr == "" && lr == "" && valHR == "" && valLR == "" {
		data := filepath.Join(o.Out, "data")
		var err error
		if manifest, err = ensureDemoData(o.Photos, data, o.Log); err != nil {
			return nil, err
		}
		hr, lr = filepath.Join(data, "hr"), filepath.Join(data, "lr")
		valHR, valLR = filepath.Join(data, "val", "hr"), filepath.Join(data, "val", "lr")
	} else if hr == "" || lr == "" || valHR == "" || valLR == "" {
		return nil, errors.New("jobs: own data needs all of HR, LR, validation HR and validation LR directories")
	}
	pdmOut, bicOut := filepath.Join(o.Out, "pdm-sr"), filepath.Join(o.Out, "bicubic-sr")
	o.Log.Info("demo: training PDM-SR", "steps", cfg.Steps, "out", pdmOut)
	if err := train(ctx, cfg, hr, lr, pdmOut, o); err != nil {
		return nil, err
	}
	bic := *cfg
	bic.Degradation = trainer.DegradeBicubic
	bic.Name = cfg.Name + "-bicubic"
	o.Log.Info("demo: training the same SR network on bicubic pairs", "steps", bic.Steps, "out", bicOut)
	if err := train(ctx, &bic, hr, "", bicOut, o); err != nil {
		return nil, err
	}
	res := &DemoResult{Steps: cfg.Steps, Config: cfg.Name}
	methods := []struct {
		name, dir string
		opts      SROptions
	}{
		{"bicubic upsampling", "bicubic", SROptions{Bicubic: true, Scale: cfg.Scale()}},
		{"SR trained on bicubic pairs", "bicubic-sr", SROptions{Weights: filepath.Join(bicOut, trainer.SRFile), Tile: 128}},
		{"PDM-SR (SR trained on PDM pairs)", "pdm-sr", SROptions{Weights: filepath.Join(pdmOut, trainer.SRFile), Tile: 128}},
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
		ev, err := Eval(m.opts.Out, valHR, cfg.Scale())
		if err != nil {
			return nil, err
		}
		res.ValPairs = len(ev.Images)
		res.Rows = append(res.Rows, DemoRow{Method: m.name, PSNR: ev.PSNR, SSIM: ev.SSIM})
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
	if err := comparison(valLR, valHR, outs, cfg.Scale(), res.Comparison); err != nil {
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
func train(ctx context.Context, cfg *trainer.Config, hr, lr, out string, o DemoOptions) error {
	return Pipeline(ctx, PipelineOptions{
		Config: cfg, Run: "demo-" + cfg.Degradation, HR: hr, LR: lr, Out: out,
		Producers: o.Producers, Log: o.Log, Progress: o.Progress, Registry: o.Metrics,
	})
}

// ensureDemoData builds the demo data into dir unless a manifest of the
// same photos and parameters is already there.
func ensureDemoData(photos, dir string, log *slog.Logger) (*synth.Manifest, error) {
	opts := synth.DefaultOptions()
	opts.Log = log
	if b, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err == nil {
		var m synth.Manifest
		if json.Unmarshal(b, &m) == nil && m.Params == opts.Params && m.Seed == opts.Seed {
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
			sig = append(sig, math.Sqrt(d.Sigma1*d.Sigma2))
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
	fmt.Fprintf(&b, "| method | PSNR (dB) | SSIM |\n| --- | ---: | ---: |\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %.2f | %.4f |\n", row.Method, row.PSNR, row.SSIM)
	}
	fmt.Fprintf(&b, "\n%d validation pairs, RGB, 4-pixel border crop; config %s, %d steps; %.0f s in all.\n", r.ValPairs, r.Config, r.Steps, r.Seconds)
	if r.Learned != nil {
		fmt.Fprintf(&b, "Learned kernel width sqrt(sigma1*sigma2): mean %.2f, std %.2f HR px (%d samples)", r.Learned.MeanSigma, r.Learned.StdSigma, r.Learned.N)
		if r.True != nil {
			fmt.Fprintf(&b, "; true distribution of the real LR set: mean %.2f, std %.2f (%d images)", r.True.MeanSigma, r.True.StdSigma, r.True.N)
		}
		b.WriteString(".\n")
	}
	return b.String()
}

// comparison writes a picture of up to 4 validation images: LR (nearest
// upsampled), each method's SR, and the ground truth, side by side, each a
// 64x64 crop from the centre.
func comparison(valLR, valHR string, outs []string, scale int, path string) error {
	gts, err := imageio.List(valHR)
	if err != nil {
		return err
	}
	const crop = 64
	n := min(4, len(gts))
	cols := len(outs) + 2
	cell := crop + 4
	w, h := cols*cell+4, n*cell+4
	im := &imageio.Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for i := range im.Pix {
		im.Pix[i] = 255
	}
	for i := 0; i < n; i++ {
		gt, err := imageio.Load(gts[i])
		if err != nil {
			return err
		}
		lr, err := imageio.Load(filepath.Join(valLR, filepath.Base(gts[i])))
		if err != nil {
			return err
		}
		x0, y0 := max(0, gt.W/2-crop/2), max(0, gt.H/2-crop/2)
		if gt.W < crop || gt.H < crop {
			continue
		}
		tiles := []*imageio.Image{upNearest(lr, scale).Crop(x0, y0, crop, crop)}
		for _, o := range outs {
			sr, err := imageio.Load(filepath.Join(o, stem(gts[i])+".png"))
			if err != nil {
				return err
			}
			tiles = append(tiles, sr.Crop(x0, y0, crop, crop))
		}
		tiles = append(tiles, gt.Crop(x0, y0, crop, crop))
		for j, t := range tiles {
			paste(im, t, 4+j*cell, 4+i*cell)
		}
	}
	return im.Save(path)
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
