package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	flag "github.com/spf13/pflag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pdmflow/pdmflow/gpu"
	"github.com/pdmflow/pdmflow/internal/bench"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
)

// benchWarmup is the number of untimed runs before the timed ones, as
// bench/pdm_ref.py's timeit.
const benchWarmup = 2

// benchChildFlag is the hidden flag with which `pdmflow bench` runs itself
// again to measure one workload in a process of its own, so that the peak
// RSS it reports is that workload's.
const benchChildFlag = "child"

const benchSynopsis = "bench [--workloads w1,w2,w3] [--iters N] [--rounds N] [--batch N] [--quick] [--torch | --no-torch] [--json] [--cpuprofile FILE (one per workload: FILE.w1 ...)]\n" +
	"       bench --device cuda:N [--precision fp32|tf32|bf16] [--gpu-batches auto|32,64,...] [--gpu-max-batch N] [--workloads w1,w3] ..."

// benchReport is what `pdmflow bench --json` prints.
type benchReport struct {
	Go        string       `json:"go"`
	Gemm      string       `json:"gemm_kernel"`
	Threads   int          `json:"threads"`
	Iters     int          `json:"iters"`
	Rounds    int          `json:"rounds"`
	Warmup    int          `json:"warmup"`
	Quick     bool         `json:"quick"`
	Batch     int          `json:"batch"`
	Workloads []benchRow   `json:"workloads"`
	Torch     *bench.Torch `json:"torch,omitempty"`
	TorchNote string       `json:"torch_note,omitempty"` // why there is no reference or no ratio
	// With --device: the spec, what it is (model.Device.Describe) and the
	// precision of its noise network.
	DeviceSpec string `json:"device_spec,omitempty"`
	Device     string `json:"device,omitempty"`
	Precision  string `json:"precision,omitempty"`
}

// benchRow is one workload with the reference's numbers beside it.
type benchRow struct {
	*bench.Result
	TorchPairsPerSec float64 `json:"torch_pairs_per_s,omitempty"`
	TorchPeakRSSMiB  float64 `json:"torch_peak_rss_mib,omitempty"`
	GoOverTorch      float64 `json:"go_over_torch,omitempty"`
	// Rounds are the workload's figures in each round (--rounds), in
	// order; the row itself is the median round's.
	Rounds []benchRound `json:"rounds,omitempty"`
}

// benchRound is one workload's figures in one round.
type benchRound struct {
	PairsPerSec      float64 `json:"pairs_per_s"`
	TorchPairsPerSec float64 `json:"torch_pairs_per_s,omitempty"`
	GoOverTorch      float64 `json:"go_over_torch,omitempty"`
	PipelineOverRaw  float64 `json:"pipeline_over_raw,omitempty"`
	// ProducerOverGeneration is W3 on a device: the producer against
	// generation alone.
	ProducerOverGeneration float64 `json:"producer_over_generation,omitempty"`
}

// ratio is what ranks a row among rounds: its ratio to the reference, or
// (W3 on a device) the producer's to generation alone, or the pipeline's
// to JetStream alone, or its pairs/s when it has none of them.
func (r *benchRow) ratio() float64 {
	switch {
	case r.GoOverTorch > 0:
		return r.GoOverTorch
	case r.Stages != nil:
		return r.Stages.Ratio
	case r.Raw != nil:
		return r.Raw.Ratio
	}
	return r.PairsPerSec
}

// medianRounds turns each workload's rows from several rounds into one:
// the row of its median round (by ratio(): the upper middle of an even
// count), with every round's figures in Rounds.
func medianRounds(rounds [][]benchRow) []benchRow {
	if len(rounds) == 0 {
		return nil
	}
	out := make([]benchRow, len(rounds[0]))
	for i := range out {
		rows := make([]benchRow, len(rounds))
		var rs []benchRound
		for k, round := range rounds {
			rows[k] = round[i]
			br := benchRound{PairsPerSec: round[i].PairsPerSec, TorchPairsPerSec: round[i].TorchPairsPerSec, GoOverTorch: round[i].GoOverTorch}
			if round[i].Raw != nil {
				br.PipelineOverRaw = round[i].Raw.Ratio
			}
			if round[i].Stages != nil {
				br.ProducerOverGeneration = round[i].Stages.Ratio
			}
			rs = append(rs, br)
		}
		slices.SortStableFunc(rows, func(a, b benchRow) int {
			x, y := a.ratio(), b.ratio()
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		})
		out[i] = rows[len(rows)/2]
		if len(rounds) > 1 {
			out[i].Rounds = rs
		}
	}
	return out
}

