package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/internal/bench"
	"github.com/pdmflow/pdmflow/internal/syncbuf"
)

// envBenchChild makes the test binary act as pdmflow: `pdmflow bench`
// runs its workloads by executing itself (os.Executable), which in tests
// is this binary.
const envBenchChild = "PDMFLOW_TEST_AS_PDMFLOW"

func TestMain(m *testing.M) {
	if os.Getenv(envBenchChild) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestBenchQuickJSON(t *testing.T) {
	t.Setenv(envBenchChild, "1")
	var stdout, stderr syncbuf.Buffer
	code := run(t.Context(), []string{"bench", "--quick", "--iters", "1", "--no-torch", "--json", "--threads", "2"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	t.Logf("stderr:\n%s", stderr.String())
	var rep benchReport
	dec := json.NewDecoder(strings.NewReader(stdout.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, stdout.String())
	}
	if len(rep.Workloads) != 3 || !rep.Quick || rep.Iters != 1 || rep.Batch != 2 || rep.Torch != nil || rep.TorchNote == "" {
		t.Fatalf("report %+v", rep)
	}
	for i, want := range []string{"w1", "w2", "w3"} {
		r := rep.Workloads[i]
		if r.Result == nil || r.Workload != want {
			t.Fatalf("workload %d is %+v, want %s", i, r.Result, want)
		}
		for what, v := range map[string]float64{"pairs/s": r.PairsPerSec, "peak RSS": r.PeakRSSMiB} {
			if !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("%s: %s = %g", want, what, v)
			}
		}
		if (want == "w3") != (r.GFLOPS == 0) || (want == "w3") != (r.Raw != nil) {
			t.Errorf("%s: GFLOP/s %g, raw %+v", want, r.GFLOPS, r.Raw)
		}
		if r.GoOverTorch != 0 {
			t.Errorf("%s: a ratio without the reference", want)
		}
	}
}

func TestBenchTable(t *testing.T) {
	t.Setenv(envBenchChild, "1")
	var stdout, stderr syncbuf.Buffer
	// The reference's Python is missing: the Go numbers come alone, with a
	// plain message.
	code := run(t.Context(), []string{"bench", "--quick", "--iters", "1", "--workloads", "w1", "--torch", "--python", "/nonexistent/python3", "--torch-script", "../../bench/pdm_ref.py"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Logf("stdout:\n%s", out)
	for _, want := range []string{"QUICK shapes", "w1 producer", "b2 hr32", "PDM forward, batch 2, HR 32->8",
		"PyTorch reference not available: install python3-torch (apt-get install -y python3-torch) to get ratios (/nonexistent/python3: "} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output", want)
		}
	}
	if strings.Contains(out, "w2 trainer") {
		t.Error("w2 ran although --workloads w1")
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--workloads", "w4"},
		{"bench", "--iters", "0"},
		{"bench", "--batch", "1"},
		{"bench", "--torch", "--no-torch"},
		{"bench", "--precision", "bf16"},    // a GPU's precision without a GPU
		{"bench", "--gpu-batches", "32,64"}, // likewise
		{"bench", "--device", "cuda:all"},   // bench measures one device
		{"bench", "--device", "auto"},
		{"bench", "--device", "cuda:0", "--precision", "fp16"},
		{"bench", "--device", "cuda:0", "--gpu-batches", "32,0"},
		{"bench", "--device", "cuda:0", "--gpu-batches", "32,32"},
		{"bench", "--device", "cuda:0", "--workloads", "w1,w2"}, // the trainer has no GPU path
	} {
		var stdout, stderr syncbuf.Buffer
		if code := run(t.Context(), args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitUsage, stderr.String())
		}
	}
	var stdout, stderr syncbuf.Buffer
	if code := run(t.Context(), []string{"bench", "--help"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("--help: exit %d", code)
	}
	if help := stdout.String(); !strings.Contains(help, "--workloads") || strings.Contains(help, "--child") {
		t.Errorf("--help shows the hidden flag or not the others:\n%s", help)
	}
}

// medianRounds keeps each workload's median round by its ratio (to torch,
// to JetStream alone, or pairs/s without either) and records every round.
func TestBenchMedianRounds(t *testing.T) {
	row := func(name string, pairs, torch float64, raw float64) benchRow {
		r := benchRow{Result: &bench.Result{Workload: name, PairsPerSec: pairs}, TorchPairsPerSec: torch}
		if torch > 0 {
			r.GoOverTorch = pairs / torch
		}
		if raw > 0 {
			r.Raw = &bench.Raw{Ratio: raw}
		}
		return r
	}
	rounds := [][]benchRow{
		{row("w1", 80, 100, 0), row("w3", 5000, 0, 0.84)},
		{row("w1", 60, 50, 0), row("w3", 5200, 0, 1.06)},
		{row("w1", 90, 60, 0), row("w3", 4000, 0, 0.91)},
	}
	got := medianRounds(rounds)
	if len(got) != 2 {
		t.Fatalf("%d rows", len(got))
	}
	// w1 ratios 0.8, 1.2, 1.5: the median round is the second, whatever
	// its pairs/s.
	if got[0].PairsPerSec != 60 || got[0].GoOverTorch != 1.2 {
		t.Errorf("w1: %+v, want the round of ratio 1.2", got[0])
	}
	if got[1].PairsPerSec != 4000 || got[1].Raw.Ratio != 0.91 {
		t.Errorf("w3: %+v, want the round of pipeline/raw 0.91", got[1])
	}
	if len(got[0].Rounds) != 3 || got[0].Rounds[2].GoOverTorch != 1.5 || got[1].Rounds[1].PipelineOverRaw != 1.06 {
		t.Errorf("rounds %+v / %+v", got[0].Rounds, got[1].Rounds)
	}
	if one := medianRounds(rounds[:1]); one[0].Rounds != nil {
		t.Error("one round recorded as rounds")
	}
}

// --rounds 2 runs every workload twice and reports both rounds.
func TestBenchRounds(t *testing.T) {
	t.Setenv(envBenchChild, "1")
	var stdout, stderr syncbuf.Buffer
	code := run(t.Context(), []string{"bench", "--quick", "--iters", "1", "--rounds", "2", "--workloads", "w1", "--no-torch", "--json"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Rounds != 2 || len(rep.Workloads) != 1 || len(rep.Workloads[0].Rounds) != 2 {
		t.Fatalf("report %+v", rep)
	}
	if n := strings.Count(stderr.String(), "bench: w1 "); n != 2 {
		t.Errorf("w1 measured %d times, want 2:\n%s", n, stderr.String())
	}
}
