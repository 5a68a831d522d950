package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/internal/testutil"
)

// TestLogJSONEveryLine: with --log-json every line a long job writes to
// stderr, its progress lines included, is one JSON object.
func TestLogJSONEveryLine(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	testutil.WriteImages(t, in, 3, 20, 16, 1)
	var o, e bytes.Buffer
	code := run(context.Background(), []string{"sr", "--bicubic", "--scale", "2", "--in", in, "--out", filepath.Join(out, "sr"), "--log-json"}, &o, &e)
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, e.String())
	}
	lines := strings.Split(strings.TrimSpace(e.String()), "\n")
	progress := 0
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("not JSON: %q", l)
			continue
		}
		if rec["msg"] == "progress" {
			progress++
		}
	}
	if progress == 0 {
		t.Errorf("no progress records in:\n%s", e.String())
	}
}