func cmdBench(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "bench", benchSynopsis)
	workloads := fs.String("workloads", strings.Join(bench.Workloads, ","), "workloads to measure, comma-separated: w1 (producer: PDM forward), w2 (trainer: one joint step), w3 (pipeline: producer -> JetStream -> consumer)")
	iters := count(fs, "iters", 5, fmt.Sprintf("timed runs per workload, after %d warm-up runs; the median is reported", benchWarmup))
	rounds := count(fs, "rounds", 1, "repeat everything (each workload, then the reference) this many times and report each workload's median round: where the machine's speed drifts, a ratio is only meaningful within one round")
	batch := count(fs, "batch", 32, "pairs per W1 batch, W2 step and W3 take (--quick: 2 unless given)")
	quick := fs.Bool("quick", false, "tiny shapes for smoke tests and CI (batch 2, HR 32, nf 8, nb 1); not comparable with the reference")
	useTorch := fs.Bool("torch", true, "run the PyTorch reference for the Go/torch ratios (with --quick only when given, and without ratios)")
	noTorch := fs.Bool("no-torch", false, "do not run the PyTorch reference")
	script := fs.String("torch-script", filepath.Join("bench", "pdm_ref.py"), "the PyTorch reference script")
	python := fs.String("python", bench.DefaultPython, "the Python that runs the reference (Debian's system python3 with python3-torch)")
	jsonOut := fs.Bool("json", false, "print the results as JSON instead of a table")
	device := fs.String("device", "cpu", "where w1 and w3's producer run: cpu (the CPU paths) or cuda:N (a GPU: w1 through its PDM sampler at several batches, w3 with a PDM producer on it; w2 has no GPU path; needs a binary built with CUDA, make build-cuda)")
	precision := fs.String("precision", "fp32", "with --device cuda:N: the noise network's GPU arithmetic, fp32, tf32 or bf16 (the reference runs at the same)")
	gpuBatches := fs.String("gpu-batches", "auto", "with --device cuda:N: w1's batch sizes, comma-separated, or auto: --batch, then doubling while pairs/s grow by at least 5%, up to --gpu-max-batch")
	gpuMaxBatch := optCount(fs, "gpu-max-batch", 0, fmt.Sprintf("with --gpu-batches auto: the largest batch tried (default %d; --quick: 4x the batch)", bench.DefaultMaxBatch))
	child := fs.String(benchChildFlag, "", "internal: measure this one workload and print its result as JSON")
	_ = fs.MarkHidden(benchChildFlag) // the parent passes it to the child process
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	dv, err := parseBenchDevice(*device, *precision, *gpuBatches, *gpuMaxBatch, given)
	if err != nil {
		return err
	}
	if dv.gpu() && !given["workloads"] {
		*workloads = "w1,w3" // w2 has no GPU path
	}
	names, err := parseWorkloads(*workloads)
	if err != nil {
		return err
	}
	if dv.gpu() && slices.Contains(names, "w2") {
		return fmt.Errorf("%w: --device %s: w2 (the trainer) has no GPU path; measure it with --device cpu", errUsage, dv.spec)
	}
	if *iters < 1 || *rounds < 1 {
		return fmt.Errorf("%w: --iters and --rounds must be at least 1", errUsage)
	}
	if given["torch"] && given["no-torch"] {
		return fmt.Errorf("%w: --torch and --no-torch exclude each other", errUsage)
	}
	s := bench.Full(*batch)
	if *quick {
		s = bench.Quick()
		if given["batch"] {
			s.Batch = *batch
		}
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *child != "" {
		o := bench.Options{Iters: *iters, Warmup: benchWarmup, Progress: e.progress, DeviceBatches: dv.batches, MaxBatch: dv.maxBatch}
		if dv.gpu() {
			dev, err := dv.open(e)
			if err != nil {
				return err
			}
			defer dev.Close()
			o.Device = dev
		}
		r, err := bench.Run(ctx, *child, s, o)
		if err != nil {
			return err
		}
		return json.NewEncoder(e.stdout).Encode(r)
	}
	if dv.gpu() {
		// Open the device here first: a binary without CUDA, or a host
		// without the GPU, fails now with the reason, before any workload.
		dev, err := dv.open(e)
		if err != nil {
			return err
		}
		desc := dev.Describe()
		dev.Close()
		fmt.Fprintf(e.stderr, "bench: device %s\n", desc)
		dv.desc = desc
	}

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: cannot find this program to run the workloads: %w", err)
	}
	rep := &benchReport{Go: runtime.Version(), Gemm: kernels.GemmKernel(), Threads: c.threads, Iters: *iters,
		Rounds: *rounds, Warmup: benchWarmup, Quick: *quick, Batch: s.Batch}
	if dv.gpu() {
		rep.DeviceSpec, rep.Device, rep.Precision = dv.spec, dv.desc, string(dv.prec)
	}
	// Whether the reference runs, and why not, is the same in every round.
	plan := benchPlan{exe: exe, names: names, s: s, iters: *iters, quick: *quick, python: *python, script: *script, dv: dv}
	needsTorch := slices.Contains(names, "w1") || slices.Contains(names, "w2")
	plan.torch = *useTorch && !*noTorch && needsTorch
	switch {
	case !needsTorch:
	case *noTorch || !*useTorch:
		rep.TorchNote = "PyTorch reference not run (--no-torch)"
	case *quick && !given["torch"]:
		plan.torch = false
		rep.TorchNote = "PyTorch reference not run: the --quick shapes are not the reference's (--torch runs it at --batch anyway, without ratios)"
	}
	if plan.torch && !given["torch-script"] {
		plan.script = findScript(plan.script, exe)
	}
	var all [][]benchRow
	for round := 1; round <= *rounds; round++ {
		if *rounds > 1 {
			fmt.Fprintf(e.stderr, "bench: round %d of %d\n", round, *rounds)
			rep.Workloads = nil
		}
		if err := plan.round(ctx, e, c, rep); err != nil {
			return err
		}
		all = append(all, rep.Workloads)
	}
	rep.Workloads = medianRounds(all)
	if *jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(rep)
	}
	printBench(e.stdout, rep)
	return nil
}

