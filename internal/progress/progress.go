// Package progress prints the progress of long work: done/total, a rate,
// the elapsed time and an ETA, plus free-form fields (losses, say).
package progress

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
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

// stats are a progress report's numbers.
type stats struct {
	pct, rate float64 // rate in RateUnit; 0 before the first unit
	rateUnit  string
	el, eta   time.Duration
}

func (m *Meter) stats(done int) stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.now == nil {
		m.now = time.Now
		m.start = m.now()
	}
	var s stats
	s.el = m.now().Sub(m.start)
	n := done - m.startDone
	if m.Total > 0 {
		s.pct = 100 * float64(done) / float64(m.Total)
	}
	per := m.PerUnit
	if per == 0 {
		per = 1
	}
	s.rateUnit = m.RateUnit
	if s.rateUnit == "" {
		s.rateUnit = m.Unit + "/s"
	}
	if n > 0 && s.el > 0 {
		rate := float64(n) / s.el.Seconds()
		s.rate = rate * per
		s.eta = time.Duration(float64(m.Total-done) / rate * float64(time.Second))
	}
	return s
}

// Line renders one progress line for done units and extra fields.
func (m *Meter) Line(done int, fields string) string {
	st := m.stats(done)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d/%d (%.0f%%)", m.Unit, done, m.Total, st.pct)
	if fields != "" {
		b.WriteString("  ")
		b.WriteString(fields)
	}
	if st.rate > 0 {
		fmt.Fprintf(&b, "  | %.2f %s", st.rate, st.rateUnit)
		fmt.Fprintf(&b, "  elapsed %s  ETA %s", Round(st.el), Round(st.eta))
	} else {
		fmt.Fprintf(&b, "  | elapsed %s", Round(st.el))
	}
	return b.String()
}

// Print writes Line to Out; when Out is a Writer in JSON mode, one log
// record with the numbers as attributes instead (fields given as
// "name value name value ..." become attributes of those names).
func (m *Meter) Print(done int, fields string) {
	if m.Out == nil {
		return
	}
	if w, ok := m.Out.(*Writer); ok {
		if log := w.logger(); log != nil {
			st := m.stats(done)
			attrs := []any{"unit", m.Unit, "done", done, "total", m.Total, "percent", st.pct, "elapsed_s", st.el.Seconds()}
			if st.rate > 0 {
				attrs = append(attrs, "rate", st.rate, "rate_unit", st.rateUnit, "eta_s", st.eta.Seconds())
			}
			attrs = append(attrs, fieldAttrs(fields)...)
			log.Info("progress", attrs...)
			return
		}
	}
	fmt.Fprintln(m.Out, m.Line(done, fields))
}

// fieldAttrs turns "a 1 b 2.5" into attributes a=1, b=2.5; anything else
// into one attribute "fields".
func fieldAttrs(fields string) []any {
	f := strings.Fields(fields)
	if len(f) == 0 {
		return nil
	}
	if len(f)%2 == 0 {
		var attrs []any
		for i := 0; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i+1], 64)
			if err != nil {
				return []any{"fields", fields}
			}
			attrs = append(attrs, f[i], v)
		}
		return attrs
	}
	return []any{"fields", fields}
}

// Writer is where a command's progress goes: text lines to an io.Writer,
// or, after SetJSON, one structured log record per line (Meter.Print) or
// per line written (anything else), so that with JSON logs every line of
// the output is a JSON object.
type Writer struct {
	mu  sync.Mutex
	out io.Writer
	log *slog.Logger
}

// NewWriter writes progress as text to out.
func NewWriter(out io.Writer) *Writer { return &Writer{out: out} }

// SetJSON sends progress to log instead (nil: back to text).
func (w *Writer) SetJSON(log *slog.Logger) {
	w.mu.Lock()
	w.log = log
	w.mu.Unlock()
}

func (w *Writer) logger() *slog.Logger {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log
}

// Write writes p as text, or each of its lines as a log record "progress"
// with attribute line.
func (w *Writer) Write(p []byte) (int, error) {
	log := w.logger()
	if log == nil {
		return w.out.Write(p)
	}
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if l != "" {
			log.Info("progress", "line", l)
		}
	}
	return len(p), nil
}

// Round shortens a duration for display: whole seconds, or tenths below 10 s.
func Round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
