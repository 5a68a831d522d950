package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pdmflow/pdmflow/internal/jobs"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/internal/synth"
)

func cmdDegrade(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "degrade", "degrade --weights PDM.safetensors --in DIR --out DIR [--seed S] [--per-image K]")
	o := jobs.DegradeOptions{Log: e.log, Progress: e.progress}
	fs.StringVar(&o.Weights, "weights", "", "PDM weights (pdm.safetensors from a training run)")
	fs.StringVar(&o.In, "in", "", "directory of HR images")
	fs.StringVar(&o.Out, "out", "", "directory for the LR images and degradations.json")
	seed := fs.Uint64("seed", 0, "random seed; the same seed, weights and images give the same output")
	fs.IntVar(&o.PerImage, "per-image", 1, "degradations drawn per image")
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
	o := jobs.SROptions{Progress: e.progress}
	fs.StringVar(&o.Weights, "weights", "", "SR weights (sr.safetensors from a training run)")
	fs.BoolVar(&o.Bicubic, "bicubic", false, "bicubic upsampling instead of a network")
	fs.IntVar(&o.Scale, "scale", 4, "upsampling factor with --bicubic")
	fs.StringVar(&o.In, "in", "", "directory of LR images")
	fs.StringVar(&o.Out, "out", "", "directory for the SR images")
	fs.IntVar(&o.Tile, "tile", 128, "process images larger than this many LR pixels per side in tiles (same result, bounded memory; 0: never)")
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
	border := fs.Int("border", 4, "pixels cropped from every side before measuring (the scale, as the PDM evaluation)")
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
	fs, c := newFlags(e, "synth", "synth --photos DIR --out DIR [--dist NAME] [--seed S] | synth --list")
	photos := fs.String("photos", "data/photos", "photographs, with an optional split.txt assigning them to hr, lr and val")
	out := fs.String("out", "", "output directory")
	dist := fs.String("dist", "default", "the degradation distribution of the LR side (see --list)")
	list := fs.Bool("list", false, "list the distributions and what each draws")
	o := synth.DefaultOptions()
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed of the degradations")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if *list {
		for _, d := range synth.Dists() {
			fmt.Fprintf(e.stdout, "%-11s %s\n", d.Name, d.Doc)
		}
		return nil
	}
	if err := required(map[string]string{"out": *out}); err != nil {
		return err
	}
	var err error
	if o.Params, err = synth.Dist(*dist); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	o.Log = e.log
	_, err = synth.Build(*photos, *out, o)
	return err
}

func cmdDiversity(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "diversity", "diversity --weights PDM.safetensors --truth DATA/truth.json [--hr DIR] [--samples N] [--out DIR]")
	var o jobs.DiversityOptions
	fs.StringVar(&o.Weights, "weights", "", "PDM weights (pdm.safetensors of a run)")
	fs.StringVar(&o.Truth, "truth", "", "the target set's truth file (truth.json, written by pdmflow synth)")
	fs.StringVar(&o.HR, "hr", "", "HR images to measure the PDM's noise levels on (none: kernels only)")
	fs.IntVar(&o.HRCrop, "hr-crop", 128, "side of the HR crops for the noise levels")
	fs.IntVar(&o.Samples, "samples", 512, "kernels and images to draw")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the latents and crops")
	fs.StringVar(&o.Out, "out", "", "write diversity.json, diversity.md and diversity.png (histograms, learned against true) here")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"weights": o.Weights, "truth": o.Truth}); err != nil {
		return err
	}
	if o.Samples < 2 || o.HRCrop < 8 {
		return fmt.Errorf("%w: --samples must be at least 2 and --hr-crop at least 8", errUsage)
	}
	res, err := jobs.Diversity(o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s against the truth of %q (%d samples):\n\n%s", o.Weights, res.Dist, res.Samples, res.Report.Markdown())
	return nil
}