// benchPlan is what each round of `pdmflow bench` runs.
type benchPlan struct {
	exe            string // this program, run again per workload
	names          []string
	s              bench.Shapes
	iters          int
	quick          bool
	torch          bool // run the reference
	python, script string
	dv             benchDevice
}

// benchDevice is bench's --device and the flags that go with it.
type benchDevice struct {
	spec     string // "cpu", or "cuda:N" as given
	prec     gpu.Precision
	batches  []int // --gpu-batches (nil: auto)
	maxBatch int
	desc     string // the device's description, once opened
}

func (d benchDevice) gpu() bool { return d.spec != "cpu" }

// open opens the GPU of d: an error names what is missing (a binary built
// without CUDA, no driver, no such GPU).
func (d benchDevice) open(e *env) (model.Device, error) {
	devs, err := gpu.Open(d.spec, d.prec, e.log)
	if err != nil {
		return nil, fmt.Errorf("--device %s: %w", d.spec, err)
	}
	if len(devs) != 1 {
		for _, dev := range devs {
			dev.Close()
		}
		return nil, fmt.Errorf("--device %s: %d devices, want one", d.spec, len(devs))
	}
	return devs[0], nil
}

// args are the child's flags for d.
func (d benchDevice) args() []string {
	if !d.gpu() {
		return nil
	}
	bs := "auto"
	if d.batches != nil {
		bs = joinInts(d.batches)
	}
	return []string{"--device", d.spec, "--precision", string(d.prec), "--gpu-batches", bs, "--gpu-max-batch", strconv.Itoa(d.maxBatch)}
}

