package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	o := jobs.SROptions{Progress: e.progress}
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
	fs, c := newFlags(e, "eval", "eval --sr DIR --hr DIR [--json] [--border N] [--y-channel] [--shift N [--shift-patch P]] [--lpips FILES] [--niqe MODEL]")
	o := jobs.EvalOptions{}
	fs.StringVar(&o.SR, "sr", "", "directory of SR images")
	fs.StringVar(&o.GT, "hr", "", "directory of the ground-truth HR images (same base names; formerly --gt); may be left out with --niqe alone")
	natVar(fs, &o.Border, "border", 4, "pixels cropped from every side before measuring (the scale, as the PDM evaluation)")
	fs.BoolVar(&o.Y, "y-channel", false, "PSNR and SSIM on the ITU-R BT.601 Y channel (16 + (65.481 R + 128.553 G + 24.966 B)/255) instead of RGB")
	natVar(fs, &o.Shift, "shift", 0, "maximise PSNR and SSIM over shifts of the ground truth within +-N pixels (the NTIRE 2018 scorer: --shift 40 --shift-patch 60 --border 10)")
	natVar(fs, &o.ShiftPatch, "shift-patch", 0, "with --shift: compare the centre P x P patch of the ground truth at each shift (0: the whole cropped image)")
	lp := fs.String("lpips", "", "LPIPS (AlexNet, v0.1) from these comma-separated weights files: torchvision's AlexNet and lpips' alex.pth (.pth or safetensors), or one file from pdmflow import --kind lpips")
	fs.StringVar(&o.NIQE, "niqe", "", "NIQE against this pristine model (JSON: pdmflow niqe-fit, or scripts/niqe-model.py from the NIQE release's modelparameters.mat)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	o.LPIPS = splitList(*lp)
	if err := required(map[string]string{"sr": o.SR}); err != nil {
		return err
	}
	if o.GT == "" && o.NIQE == "" {
		return fmt.Errorf("%w: --hr is required (only --niqe works without a ground truth)", errUsage)
	}
	if o.Border < 0 || o.Shift < 0 || o.ShiftPatch < 0 {
		return fmt.Errorf("%w: --border, --shift and --shift-patch must not be negative", errUsage)
	}
	if o.ShiftPatch > 0 && o.Shift == 0 {
		return fmt.Errorf("%w: --shift-patch needs --shift", errUsage)
	}
	o.Progress = e.stderr
	res, err := jobs.EvalWith(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	writeEvalTable(e.stdout, res)
	return nil
}

// writeEvalTable prints one line per image and the means. Without the
// optional metrics the lines are those eval has always printed.
func writeEvalTable(w io.Writer, res *jobs.EvalResult) {
	line := func(name string, s jobs.ImageScore) {
		fmt.Fprintf(w, "%-32s", name)
		if s.PSNR != nil {
			fmt.Fprintf(w, " PSNR %6.2f dB  SSIM %.4f", *s.PSNR, *s.SSIM)
		}
		if s.PSNRShift != nil {
			fmt.Fprintf(w, "  shifts (%d, %d) (%d, %d)", s.PSNRShift[0], s.PSNRShift[1], s.SSIMShift[0], s.SSIMShift[1])
		}
		if s.LPIPS != nil {
			fmt.Fprintf(w, "  LPIPS %.4f", *s.LPIPS)
		}
		if s.NIQE != nil {
			fmt.Fprintf(w, "  NIQE %.4f", *s.NIQE)
		}
	}
	for _, s := range res.Images {
		line(s.Name, s)
		fmt.Fprintln(w)
	}
	line("mean", jobs.ImageScore{PSNR: res.PSNR, SSIM: res.SSIM, LPIPS: res.LPIPS, NIQE: res.NIQE})
	channel := "RGB"
	if res.Channel == "y" {
		channel = "Y (BT.601)"
	}
	fmt.Fprintf(w, "  (%d images, %s, border %d", len(res.Images), channel, res.Border)
	if res.Shift > 0 {
		patch := "whole image"
		if res.ShiftPatch > 0 {
			patch = fmt.Sprintf("%dx%d centre patch", res.ShiftPatch, res.ShiftPatch)
		}
		fmt.Fprintf(w, ", best of shifts within +-%d, %s; shifts are (dy, dx) of the PSNR and SSIM maxima", res.Shift, patch)
	}
	if len(res.NIQESkipped) > 0 {
		fmt.Fprintf(w, "; NIQE skipped %d images too small for it", len(res.NIQESkipped))
	}
	fmt.Fprintln(w, ")")
}

func cmdNIQEFit(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "niqe-fit", "niqe-fit --pristine DIR --out MODEL.json [--block 96] [--sharpness 0.75]")
	o := jobs.NIQEFitOptions{Progress: e.stderr}
	fs.StringVar(&o.Pristine, "pristine", "", "directory of pristine (sharp, clean, natural) images")
	fs.StringVar(&o.Out, "out", "", "model file to write (JSON, read by eval --niqe)")
	fs.IntVar(&o.Block, "block", 96, "patch side in pixels (96 in the NIQE release)")
	fs.Float64Var(&o.Sharpness, "sharpness", 0.75, "keep the patches whose sharpness (mean local sigma) exceeds this times the image's sharpest, as estimatemodelparam.m")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"pristine": o.Pristine, "out": o.Out}); err != nil {
		return err
	}
	if o.Block < 8 || o.Block%2 != 0 || o.Sharpness < 0 || o.Sharpness >= 1 {
		return fmt.Errorf("%w: --block must be even and at least 8, --sharpness in [0, 1)", errUsage)
	}
	o.Log = e.log
	m, err := jobs.NIQEFit(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "NIQE model of %d patches from %d images (%dx%d blocks, sharpness threshold %g): %s\n", m.Patches, m.Images, m.BlockSize, m.BlockSize, m.SharpnessThreshold, o.Out)
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
	fs, c := newFlags(e, "run", "run [--out DIR] [--preset NAME | --config FILE] [--steps N] [--seed S] [--dist NAME | --hr DIR --lr DIR --val-hr DIR --val-lr DIR] [--init-sr SR.safetensors] [--vgg VGG19.pth]")
	o := jobs.DemoOptions{Progress: e.progress, Version: version}
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
	fs.StringVar(&o.Dist, "dist", "default", "the demo data's degradation distribution (pdmflow synth --list); with it the demo also trains an oracle SR and compares the learned distribution with the truth")
	seed := seed(fs, "training seed (default: the config's); the demo data stay the same")
	fs.BoolVar(&o.CompareDirect, "compare-direct", false, "also train PDM-SR in a single process, without the stream, and score it beside the streamed run")
	lp := fs.String("lpips", "", "also score LPIPS with these comma-separated weights files (see eval --lpips)")
	fs.StringVar(&o.InitSR, "init-sr", "", "start every SR network of the demo from these weights (same architecture and shape as the config's sr), as the official code starts from a pretrained EDSR")
	fs.StringVar(&o.VGG, "vgg", "", "VGG19 weights for a PDM-SRGAN config's perceptual loss (torchvision's vgg19 .pth or safetensors)")
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
	o.LPIPS = splitList(*lp)
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

