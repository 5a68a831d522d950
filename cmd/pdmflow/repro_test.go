package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/internal/syncbuf"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/trainer"
)

// TestReproduceThroughTheCLI runs a small distributed run as a user would,
// command by command (train --run, two produce, then export, replay
// --compare and regenerate --all), against an embedded JetStream server and
// a file store: the replay is bit-identical to the run and every archived
// pair regenerates bit for bit.
func TestReproduceThroughTheCLI(t *testing.T) {
	b, _ := testutil.JetStream(t)
	dir := t.TempDir()
	hr, lr := filepath.Join(dir, "hr"), filepath.Join(dir, "lr")
	testutil.WriteImages(t, hr, 3, 48, 40, 1)
	testutil.WriteImages(t, lr, 4, 16, 14, 2)
	cfg, err := trainer.Preset("cpu-small")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Name, cfg.Batch, cfg.HRCrop, cfg.Steps = "cli", 4, 24, 10
	cfg.PDM.Kernel = model.KernelConfig{Size: 7, NC: 4, NF: 8, NB: 1, Conv: 1, Init: "box"}
	cfg.PDM.Noise = model.NoiseConfig{Mode: model.NoiseMixed, NC: 2, NF: 4, NB: 1, Conv: 3}
	cfg.Disc = model.DiscConfig{NF: 4, Out: 2, Stride: 1}
	cfg.SR.NF, cfg.SR.NB = 4, 1
	cfg.LogEvery, cfg.SampleEvery, cfg.CheckpointEvery = 1, 0, 5
	cfgFile := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(cfgFile, cfg.YAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	nats := []string{"--nats-url", b.ClientURL()}
	store := "file://" + filepath.Join(dir, "store")
	out := filepath.Join(dir, "run")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := func(args ...string) (string, string, int) {
		var o, e syncbuf.Buffer
		code := run(ctx, args, &o, &e)
		return o.String(), e.String(), code
	}

	pctx, stopProducers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, id := range []string{"p0", "p1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var o, e syncbuf.Buffer
			args := append([]string{"produce", "--run", "cli", "--id", id, "--hr", hr, "--store", store, "--config", cfgFile, "--batch-pairs", "4", "--lag-budget", "4"}, nats...)
			if code := run(pctx, args, &o, &e); code != exitOK && pctx.Err() == nil {
				t.Errorf("produce %s: exit %d\n%s", id, code, e.String())
			}
		}()
	}
	_, e, code := cmd("train", "--nats-url", b.ClientURL(), "--run", "cli", "--store", store, "--lr", lr, "--out", out, "--config", cfgFile, "--publish-every", "3")
	stopProducers()
	wg.Wait()
	if code != exitOK {
		t.Fatalf("train: exit %d\n%s", code, e)
	}

	archiveDir := filepath.Join(dir, "archive")
	if o, e, code := cmd(append([]string{"export", "--run", "cli", "--out", archiveDir}, nats...)...); code != exitOK {
		t.Fatalf("export: exit %d\n%s\n%s", code, o, e)
	}
	o, e, code := cmd("replay", "--archive", archiveDir, "--config", filepath.Join(out, "config.yaml"), "--lr", lr, "--out", filepath.Join(dir, "replay"), "--compare", out)
	if code != exitOK || !strings.Contains(o, "bit-identical") {
		t.Fatalf("replay: exit %d\n%s\n%s", code, o, e)
	}
	o, e, code = cmd("regenerate", "--archive", archiveDir, "--hr", hr, "--store", store, "--all")
	if code != exitOK || !strings.Contains(o, " 0 differ") {
		t.Fatalf("regenerate: exit %d\n%s\n%s", code, o, e)
	}
	t.Log(strings.TrimSpace(o))
	if o, e, code := cmd("regenerate", "--archive", archiveDir, "--hr", hr, "--store", store, "--seq", "2-5,9"); code != exitOK || !strings.Contains(o, "of 5 messages") {
		t.Fatalf("regenerate --seq 2-5,9: exit %d\n%s\n%s", code, o, e)
	}
	if _, e, code := cmd("regenerate", "--archive", archiveDir, "--hr", hr, "--store", store, "--seq", "5-2"); code != exitUsage || !strings.Contains(e, "N <= M") {
		t.Fatalf("regenerate --seq 5-2: exit %d\n%s", code, e)
	}

	// A replay with another seed is told apart: the comparison can fail.
	other := *cfg
	other.Seed++
	other.StreamPool = 8 * cfg.Batch
	otherFile := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(otherFile, other.YAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	o, _, code = cmd("replay", "--archive", archiveDir, "--config", otherFile, "--lr", lr, "--out", filepath.Join(dir, "other"), "--compare", out)
	if code == exitOK || !strings.Contains(o, "differs") {
		t.Fatalf("a replay with another seed: exit %d, output:\n%s", code, o)
	}
	// Regenerating from other HR images is refused, naming the row.
	otherHR := filepath.Join(dir, "hr2")
	testutil.WriteImages(t, otherHR, 3, 56, 44, 9)
	if _, e, code := cmd("regenerate", "--archive", archiveDir, "--hr", otherHR, "--store", store, "--all"); code == exitOK || !strings.Contains(e, "producer's HR set") {
		t.Fatalf("regenerate from other images: exit %d\n%s", code, e)
	}
}
