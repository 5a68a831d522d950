package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
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

	"github.com/pdmflow/pdmflow/internal/bench"
	"github.com/pdmflow/pdmflow/kernels"
)

// benchWarmup is the number of untimed runs before the timed ones, as
// bench/pdm_ref.py's timeit.
const benchWarmup = 2

// benchChildFlag is the hidden flag with which `pdmflow bench` runs itself
// again to measure one workload in a process of its own, so that the peak
// RSS it reports is that workload's.
const benchChildFlag = "child"

const benchSynopsis = "bench [--workloads w1,w2,w3] [--iters N] [--rounds N] [--batch N] [--quick] [--torch | --no-torch] [--json] [--cpuprofile FILE (one per workload: FILE.w1 ...)]"

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
}

// ratio is what ranks a row among rounds: its ratio to the reference, or to
// JetStream alone, or its pairs/s when it has neither.
func (r *benchRow) ratio() float64 {
	switch {
	case r.GoOverTorch > 0:
		return r.GoOverTorch
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
	iters := fs.Int("iters", 5, fmt.Sprintf("timed runs per workload, after %d warm-up runs; the median is reported", benchWarmup))
	rounds := fs.Int("rounds", 1, "repeat everything (each workload, then the reference) this many times and report each workload's median round: where the machine's speed drifts, a ratio is only meaningful within one round")
	batch := fs.Int("batch", 32, "pairs per W1 batch, W2 step and W3 take (--quick: 2 unless given)")
	quick := fs.Bool("quick", false, "tiny shapes for smoke tests and CI (batch 2, HR 32, nf 8, nb 1); not comparable with the reference")
	useTorch := fs.Bool("torch", true, "run the PyTorch reference for the Go/torch ratios (with --quick only when given, and without ratios)")
	noTorch := fs.Bool("no-torch", false, "do not run the PyTorch reference")
	script := fs.String("torch-script", filepath.Join("bench", "pdm_ref.py"), "the PyTorch reference script")
	python := fs.String("python", bench.DefaultPython, "the Python that runs the reference (Debian's system python3 with python3-torch)")
	jsonOut := fs.Bool("json", false, "print the results as JSON instead of a table")
	child := fs.String(benchChildFlag, "", "internal: measure this one workload and print its result as JSON")
	hideFlags(fs, benchSynopsis, benchChildFlag)
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	names, err := parseWorkloads(*workloads)
	if err != nil {
		return err
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
		r, err := bench.Run(ctx, *child, s, bench.Options{Iters: *iters, Warmup: benchWarmup, Progress: e.stderr})
		if err != nil {
			return err
		}
		return json.NewEncoder(e.stdout).Encode(r)
	}

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: cannot find this program to run the workloads: %w", err)
	}
	rep := &benchReport{Go: runtime.Version(), Gemm: kernels.GemmKernel(), Threads: c.threads, Iters: *iters,
		Rounds: *rounds, Warmup: benchWarmup, Quick: *quick, Batch: s.Batch}
	// Whether the reference runs, and why not, is the same in every round.
	plan := benchPlan{exe: exe, names: names, s: s, iters: *iters, quick: *quick, python: *python, script: *script}
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
	fmt.Fprintf(w, "pdmflow bench: %s, gemm kernel %s, %d threads; median of %d timed runs after %d warm-up runs%s; %s\n\n",
		rep.Go, rep.Gemm, rep.Threads, rep.Iters, rep.Warmup, rounds, shapes)
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
				case rd.PipelineOverRaw > 0:
					p += fmt.Sprintf(" (pipeline/raw %.3f)", rd.PipelineOverRaw)
				}
				parts = append(parts, p)
			}
			fmt.Fprintf(w, "    rounds: %s\n", strings.Join(parts, "; "))
		}
		if raw := r.Raw; raw != nil {
			fmt.Fprintf(w, "    pipeline %.3f s per run: %.2f pairs/s; JetStream alone (the same %d messages of %.2f MiB: PublishAsync + pull consumer, acked, not decoded): %.3f s, %.2f pairs/s, %.1f MiB/s\n",
				r.Seconds, r.PairsPerSec, raw.Messages, float64(raw.MessageBytes)/(1<<20), raw.Seconds, raw.PairsPerSec, raw.MiBPerSec)
			fmt.Fprintf(w, "    pipeline/raw %.3f: the median of the runs' ratios (%.3f-%.3f; the ratio of the medians is %.3f)\n",
				raw.Ratio, slices.Min(raw.RunRatios), slices.Max(raw.RunRatios), raw.MedianRatio)
			if raw.DeliverySeconds > 0 {
				fmt.Fprintf(w, "    delivery (the same messages into pdmflow's consumer: decode, validation, dedup, pool; no generation): %.3f s, %.2f pairs/s; delivery/raw %.3f (median of the runs' ratios)\n",
					raw.DeliverySeconds, raw.DeliveryPairsPerSec, raw.DeliveryRatio)
			}
		}
	}
	if rep.Torch != nil {
		fmt.Fprintf(w, "torch: %s (one process ran W1 then W2: one peak RSS for both)\n", rep.Torch.Header)
	}
	if rep.TorchNote != "" {
		fmt.Fprintln(w, rep.TorchNote)
	}
}

// num formats a positive number, "-" for none.
func num(v float64, prec int) string {
	if v <= 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// hideFlags makes fs's usage leave out the hidden flags.
func hideFlags(fs *flag.FlagSet, synopsis string, hidden ...string) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pdmflow %s\n\n", synopsis)
		shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		shown.SetOutput(fs.Output())
		fs.VisitAll(func(f *flag.Flag) {
			if !slices.Contains(hidden, f.Name) {
				shown.Var(f.Value, f.Name, f.Usage)
				shown.Lookup(f.Name).DefValue = f.DefValue
			}
		})
		shown.PrintDefaults()
	}
}
