package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/internal/syncbuf"
)

// TestBadNumbersRejected: a negative or zero count, size, border, interval
// or seed where none makes sense is a usage error (exit 2) on every
// command, in one line that names the flag, before anything runs.
func TestBadNumbersRejected(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"train", "--hr", dir, "--lr", dir, "--out", dir, "--steps", "-3"}, "steps"},
		{[]string{"train", "--nats-url", "nats://127.0.0.1:1", "--run", "r", "--out", dir, "--lr", dir, "--publish-every", "-1"}, "publish-every"},
		{[]string{"train", "--hr", dir, "--lr", dir, "--out", dir, "--seed", "-2"}, "seed"},
		{[]string{"train", "--hr", dir, "--lr", dir, "--out", dir, "--threads", "0"}, "threads"},
		{[]string{"produce", "--run", "r", "--hr", dir, "--hr-crop", "-8"}, "hr-crop"},
		{[]string{"produce", "--run", "r", "--hr", dir, "--batch-pairs", "-1"}, "batch-pairs"},
		{[]string{"produce", "--run", "r", "--hr", dir, "--lag-budget", "-2"}, "lag-budget"},
		{[]string{"produce", "--run", "r", "--hr", dir, "--batches", "-4"}, "batches"},
		{[]string{"produce", "--run", "r", "--hr", dir, "--ack-timeout", "-1s"}, "ack-timeout"},
		{[]string{"produce", "--run", "r", "--hr", dir, "--replicas", "-1"}, "replicas"},
		{[]string{"produce", "--run", "r", "--hr", dir, "--stream-max-age", "-1h"}, "stream-max-age"},
		{[]string{"produce", "--run", "r", "--hr", dir, "--stream-max-bytes", "-5"}, "stream-max-bytes"},
		{[]string{"degrade", "--weights", "w", "--in", dir, "--out", dir + "/o", "--per-image", "0"}, "per-image"},
		{[]string{"degrade", "--weights", "w", "--in", dir, "--out", dir + "/o", "--per-image", "-2"}, "per-image"},
		{[]string{"degrade", "--weights", "w", "--in", dir, "--out", dir + "/o", "--tile", "-1"}, "tile"},
		{[]string{"sr", "--bicubic", "--scale", "0", "--in", dir, "--out", dir + "/o"}, "scale"},
		{[]string{"sr", "--bicubic", "--scale", "-4", "--in", dir, "--out", dir + "/o"}, "scale"},
		{[]string{"sr", "--weights", "w", "--tile", "-1", "--in", dir, "--out", dir + "/o"}, "tile"},
		{[]string{"eval", "--sr", dir, "--hr", dir, "--border", "-5"}, "border"},
		{[]string{"run", "--steps", "-3"}, "steps"},
		{[]string{"run", "--producers", "0"}, "producers"},
		{[]string{"replay", "--archive", dir, "--config", "c", "--out", dir, "--steps", "-1"}, "steps"},
		{[]string{"inspect", "--zoom", "0"}, "zoom"},
		{[]string{"bench", "--iters", "0"}, "iters"},
		{[]string{"bench", "--rounds", "-1"}, "rounds"},
		{[]string{"bench", "--batch", "0"}, "batch"},
		{[]string{"health", "--timeout", "0s", "http://127.0.0.1:1"}, "timeout"},
		{[]string{"health", "--interval", "-1s", "--wait", "1s", "http://127.0.0.1:1"}, "interval"},
		{[]string{"health", "--wait", "-1s", "http://127.0.0.1:1"}, "wait"},
		{[]string{"broker", "--dir", dir, "--max-payload", "0"}, "max-payload"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		var stdout, stderr syncbuf.Buffer
		code := run(ctx, tc.args, &stdout, &stderr)
		cancel()
		msg := strings.TrimSpace(stderr.String())
		if code != exitUsage || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.flag) {
			t.Errorf("%q: exit %d, want %d and one line naming --%s:\n%s", tc.args, code, exitUsage, tc.flag, msg)
		}
	}
}

// TestNoPanicReachesTheUser: a command that panics prints one line and
// exits 1, not a stack trace.
func TestNoPanicReachesTheUser(t *testing.T) {
	commands["panic-test"] = command{"", "", func(context.Context, *env, []string) error { panic("boom") }}
	defer delete(commands, "panic-test")
	var stdout, stderr syncbuf.Buffer
	code := run(t.Context(), []string{"panic-test"}, &stdout, &stderr)
	msg := strings.TrimSpace(stderr.String())
	if code != exitFailure || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "boom") || strings.Contains(msg, "goroutine") {
		t.Fatalf("a panicking command: exit %d, output:\n%s", code, msg)
	}
}
