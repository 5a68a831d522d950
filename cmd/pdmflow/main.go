// Command pdmflow learns real-world image degradations with PDM (Luo et
// al., CVPR 2022) and uses them to train and run super-resolution networks.
//
//	pdmflow run                      the demo, end to end
//	pdmflow train --hr --lr --out    train PDM and SR together
//	pdmflow produce --run --hr       generate pairs into the stream
//	pdmflow broker --dir             a standalone JetStream server
//	pdmflow degrade --weights --in   apply a trained PDM to HR images
//	pdmflow sr --weights --in        super-resolve LR images
//	pdmflow eval --sr --hr           PSNR and SSIM (RGB or Y, shift-searched), LPIPS, NIQE
//	pdmflow niqe-fit --pristine      a NIQE model of pristine images
//	pdmflow import --in --kind       official PyTorch checkpoints to pdmflow weights
//
// Run `pdmflow help` or `pdmflow COMMAND --help` for the flags.
package main

import (
	"context"
	"errors"
	"fmt"
	flag "github.com/spf13/pflag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pdmflow/pdmflow/internal/progress"
	"github.com/pdmflow/pdmflow/kernels"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what every command gets.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
	stopProfile    func()
	// progress is where long work reports progress: stderr as text, or
	// JSON log records with --log-json.
	progress *progress.Writer
	// describe, when set, makes parse store the command's flag set there
	// and stop the command (errDescribed): how completion and the tests
	// learn each command's flags without running it.
	describe **flag.FlagSet
	// given holds the flags set on the command line (not from the
	// environment), after parse.
	given map[string]bool
}

type command struct {
	group   string // the top-level help's heading
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// Top-level help groups, in order.
var commandGroups = []string{"Start here", "Train and apply", "Measure", "Distributed runs", "The record of a run", "This program"}

var commands = map[string]command{
	"run":        {"Start here", "run the demo end to end: make data, train PDM-SR and a bicubic baseline, compare", cmdRun},
	"presets":    {"Start here", "list the built-in configs, or print one as YAML", cmdPresets},
	"synth":      {"Start here", "build a target set with a known degradation (--dist): real-LR set, HR set, validation pairs, truth.json", cmdSynth},
	"study":      {"Start here", "run the demo for every config, synth distribution and seed; tabulate PSNR/SSIM (mean ± std) and the learned spread", cmdStudy},
	"train":      {"Train and apply", "train PDM and the SR network on HR images (or the pair stream) and real LR images", cmdTrain},
	"degrade":    {"Train and apply", "apply a trained PDM to HR images (deterministic for a seed)", cmdDegrade},
	"sr":         {"Train and apply", "super-resolve LR images with trained SR weights (or bicubic)", cmdSR},
	"import":     {"Train and apply", "convert the official code's PyTorch checkpoints (PDM, discriminator, EDSR, RRDB) or LPIPS weights to pdmflow safetensors", cmdImport},
	"eval":       {"Measure", "PSNR and SSIM of SR images against ground truth (RGB or Y, shift-searched), LPIPS, NIQE", cmdEval},
	"niqe-fit":   {"Measure", "fit a NIQE pristine model (mean and covariance of patch features) on a directory of images", cmdNIQEFit},
	"diversity":  {"Measure", "compare a PDM's sampled degradations with a target set's truth: spread, Wasserstein-1, histograms", cmdDiversity},
	"bench":      {"Measure", "measure workloads W1-W3 (pairs/s, GFLOP/s, peak RSS) against the PyTorch reference", cmdBench},
	"produce":    {"Distributed runs", "generate pairs with the current PDM weights and publish them to JetStream", cmdProduce},
	"broker":     {"Distributed runs", "run a standalone NATS JetStream server for multi-host deployments", cmdBroker},
	"devices":    {"Distributed runs", "show the CPU and GPUs a producer here can generate on (--device)", cmdDevices},
	"health":     {"Distributed runs", "probe HTTP health endpoints (container health checks): exit 0 when all answer 2xx", cmdHealth},
	"export":     {"The record of a run", "copy a range of the pair stream into an archive (exact bytes), or write it as a dataset (--format basicsr|parquet)", cmdExport},
	"inspect":    {"The record of a run", "show the stream and its consumers, an archive, or one sample as JSON and PNGs", cmdInspect},
	"replay":     {"The record of a run", "train again on a recorded stream (an archive, or the stream from a sequence or time): bit-identical on CPU", cmdReplay},
	"regenerate": {"The record of a run", "recompute archived pairs from their seeds, crops and weights and check them bit for bit", cmdRegenerate},
	"version":    {"This program", "print the version (also pdmflow --version)", cmdVersion},
}

// errUsage marks errors in how the command was called (exit code 2).
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintf(w, "pdmflow learns the degradation of real low-resolution images (PDM) and trains super-resolution on it.\n\nUsage: pdmflow COMMAND [flags]\n")
	for _, g := range commandGroups {
		var names []string
		for n, c := range commands {
			if c.group == g {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		fmt.Fprintf(w, "\n%s:\n", g)
		for _, n := range names {
			fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
		}
	}
	fmt.Fprintf(w, "\nRun 'pdmflow COMMAND --help' for a command's flags; every flag can also be set from the environment\n(--flag-name as %sFLAG_NAME).\n", envPrefix)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "__complete" || args[0] == "__completeNoDesc") {
		return complete(ctx, args, stdout, stderr)
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args = []string{"version"}
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			args = []string{args[1], "--help"}
		} else {
			usage(stdout)
			if len(args) == 0 {
				return exitUsage
			}
			return exitOK
		}
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "pdmflow: unknown command %q%s\n\n", args[0], suggest(args[0]))
		usage(stderr)
		return exitUsage
	}
	e := &env{stdout: stdout, stderr: stderr, log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		progress: progress.NewWriter(stderr)}
	err := runCommand(ctx, c, e, args[1:])
	if e.stopProfile != nil {
		e.stopProfile()
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "pdmflow %s: %v\n", args[0], err)
		return exitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "pdmflow %s: interrupted\n", args[0])
		return exitInterrupted
	default:
		fmt.Fprintf(stderr, "pdmflow %s: %v\n", args[0], err)
		return exitFailure
	}
}