// parseBenchDevice reads --device (cpu, cuda or cuda:N: bench measures one
// device), --precision, --gpu-batches and --gpu-max-batch; the last three
// only go with a GPU.
func parseBenchDevice(spec, precision, batches string, maxBatch int, given map[string]bool) (benchDevice, error) {
	d := benchDevice{spec: strings.ToLower(strings.TrimSpace(spec)), maxBatch: maxBatch}
	switch {
	case d.spec == "cpu":
		for _, f := range []string{"precision", "gpu-batches", "gpu-max-batch"} {
			if given[f] {
				return d, fmt.Errorf("%w: --%s goes with --device cuda:N", errUsage, f)
			}
		}
		return d, nil
	case d.spec == "cuda":
		d.spec = "cuda:0"
	case strings.HasPrefix(d.spec, "cuda:"):
		if i, err := strconv.Atoi(d.spec[len("cuda:"):]); err != nil || i < 0 {
			return d, fmt.Errorf("%w: --device %q: cpu or cuda:N (bench measures one device)", errUsage, spec)
		}
	default:
		return d, fmt.Errorf("%w: --device %q: cpu or cuda:N (bench measures one device)", errUsage, spec)
	}
	var err error
	if d.prec, err = gpu.ParsePrecision(precision); err != nil {
		return d, fmt.Errorf("%w: --precision: %v", errUsage, err)
	}
	if maxBatch < 0 {
		return d, fmt.Errorf("%w: --gpu-max-batch %d", errUsage, maxBatch)
	}
	if b := strings.TrimSpace(batches); b != "auto" {
		for _, f := range strings.Split(b, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return d, fmt.Errorf("%w: --gpu-batches %q: auto, or batch sizes separated by commas", errUsage, batches)
			}
			if slices.Contains(d.batches, n) {
				return d, fmt.Errorf("%w: --gpu-batches %q: batch %d twice", errUsage, batches, n)
			}
			d.batches = append(d.batches, n)
		}
	}
	return d, nil
}

// joinInts writes v as "1,2,3".
func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// round measures each workload in a child process, then runs the
// reference, and fills rep's rows and reference for this round.
func (p *benchPlan) round(ctx context.Context, e *env, c *common, rep *benchReport) error {
	for _, name := range p.names {
		fmt.Fprintf(e.stderr, "bench: %s %s in a child process\n", name, bench.Title(name))
		childArgs := []string{"bench", "--" + benchChildFlag, name, "--iters", strconv.Itoa(p.iters), "--batch", strconv.Itoa(p.s.Batch),
			"--threads", strconv.Itoa(c.threads), "--log-level", c.logLevel}
		if p.quick {
			childArgs = append(childArgs, "--quick")
		}
		childArgs = append(childArgs, p.dv.args()...)
		if c.cpuProfile != "" {
			// The workload runs in the child: profile it there.
			childArgs = append(childArgs, "--cpuprofile", c.cpuProfile+"."+name)
			fmt.Fprintf(e.stderr, "bench: %s: CPU profile in %s\n", name, c.cpuProfile+"."+name)
		}
		r, err := benchChild(ctx, e, p.exe, childArgs)
		if err != nil {
			return fmt.Errorf("bench: %s: %w", name, err)
		}
		fmt.Fprintf(e.stderr, "bench: %s: %.2f pairs/s, peak RSS %.0f MiB\n", name, r.PairsPerSec, r.PeakRSSMiB)
		rep.Workloads = append(rep.Workloads, benchRow{Result: r})
	}
	if !p.torch {
		return nil
	}
	if p.dv.gpu() {
		return p.torchGPU(ctx, e, c, rep)
	}
	fmt.Fprintf(e.stderr, "bench: PyTorch reference: %s %s --batch %d --threads %d --iters %d\n", p.python, p.script, p.s.Batch, c.threads, p.iters)
	tr, err := bench.RunTorch(ctx, bench.TorchOptions{Python: p.python, Script: p.script, Batch: p.s.Batch, Threads: c.threads, Iters: p.iters, Stderr: e.stderr})
	switch {
	case errors.Is(err, bench.ErrNoTorch):
		rep.TorchNote = err.Error()
		fmt.Fprintf(e.stderr, "bench: %v\n", err)
	case err != nil:
		return err
	default:
		rep.Torch = tr
		if p.quick {
			rep.TorchNote = "the reference ran at its own shapes (HR 128, full networks) with the --quick batch: no ratios"
		}
		for i := range rep.Workloads {
			row := &rep.Workloads[i]
			if v := tr.PairsPerSec(row.Workload); v > 0 {
				row.TorchPairsPerSec, row.TorchPeakRSSMiB = v, tr.PeakRSSMiB
				if !p.quick {
					row.GoOverTorch = row.PairsPerSec / v
				}
			}
		}
	}
	return nil
}