func cmdStudy(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "study", "study --out DIR [--configs FILE,...] [--presets NAME,...] [--dists all|NAME,...] [--seeds 1,2,3] [--read-only]")
	o := jobs.StudyOptions{Progress: e.progress, Version: version}
	configs := fs.String("configs", "", "comma-separated config files, the variants compared (each with a distinct name)")
	presets := fs.String("presets", "", "comma-separated built-in configs, compared too (default cpu-small when no --configs)")
	dists := fs.String("dists", "all", "comma-separated synth distributions, or all")
	seeds := fs.String("seeds", "1,2,3", "comma-separated training seeds")
	steps := fs.Int("steps", 0, "training steps of every run (overrides the configs)")
	fs.StringVar(&o.Photos, "photos", "data/photos", "photographs to build the target sets from")
	fs.StringVar(&o.Out, "out", "out/study", "output directory; a finished cell is read, not run again")
	fs.IntVar(&o.Producers, "producers", 2, "producers per run")
	fs.BoolVar(&o.ReadOnly, "read-only", false, "run nothing: tabulate the cells that have results")
	fs.BoolVar(&o.CompareDirect, "compare-direct", false, "also train every cell's PDM-SR in a single process, without the stream, and score it beside the streamed one")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	for _, f := range splitList(*configs) {
		cfg, err := loadConfig("", f)
		if err != nil {
			return err
		}
		o.Configs = append(o.Configs, cfg)
	}
	ps := splitList(*presets)
	if len(ps) == 0 && len(o.Configs) == 0 {
		ps = []string{"cpu-small"}
	}
	for _, p := range ps {
		cfg, err := loadConfig(p, "")
		if err != nil {
			return err
		}
		o.Configs = append(o.Configs, cfg)
	}
	for _, cfg := range o.Configs {
		if *steps > 0 {
			cfg.Steps = *steps
		}
		if !cfg.TrainsPDM() {
			return fmt.Errorf("%w: config %q does not train PDM", errUsage, cfg.Name)
		}
	}
	o.Dists = splitList(*dists)
	if *dists == "all" {
		o.Dists = nil
		for _, d := range synth.Dists() {
			o.Dists = append(o.Dists, d.Name)
		}
	}
	for _, d := range o.Dists {
		if _, err := synth.Dist(d); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	for _, s := range splitList(*seeds) {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: --seeds %q: %v", errUsage, s, err)
		}
		o.Seeds = append(o.Seeds, v)
	}
	o.Log = e.log
	res, err := jobs.Study(ctx, o)
	if res != nil {
		fmt.Fprintf(e.stdout, "%s\nTable: %s\n", res.Markdown(), filepath.Join(o.Out, "study.md"))
	}
	return err
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func cmdRun(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "run", "run [--out DIR] [--preset NAME | --config FILE] [--steps N] [--seed S] [--dist NAME | --hr DIR --lr DIR --val-hr DIR --val-lr DIR]")
	o := jobs.DemoOptions{Progress: e.progress, Version: version}
	fs.StringVar(&o.Photos, "photos", "data/photos", "photographs to build the demo data from")
	fs.StringVar(&o.Out, "out", "out/demo", "output directory (a finished stage is not redone)")
	preset := fs.String("preset", "cpu-small", "built-in config")
	config := fs.String("config", "", "YAML config file (overrides --preset)")
	steps := fs.Int("steps", 0, "training steps of each run (overrides the config)")
	fs.StringVar(&o.HR, "hr", "", "own data: HR images to degrade")
	fs.StringVar(&o.LR, "lr", "", "own data: real LR images")
	fs.StringVar(&o.ValHR, "val-hr", "", "own data: validation ground truth")
	fs.StringVar(&o.ValLR, "val-lr", "", "own data: validation LR images (same base names as --val-hr)")
	fs.IntVar(&o.Producers, "producers", 2, "producers in this process, feeding the trainer through the embedded JetStream server")
	fs.StringVar(&o.Dist, "dist", "default", "the demo data's degradation distribution (pdmflow synth --list); with it the demo also trains an oracle SR and compares the learned distribution with the truth")
	seed := fs.Int64("seed", -1, "training seed (default: the config's); the demo data stay the same")
	fs.BoolVar(&o.CompareDirect, "compare-direct", false, "also train PDM-SR in a single process, without the stream, and score it beside the streamed run")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics on this address, e.g. :9090")
	uiAddr := uiFlag(fs, uiTraining)
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
	if *seed >= 0 {
		cfg.Seed = uint64(*seed)
	}
	if _, err := synth.Dist(o.Dist); err != nil {
		return fmt.Errorf("%w: --dist: %v", errUsage, err)
	}
	o.Config, o.Log = cfg, e.log
	o.Metrics = metrics.NewRegistry()
	if _, err := metrics.Serve(ctx, *metricsAddr, o.Metrics, e.log); err != nil {
		return err
	}
	obs, stopUI, err := serveUI(ctx, e, *uiAddr, "pdmflow run "+o.Out, o.Metrics)
	if err != nil {
		return err
	}
	defer stopUI()
	o.Observer = obs
	res, err := jobs.Demo(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\n%s\n", res.Markdown())
	if res.Dist != "" {
		fmt.Fprintf(e.stdout, "Learned against true distribution: %s\n", filepath.Join(o.Out, "diversity", "diversity.png"))
	}
	fmt.Fprintf(e.stdout, "Learned kernels: %s\nWhere the methods differ most (each method's crop and PSNR): %s\nAll results: %s\n",
		res.Kernels, res.Comparison, strings.Join([]string{filepath.Join(o.Out, "results.md"), filepath.Join(o.Out, "results.json")}, ", "))
	return nil
}