// runCommand runs a command, turning a panic (a bug: input from disk or
// the network must give errors) into an error of one line, so that no
// stack trace reaches the user.
func runCommand(ctx context.Context, c command, e *env, args []string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error (a bug; please report it with the command line): %s", strings.ReplaceAll(fmt.Sprint(p), "\n", " "))
		}
	}()
	return c.run(ctx, e, args)
}

// flags starts a command's flag set with the options every command has.
type common struct {
	threads    int
	logLevel   string
	logJSON    bool
	cpuProfile string
}

func newFlags(e *env, name, synopsis string) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(e.stderr)
	c := &common{}
	countVar(fs, &c.threads, "threads", runtime.GOMAXPROCS(0), "compute threads")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&c.logJSON, "log-json", false, "log as JSON lines instead of text (progress included)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	fs.Usage = func() { printUsage(fs.Output(), fs, synopsis) }
	return fs, c
}

// errDescribed ends a command run by describe at its flag parsing.
var errDescribed = errors.New("described")

// parse parses args and applies the common options. GNU style: --flag
// value or --flag=value, anywhere among the arguments; -flag is taken as
// --flag for a flag of that name (the Go flag package's form, which old
// scripts use). Every flag not given is then taken from its environment
// variable (envName), if set.
func parse(fs *flag.FlagSet, c *common, e *env, args []string) error {
	if e.describe != nil {
		*e.describe = fs
		return errDescribed
	}
	// pflag prints the whole usage with every error; a bad value gets one
	// line instead (run prints it), --help the usage.
	out := fs.Output()
	fs.SetOutput(io.Discard)
	args, notes := renamed(fs.Name(), longDashes(fs, args))
	err := fs.Parse(args)
	fs.SetOutput(out)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// Asked for: to stdout, so that it pipes into a pager.
			fs.SetOutput(e.stdout)
			fs.Usage()
			fs.SetOutput(out)
			return err
		}
		return fmt.Errorf("%w: %v (see pdmflow %s --help)", errUsage, err, fs.Name())
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q (every input is a --flag; see pdmflow %s --help)", errUsage, strings.Join(fs.Args(), " "), fs.Name())
	}
	e.given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { e.given[f.Name] = true })
	if err := applyEnv(fs, os.Getenv); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q", errUsage, c.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.logJSON {
		e.log = slog.New(slog.NewJSONHandler(e.stderr, opts))
		e.progress.SetJSON(e.log)
	} else {
		e.log = slog.New(slog.NewTextHandler(e.stderr, opts))
	}
	for _, n := range notes {
		e.log.Warn(n)
	}
	if c.threads < 1 {
		return fmt.Errorf("%w: --threads must be at least 1", errUsage)
	}
	kernels.SetWorkers(c.threads)
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		e.stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
	}
	return nil
}