func cmdImport(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "import", "import --in FILE.pth --kind pdm|disc|edsr|rrdb --out FILE.safetensors  (or --kind lpips --in ALEXNET,ALEX.pth)")
	var o jobs.ImportOptions
	in := fs.String("in", "", "the official code's checkpoint (.pth: torch.save's zip or legacy format; read without running code); for --kind lpips, comma-separated weights files to merge")
	fs.StringVar(&o.Kind, "kind", "", "pdm (DegModel: kernel and noise networks), disc (PatchGAN discriminator), edsr (EDSR, mean shifts folded), rrdb (ESRGAN's RRDBNet, BasicSR or ESRGAN names; --prefix params_ema for Real-ESRGAN files), lpips (AlexNet features + lin layers into one file)")
	fs.StringVar(&o.Out, "out", "", "pdmflow weights file to write")
	fs.IntVar(&o.Scale, "scale", 4, "pdm: the scale factor")
	fs.StringVar(&o.NoiseMode, "noise-mode", "", "pdm: how the noise network's input was made (mixed, z-only, content-only); default: 6 input channels mixed, 3 z-only")
	fs.IntVar(&o.Stride, "stride", 0, "disc: the stride of layers 2 and 3 (2 when PDM trained alone, 1 in joint training); required")
	fs.Float64Var(&o.ResScale, "res-scale", 1, "edsr: residual scaling (1 for EDSR-baseline)")
	fs.StringVar(&o.Prefix, "prefix", "", "use only the tensors under this key of the checkpoint (\"params\" for {\"params\": state_dict})")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"in": *in, "kind": o.Kind, "out": o.Out}); err != nil {
		return err
	}
	switch o.Kind {
	case "pdm", "disc", "edsr", "rrdb", jobs.KindLPIPS:
	default:
		return fmt.Errorf("%w: --kind %q: pdm, disc, edsr, rrdb or lpips", errUsage, o.Kind)
	}
	if o.Kind == "disc" && o.Stride != 1 && o.Stride != 2 {
		return fmt.Errorf("%w: --kind disc needs --stride 1 or 2 (not in the weights)", errUsage)
	}
	o.In = splitList(*in)
	res, err := jobs.Import(o)
	if err != nil {
		return err
	}
	for _, n := range res.Notes {
		fmt.Fprintf(e.stdout, "note: %s\n", n)
	}
	fmt.Fprintf(e.stdout, "%s weights, config %s: %s\n", res.Kind, res.Config, o.Out)
	return nil
}