// torchGPU runs the reference's W1 on the same GPU, at the batches and the
// precision that w1 measured, and fills in the ratios per batch. Where it
// cannot run (no torch, a torch without CUDA) or fails, the Go figures
// stand alone with the reason in the report.
func (p *benchPlan) torchGPU(ctx context.Context, e *env, c *common, rep *benchReport) error {
	var w1 *benchRow
	for i := range rep.Workloads {
		if rep.Workloads[i].Workload == "w1" {
			w1 = &rep.Workloads[i]
		}
	}
	if w1 == nil || len(w1.DeviceBatches) == 0 {
		return nil
	}
	var batches []int
	for _, b := range w1.DeviceBatches {
		if b.Error == "" {
			batches = append(batches, b.Batch)
		}
	}
	fmt.Fprintf(e.stderr, "bench: PyTorch reference: %s %s --device %s --precision %s --w1-only --batch %s --threads %d --iters %d\n",
		p.python, p.script, p.dv.spec, p.dv.prec, joinInts(batches), c.threads, p.iters)
	tr, err := bench.RunTorch(ctx, bench.TorchOptions{Python: p.python, Script: p.script, Batch: p.s.Batch, Threads: c.threads, Iters: p.iters,
		Stderr: e.stderr, Device: p.dv.spec, Precision: string(p.dv.prec), Batches: batches})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, bench.ErrNoTorch) {
			rep.TorchNote = err.Error()
		} else {
			rep.TorchNote = "the PyTorch reference failed, no ratios: " + err.Error()
		}
		fmt.Fprintf(e.stderr, "bench: %v\n", err)
		return nil
	}
	rep.Torch = tr
	if p.quick {
		rep.TorchNote = "the reference ran at its own shapes (HR 128, full networks) with the --quick batches: no ratios"
	}
	for i := range w1.DeviceBatches {
		db := &w1.DeviceBatches[i]
		tb := tr.W1At(db.Batch)
		if tb == nil || db.Error != "" {
			continue
		}
		if tb.Error != "" {
			db.TorchError = tb.Error
			continue
		}
		db.TorchPairsPerSec = tb.PairsPerSec
		if !p.quick {
			db.GoOverTorch = db.PairsPerSec / tb.PairsPerSec
			db.RunOverTorch = float64(db.Batch) / db.RunSeconds / tb.PairsPerSec
		}
	}
	first := w1.DeviceBatches[0]
	w1.TorchPairsPerSec, w1.TorchPeakRSSMiB, w1.GoOverTorch = first.TorchPairsPerSec, tr.PeakRSSMiB, first.GoOverTorch
	return nil
}

// parseWorkloads reads --workloads: known names, each once, in the order
// given.
func parseWorkloads(list string) ([]string, error) {
	var names []string
	for _, w := range strings.Split(list, ",") {
		w = strings.ToLower(strings.TrimSpace(w))
		if w == "" || slices.Contains(names, w) {
			continue
		}
		if !slices.Contains(bench.Workloads, w) {
			return nil, fmt.Errorf("%w: --workloads: unknown workload %q (%s)", errUsage, w, strings.Join(bench.Workloads, ", "))
		}
		names = append(names, w)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: --workloads names no workload", errUsage)
	}
	return names, nil
}

// benchChild runs this program again with args (a `bench --child`
// invocation), passing its progress through to stderr, and returns the
// result it prints with the child's peak RSS filled in.
func benchChild(ctx context.Context, e *env, exe string, args []string) (*bench.Result, error) {
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = e.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("child process %s: %w", strings.Join(args, " "), err)
	}
	var r bench.Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("child process printed no result: %w\n%s", err, stdout.String())
	}
	r.PeakRSSMiB = bench.PeakRSSMiB(cmd.ProcessState)
	return &r, nil
}

