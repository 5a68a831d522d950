package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/pdmflow/pdmflow/internal/jobs"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/internal/synth"
)

func cmdDegrade(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "degrade", "degrade --weights PDM.safetensors --in DIR --out DIR [--seed S] [--per-image K]")
	o := jobs.DegradeOptions{Log: e.log, Progress: e.stderr}
	fs.StringVar(&o.Weights, "weights", "", "PDM weights (pdm.safetensors from a training run)")
	fs.StringVar(&o.In, "in", "", "directory of HR images")
	fs.StringVar(&o.Out, "out", "", "directory for the LR images and degradations.json")
	seed := fs.Uint64("seed", 0, "random seed; the same seed, weights and images give the same output")
	countVar(fs, &o.PerImage, "per-image", 1, "degradations drawn per image")
	optCountVar(fs, &o.Tile, "tile", 0, "degrade in tiles of this many LR pixels a side (default 128; the result does not depend on it, memory does)")
	fs.BoolVar(&o.Replace, "replace", false, "if --out has files in it, replace it as a whole (without: only a missing or empty --out is used)")
	fs.BoolVar(&o.Kernels, "kernels", false, "also write each degradation's blur kernel as a PNG")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"weights": o.Weights, "in": o.In, "out": o.Out}); err != nil {
		return err
	}
	if o.PerImage < 1 {
		return fmt.Errorf("%w: --per-image must be at least 1", errUsage)
	}
	o.Seed = *seed
	o.Log = e.log
	_, err := jobs.Degrade(ctx, o)
	return err
}

func cmdSR(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "sr", "sr --weights SR.safetensors --in DIR --out DIR   (or --bicubic --scale S)")
	o := jobs.SROptions{Progress: e.stderr}
	fs.StringVar(&o.Weights, "weights", "", "SR weights (sr.safetensors from a training run)")
	fs.BoolVar(&o.Bicubic, "bicubic", false, "bicubic upsampling instead of a network")
	countVar(fs, &o.Scale, "scale", 4, "upsampling factor with --bicubic")
	fs.StringVar(&o.In, "in", "", "directory of LR images")
	fs.StringVar(&o.Out, "out", "", "directory for the SR images")
	natVar(fs, &o.Tile, "tile", 128, "process images larger than this many LR pixels per side in tiles (same result, bounded memory; 0: never)")
	fs.BoolVar(&o.Replace, "replace", false, "if --out has files in it, replace it as a whole (without: only a missing or empty --out is used)")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"in": o.In, "out": o.Out}); err != nil {
		return err
	}
	if o.Bicubic == (o.Weights != "") {
		return fmt.Errorf("%w: give either --weights or --bicubic", errUsage)
	}
	o.Log = e.log
	return jobs.SR(ctx, o)
}

func cmdEval(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "eval", "eval --sr DIR --gt DIR [--json] [--border N]")
	sr := fs.String("sr", "", "directory of SR images")
	gt := fs.String("gt", "", "directory of ground-truth HR images (same base names)")
	border := nat(fs, "border", 4, "pixels cropped from every side before measuring (the scale, as the PDM evaluation)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"sr": *sr, "gt": *gt}); err != nil {
		return err
	}
	res, err := jobs.Eval(*sr, *gt, *border)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	for _, s := range res.Images {
		fmt.Fprintf(e.stdout, "%-32s PSNR %6.2f dB  SSIM %.4f\n", s.Name, s.PSNR, s.SSIM)
	}
	fmt.Fprintf(e.stdout, "%-32s PSNR %6.2f dB  SSIM %.4f  (%d images, RGB, border %d)\n", "mean", res.PSNR, res.SSIM, len(res.Images), res.Border)
	return nil
}

func cmdSynth(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "synth", "synth --photos DIR --out DIR [--seed S]")
	photos := fs.String("photos", "data/photos", "photographs, with an optional split.txt assigning them to hr, lr and val")
	out := fs.String("out", "", "output directory")
	o := synth.DefaultOptions()
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed of the degradations")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"out": *out}); err != nil {
		return err
	}
	o.Log = e.log
	_, err := synth.Build(*photos, *out, o)
	return err
}

func cmdRun(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "run", "run [--out DIR] [--preset NAME | --config FILE] [--steps N] [--hr DIR --lr DIR --val-hr DIR --val-lr DIR]")
	o := jobs.DemoOptions{Progress: e.stderr}
	fs.StringVar(&o.Photos, "photos", "data/photos", "photographs to build the demo data from")
	fs.StringVar(&o.Out, "out", "out/demo", "output directory (a finished stage is not redone)")
	preset := fs.String("preset", "cpu-small", "built-in config")
	config := fs.String("config", "", "YAML config file (overrides --preset)")
	steps := optCount(fs, "steps", 0, "training steps of each run (overrides the config; 0: the config's)")
	fs.StringVar(&o.HR, "hr", "", "own data: HR images to degrade")
	fs.StringVar(&o.LR, "lr", "", "own data: real LR images")
	fs.StringVar(&o.ValHR, "val-hr", "", "own data: validation ground truth")
	fs.StringVar(&o.ValLR, "val-lr", "", "own data: validation LR images (same base names as --val-hr)")
	countVar(fs, &o.Producers, "producers", 2, "producers in this process, feeding the trainer through the embedded JetStream server")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics on this address, e.g. :9090")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*preset, *config)
	if err != nil {
		return err
	}
	if *steps > 0 {
		cfg.Steps = *steps
	}
	o.Config, o.Log = cfg, e.log
	o.Metrics = metrics.NewRegistry()
	if _, err := metrics.Serve(ctx, *metricsAddr, o.Metrics, e.log); err != nil {
		return err
	}
	res, err := jobs.Demo(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\n%s\n", res.Markdown())
	fmt.Fprintf(e.stdout, "Learned kernels: %s\nSample crops (LR | bicubic | bicubic-SR | PDM-SR | ground truth): %s\nAll results: %s\n",
		res.Kernels, res.Comparison, strings.Join([]string{filepath.Join(o.Out, "results.md"), filepath.Join(o.Out, "results.json")}, ", "))
	return nil
}
