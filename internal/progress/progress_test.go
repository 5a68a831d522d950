package progress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	now := time.Unix(0, 0)
	m := &Meter{Unit: "steps", Total: 100, PerUnit: 16, RateUnit: "pairs/s", now: func() time.Time { return now }}
	m.Start(20)
	if l := m.Line(20, ""); !strings.Contains(l, "steps 20/100 (20%)") || strings.Contains(l, "ETA") {
		t.Fatalf("at start: %q", l)
	}
	now = now.Add(10 * time.Second)
	l := m.Line(30, "loss 0.5")
	// 10 steps in 10 s: 1 step/s = 16 pairs/s, 70 steps left = 70 s.
	for _, want := range []string{"steps 30/100 (30%)", "loss 0.5", "16.00 pairs/s", "elapsed 10s", "ETA 1m10s"} {
		if !strings.Contains(l, want) {
			t.Errorf("%q lacks %q", l, want)
		}
	}
}

// TestJSON: in JSON mode a progress report is one log record with its
// numbers as attributes, and any other line written is one record too.
func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.SetJSON(slog.New(slog.NewJSONHandler(&buf, nil)))
	now := time.Unix(0, 0)
	m := &Meter{Out: w, Unit: "step", Total: 10, PerUnit: 4, RateUnit: "pairs/s", now: func() time.Time { return now }}
	m.Start(0)
	now = now.Add(2 * time.Second)
	m.Print(2, "l1 0.25 d 0.5")
	fmt.Fprintf(w, "a plain line\nand another\n")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["msg"] != "progress" || rec["done"] != 2.0 || rec["l1"] != 0.25 || rec["rate"] != 4.0 || rec["eta_s"] != 8.0 {
		t.Errorf("record %v", rec)
	}
	for _, l := range lines[1:] {
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["line"] == nil {
			t.Errorf("%q: %v", l, err)
		}
	}
	w.SetJSON(nil)
	buf.Reset()
	m.Print(3, "")
	if !strings.HasPrefix(buf.String(), "step 3/10") {
		t.Errorf("text mode: %q", buf.String())
	}
}