// longDashes turns -name and -name=value into --name... when name is a
// flag of fs (pdmflow has no one-letter flags but -h).
func longDashes(fs *flag.FlagSet, args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if fs.Lookup(name) != nil {
				out[i] = "-" + a
			}
		}
	}
	return out
}

// required reports, in one error, every required flag left empty.
func required(flags map[string]string) error { return missingFlags(nil, flags) }

func cmdVersion(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "version", "version")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "pdmflow %s (%s, gemm kernel %s)\n", version, runtime.Version(), kernels.GemmKernel())
	return nil
}

// Number flags that refuse what makes no sense, at parse time, with a
// message naming the flag (the flag package adds it): a count or size of
// zero or less, a negative border, interval or seed.

// intFlag is an int flag of at least min; with zeroOK, 0 is allowed too
// and means the default the usage names.
type intFlag struct {
	p      *int
	min    int
	zeroOK bool
}

func (f intFlag) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.Itoa(*f.p)
}

// Type names the value in help.
func (f intFlag) Type() string { return "int" }

func (f intFlag) Set(s string) error {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, strconv.IntSize)
	if err != nil {
		return errors.New("want an integer")
	}
	switch {
	case v == 0 && f.zeroOK:
	case v < int64(f.min) && f.zeroOK:
		return fmt.Errorf("must be 0 (the default) or at least %d", f.min)
	case v < int64(f.min):
		return fmt.Errorf("must be at least %d", f.min)
	}
	*f.p = int(v)
	return nil
}

// countVar defines an int flag of at least 1.
func countVar(fs *flag.FlagSet, p *int, name string, def int, usage string) {
	*p = def
	fs.Var(intFlag{p: p, min: 1}, name, usage)
}

// optCountVar defines an int flag of at least 1, or 0 for the default.
func optCountVar(fs *flag.FlagSet, p *int, name string, def int, usage string) {
	*p = def
	fs.Var(intFlag{p: p, min: 1, zeroOK: true}, name, usage)
}

// natVar defines an int flag of at least 0.
func natVar(fs *flag.FlagSet, p *int, name string, def int, usage string) {
	*p = def
	fs.Var(intFlag{p: p, min: 0}, name, usage)
}

func count(fs *flag.FlagSet, name string, def int, usage string) *int {
	p := new(int)
	countVar(fs, p, name, def, usage)
	return p
}

func optCount(fs *flag.FlagSet, name string, def int, usage string) *int {
	p := new(int)
	optCountVar(fs, p, name, def, usage)
	return p
}

func nat(fs *flag.FlagSet, name string, def int, usage string) *int {
	p := new(int)
	natVar(fs, p, name, def, usage)
	return p
}

// durationFlag is a duration flag of at least min (0 always allowed with
// zeroOK).
type durationFlag struct {
	p      *time.Duration
	min    time.Duration
	zeroOK bool
}

func (f durationFlag) String() string {
	if f.p == nil {
		return "0s"
	}
	return f.p.String()
}

// Type names the value in help.
func (f durationFlag) Type() string { return "duration" }

func (f durationFlag) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("want a duration such as 500ms, 30s or 2m")
	}
	switch {
	case v == 0 && f.zeroOK:
	case v < f.min:
		return fmt.Errorf("must be at least %s", f.min)
	}
	*f.p = v
	return nil
}

// durationVar defines a duration flag that must be positive, or (zeroOK)
// zero for the default.
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, zeroOK bool, usage string) {
	*p = def
	fs.Var(durationFlag{p: p, min: time.Nanosecond, zeroOK: zeroOK}, name, usage)
}

// seedFlag is a seed: any number from 0 up; its unset value (-1) means
// "the config's".
type seedFlag struct{ p *int64 }

func (f seedFlag) String() string {
	if f.p == nil || *f.p < 0 {
		return ""
	}
	return strconv.FormatInt(*f.p, 10)
}

// Type names the value in help.
func (f seedFlag) Type() string { return "int" }

func (f seedFlag) Set(s string) error {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || v < 0 {
		return errors.New("want a number from 0 to 9223372036854775807")
	}
	*f.p = v
	return nil
}

// seed defines a --seed flag (-1 when not given).
func seed(fs *flag.FlagSet, usage string) *int64 {
	p := new(int64)
	*p = -1
	fs.Var(seedFlag{p}, "seed", usage)
	return p
}
