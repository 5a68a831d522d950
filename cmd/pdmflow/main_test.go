package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpEveryCommand: every command answers --help with exit code 0 and
// a usage line, and the top-level help lists every command.
func TestHelpEveryCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"help"}, &out, &errOut); code != exitOK {
		t.Fatalf("help: exit %d", code)
	}
	for name := range commands {
		if !strings.Contains(out.String(), "  "+name+" ") {
			t.Errorf("help does not list %q", name)
		}
		var o, e bytes.Buffer
		if code := run(context.Background(), []string{name, "--help"}, &o, &e); code != exitOK {
			t.Errorf("%s --help: exit %d", name, code)
		}
		if !strings.Contains(o.String(), "Usage: pdmflow "+name) || e.Len() != 0 {
			t.Errorf("%s --help prints no usage line to stdout, or something to stderr:\n%s%s", name, o.String(), e.String())
		}
	}
}

// TestUsageErrors: missing or contradictory flags exit with code 2 and say
// which flag.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--out", "x"}, "--hr is required"},
		{[]string{"train", "--nats-url", "nats://127.0.0.1:1", "--out", "x"}, "--nats-url needs --run"},
		{[]string{"train", "--nats-url", "nats://127.0.0.1:1", "--run", "r", "--hr", "a", "--out", "x"}, "exclude each other"},
		{[]string{"produce", "--hr", "a"}, "--run is required"},
		{[]string{"produce", "--run", "r", "--hr", "a", "--nats-user", "u", "--nats-token", "t"}, "auth"},
		{[]string{"degrade", "--in", "a", "--out", "b"}, "--weights is required"},
		{[]string{"sr", "--in", "a", "--out", "b"}, "either --weights or --bicubic"},
		{[]string{"nosuch"}, "unknown command"},
	} {
		var o, e bytes.Buffer
		code := run(context.Background(), tc.args, &o, &e)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, code, exitUsage, e.String())
		}
		if !strings.Contains(e.String(), tc.want) {
			t.Errorf("%v: %q does not say %q", tc.args, e.String(), tc.want)
		}
	}
}