// findScript returns script if it exists, else the same path next to the
// directory of the executable (bin/pdmflow finds bench/pdm_ref.py of its
// checkout from anywhere).
func findScript(script, exe string) string {
	if _, err := os.Stat(script); err == nil || filepath.IsAbs(script) {
		return script
	}
	alt := filepath.Join(filepath.Dir(exe), "..", script)
	if _, err := os.Stat(alt); err == nil {
		return alt
	}
	return script
}

func printBench(w io.Writer, rep *benchReport) {
	shapes := "the design's shapes"
	if rep.Quick {
		shapes = "QUICK shapes (smoke test, not comparable with the reference)"
	}
	rounds := ""
	if rep.Rounds > 1 {
		rounds = fmt.Sprintf("; each row the median of %d rounds", rep.Rounds)
	}
	fmt.Fprintf(w, "pdmflow bench: %s, gemm kernel %s, %d threads; median of %d timed runs after %d warm-up runs%s; %s\n",
		rep.Go, rep.Gemm, rep.Threads, rep.Iters, rep.Warmup, rounds, shapes)
	if rep.Device != "" {
		fmt.Fprintf(w, "device %s (w1 and w3's producer run there, the host work on the %d threads)\n", rep.Device, rep.Threads)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tshapes\tpairs/s\tGFLOP/s\tpeak RSS MiB\ttorch pairs/s\ttorch peak RSS MiB\tratio Go/torch")
	for _, r := range rep.Workloads {
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Workload, r.Title, r.Short,
			num(r.PairsPerSec, 2), num(r.GFLOPS, 2), num(r.PeakRSSMiB, 0),
			num(r.TorchPairsPerSec, 2), num(r.TorchPeakRSSMiB, 0), num(r.GoOverTorch, 3))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range rep.Workloads {
		fmt.Fprintf(w, "%s: %s\n", r.Workload, r.Shapes)
		if r.ConvGFLOP > 0 {
			fmt.Fprintf(w, "    %.4g s per run (median); %.4g GFLOP of convolutions per run\n", r.Seconds, r.ConvGFLOP)
		}
		if len(r.Rounds) > 1 {
			var parts []string
			for _, rd := range r.Rounds {
				p := num(rd.PairsPerSec, 2) + " pairs/s"
				switch {
				case rd.GoOverTorch > 0:
					p += fmt.Sprintf(" (torch %s, ratio %.3f)", num(rd.TorchPairsPerSec, 2), rd.GoOverTorch)
				case rd.ProducerOverGeneration > 0:
					p += fmt.Sprintf(" (producer/generation %.3f)", rd.ProducerOverGeneration)
				case rd.PipelineOverRaw > 0:
					p += fmt.Sprintf(" (pipeline/raw %.3f)", rd.PipelineOverRaw)
				}
				parts = append(parts, p)
			}
			fmt.Fprintf(w, "    rounds: %s\n", strings.Join(parts, "; "))
		}
		if len(r.DeviceBatches) > 0 {
			printDeviceBatches(w, r.Result)
		}
		if st := r.Stages; st != nil {
			printStages(w, r.Device, st)
		}
		if raw := r.Raw; raw != nil {
			pipeSec, pipeRate := r.Seconds, r.PairsPerSec
			if raw.PipelineSeconds > 0 {
				pipeSec, pipeRate = raw.PipelineSeconds, raw.PipelinePairsPerSec
			}
			fmt.Fprintf(w, "    pipeline %.3f s per run: %.2f pairs/s; JetStream alone (the same %d messages of %.2f MiB: PublishAsync + pull consumer, acked, not decoded): %.3f s, %.2f pairs/s, %.1f MiB/s\n",
				pipeSec, pipeRate, raw.Messages, float64(raw.MessageBytes)/(1<<20), raw.Seconds, raw.PairsPerSec, raw.MiBPerSec)
			fmt.Fprintf(w, "    pipeline/raw %.3f: the median of the runs' ratios (%.3f-%.3f; the ratio of the medians is %.3f)\n",
				raw.Ratio, slices.Min(raw.RunRatios), slices.Max(raw.RunRatios), raw.MedianRatio)
			if raw.DeliverySeconds > 0 {
				fmt.Fprintf(w, "    delivery (the same messages into pdmflow's consumer: decode, validation, dedup, pool; no generation): %.3f s, %.2f pairs/s; delivery/raw %.3f (median of the runs' ratios)\n",
					raw.DeliverySeconds, raw.DeliveryPairsPerSec, raw.DeliveryRatio)
			}
		}
	}
	switch {
	case rep.Torch != nil && rep.Torch.Device != "":
		fmt.Fprintf(w, "torch: %s (W1 alone, its inputs, latents and outputs on the GPU: no host work, uploads or downloads, which Go/torch counts on pdmflow's side and run/torch leaves out but for the transfers; its peak RSS is host memory)\n", rep.Torch.Header)
	case rep.Torch != nil:
		fmt.Fprintf(w, "torch: %s (one process ran W1 then W2: one peak RSS for both)\n", rep.Torch.Header)
	}
	if rep.TorchNote != "" {
		fmt.Fprintln(w, rep.TorchNote)
	}
}

// printDeviceBatches prints W1 on a device, a row per batch.
func printDeviceBatches(w io.Writer, r *bench.Result) {
	fmt.Fprintf(w, "    on %s, per batch: host = crops drawn and extracted and latents drawn on the CPU; run = the device sampler's Run (staging, upload, forward, download); TFLOP/s of the convolutions over the whole batch and over the run alone\n", r.Device)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "    batch\tpairs/s\tms/batch\thost ms\trun ms\tTFLOP/s\trun TFLOP/s\tGFLOP/batch\tup MiB\tdown MiB\ttorch pairs/s\tGo/torch\trun/torch\t")
	for _, b := range r.DeviceBatches {
		if b.Error != "" {
			fmt.Fprintf(tw, "    %d\t%s\t\t\t\t\t\t\t\t\t\t\t\t\n", b.Batch, "not run: "+b.Error)
			continue
		}
		torch := num(b.TorchPairsPerSec, 1)
		if b.TorchError != "" {
			torch = b.TorchError
		}
		fmt.Fprintf(tw, "    %d\t%.1f\t%.3f\t%.3f\t%.3f\t%.2f\t%.2f\t%.2f\t%.2f\t%.3f\t%s\t%s\t%s\t\n", b.Batch, b.PairsPerSec,
			1e3*b.Seconds, 1e3*b.HostSeconds, 1e3*b.RunSeconds, b.TFLOPS, b.RunTFLOPS, b.ConvGFLOP,
			float64(b.UploadBytes)/(1<<20), float64(b.DownloadBytes)/(1<<20), torch, num(b.GoOverTorch, 3), num(b.RunOverTorch, 3))
	}
	tw.Flush()
	if len(r.DeviceBatches) > 1 {
		fmt.Fprintf(w, "    saturates at batch %d (the smallest within 5%% of the best pairs/s)\n", r.SaturatingBatch)
	}
}

