// Package progress prints the progress of long work: done/total, a rate,
// the elapsed time and an ETA, plus free-form fields (losses, say).
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Meter measures progress towards Total units. Rates and ETAs count only
// the units done since Start (a resumed run starts part way).
type Meter struct {
	Out   io.Writer
	Unit  string // "steps", "images"
	Total int
	// PerUnit converts units into what the rate is reported in (pairs per
	// step, say); 0 means 1.
	PerUnit  float64
	RateUnit string // "pairs/s"; defaults to Unit + "/s"

	mu        sync.Mutex
	start     time.Time
	startDone int
	now       func() time.Time
}

// Start begins timing with done units already complete.
func (m *Meter) Start(done int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.now == nil {
		m.now = time.Now
	}
	m.start = m.now()
	m.startDone = done
}

// Line renders one progress line for done units and extra fields.
func (m *Meter) Line(done int, fields string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.now == nil {
		m.now = time.Now
		m.start = m.now()
	}
	el := m.now().Sub(m.start)
	n := done - m.startDone
	var b strings.Builder
	pct := 0.0
	if m.Total > 0 {
		pct = 100 * float64(done) / float64(m.Total)
	}
	fmt.Fprintf(&b, "%s %d/%d (%.0f%%)", m.Unit, done, m.Total, pct)
	if fields != "" {
		b.WriteString("  ")
		b.WriteString(fields)
	}
	per := m.PerUnit
	if per == 0 {
		per = 1
	}
	ru := m.RateUnit
	if ru == "" {
		ru = m.Unit + "/s"
	}
	if n > 0 && el > 0 {
		rate := float64(n) / el.Seconds()
		fmt.Fprintf(&b, "  | %.2f %s", rate*per, ru)
		eta := time.Duration(float64(m.Total-done) / rate * float64(time.Second))
		fmt.Fprintf(&b, "  elapsed %s  ETA %s", Round(el), Round(eta))
	} else {
		fmt.Fprintf(&b, "  | elapsed %s", Round(el))
	}
	return b.String()
}

// Print writes Line to Out.
func (m *Meter) Print(done int, fields string) {
	if m.Out != nil {
		fmt.Fprintln(m.Out, m.Line(done, fields))
	}
}

// Round shortens a duration for display: whole seconds, or tenths below 10 s.
func Round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
