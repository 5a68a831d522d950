package progress

import (
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