// printStages prints W3 on a device: the producer against its stages.
func printStages(w io.Writer, device string, st *bench.Stages) {
	met := "met"
	if !st.Met() {
		met = "not met"
	}
	lo, hi := st.RatioRange()
	fmt.Fprintf(w, "    producer on %s: %.2f pairs/s, %.1f MiB/s into JetStream (%d messages of %d pairs, %.2f MiB; timed from the first publish: %d pairs)\n",
		device, st.ProducerPairsPerSec, st.ProducerMiBPerSec, st.Messages, st.PairsPerMsg, float64(st.MessageBytes)/(1<<20), st.TimedPairs)
	fmt.Fprintf(w, "    generation alone %.2f pairs/s (%.1f MiB/s); publishing alone %.2f pairs/s (%.1f MiB/s); the slower stage alone: %s\n",
		st.GenerationPairsPerSec, st.GenerationMiBPerSec, st.PublishPairsPerSec, st.PublishMiBPerSec, st.Limit)
	fmt.Fprintf(w, "    producer/generation %.3f: the median of the runs' ratios (%.3f-%.3f); target >= %.1f: %s\n", st.Ratio, lo, hi, bench.StagesTarget, met)
}

// num formats a positive number, "-" for none.
func num(v float64, prec int) string {
	if v <= 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}
