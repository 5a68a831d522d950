package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits on what a Dashboard keeps.
const (
	// maxRuns is how many training runs the page can show (the demo trains
	// three or four one after another); older ones are dropped.
	maxRuns = 8
	// maxPoints bounds a series: beyond it every other point of the series
	// is dropped, so that the older part gets coarser and the recent part
	// keeps every report.
	maxPoints = 1000
	// maxWarningLog bounds a run's log of warnings as they began.
	maxWarningLog = 100
)

// Options configure a Dashboard.
type Options struct {
	// Title names the process on the page ("pdmflow train runs/r1").
	Title string
	// Metrics, when set, is the process's Prometheus registry: the stream
	// panel reads the producers' and the trainer's metrics
	// (pdmflow_producer_*, pdmflow_trainer_*) from it once a second while
	// the server runs. Nil: no stream panel.
	Metrics prometheus.Gatherer
	// Log takes the server's messages (nil: none).
	Log *slog.Logger
}

// Dashboard keeps what the page shows and serves it. Its observer methods
// (Begin, Report, Sample, Warnings, Picture) and its handlers may be called
// from any goroutine.
type Dashboard struct {
	opt   Options
	start time.Time

	mu       sync.Mutex
	runs     []*run
	pictures map[string]*picture
	version  uint64 // of the pictures, to tell the page which changed
	stream   *sampler
}

// run is one training run's history.
type run struct {
	Name     string             `json:"name"`
	Config   string             `json:"config"`
	FromStep int                `json:"from_step"`
	Step     int                `json:"step"`
	Steps    int                `json:"steps"`
	Started  float64            `json:"started"` // seconds since the dashboard started
	Updated  float64            `json:"updated"`
	Series   map[string]*series `json:"series"`
	// Samples are the latest values of each quantity of the learned
	// distribution (Sample), and the step they are of.
	Samples map[string]samples `json:"samples"`
	// Warnings are the monitor's warnings in force; WarningLog when each
	// kind of warning began.
	Warnings     []string       `json:"warnings"`
	WarningsStep int            `json:"warnings_step"`
	WarningLog   []warningEvent `json:"warning_log"`
}

type samples struct {
	Step   int       `json:"step"`
	Values []float64 `json:"values"`
}

type warningEvent struct {
	Step int    `json:"step"`
	Text string `json:"text"`
}

// series is a curve of (x, y) points, thinned beyond maxPoints.
type series struct{ pts [][2]float64 }

func (s *series) add(x, y float64, limit int) {
	if len(s.pts) >= limit {
		n := 0
		for i := 0; i < len(s.pts); i += 2 {
			s.pts[n] = s.pts[i]
			n++
		}
		s.pts = s.pts[:n]
	}
	s.pts = append(s.pts, [2]float64{x, y})
}

func (s *series) MarshalJSON() ([]byte, error) {
	if s.pts == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(s.pts)
}

// picture is the latest PNG of one name.
type picture struct {
	png     []byte
	Run     string `json:"run"`
	Step    int    `json:"step"`
	Version uint64 `json:"version"`
	Width   int    `json:"width"`
	Height  int    `json:"height"`
}

// New makes a dashboard. Serve (or Handler) serves it.
func New(o Options) *Dashboard {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Title == "" {
		o.Title = "pdmflow"
	}
	d := &Dashboard{opt: o, start: time.Now(), pictures: map[string]*picture{}}
	if o.Metrics != nil {
		d.stream = newSampler(o.Metrics, d.start)
	}
	return d
}

func (d *Dashboard) since(t time.Time) float64 { return t.Sub(d.start).Seconds() }

// current is the run observations go to; a run that began without Begin
// is an unnamed one. d.mu must be held.
func (d *Dashboard) current() *run {
	if len(d.runs) == 0 {
		d.begin("", "", 0, 0)
	}
	return d.runs[len(d.runs)-1]
}

func (d *Dashboard) begin(name, config string, step, steps int) {
	now := d.since(time.Now())
	d.runs = append(d.runs, &run{Name: name, Config: config, FromStep: step, Step: step, Steps: steps, Started: now, Updated: now,
		Series: map[string]*series{}, Samples: map[string]samples{}, Warnings: []string{}, WarningLog: []warningEvent{}})
	if len(d.runs) > maxRuns {
		d.runs = append(d.runs[:0], d.runs[len(d.runs)-maxRuns:]...)
	}
}

// Begin starts the history of a new run (trainer.Observer).
func (d *Dashboard) Begin(name, config string, step, steps int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.begin(name, config, step, steps)
}

// Report adds a report's values to the current run's curves
// (trainer.Observer). NaN and infinite values are dropped.
func (d *Dashboard) Report(step int, values map[string]float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.current()
	r.Step = max(r.Step, step)
	r.Updated = d.since(time.Now())
	for k, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		s := r.Series[k]
		if s == nil {
			s = &series{}
			r.Series[k] = s
		}
		s.add(float64(step), v, maxPoints)
	}
}

// Sample replaces the current run's values of a quantity of the learned
// distribution (trainer.Observer). NaN and infinite values are dropped.
func (d *Dashboard) Sample(step int, quantity string, values []float64) {
	vs := make([]float64, 0, len(values))
	for _, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			vs = append(vs, v)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.current()
	r.Samples[quantity] = samples{Step: step, Values: vs}
}

// Warnings sets the current run's warnings in force, logging those that
// were not in force before (trainer.Observer).
func (d *Dashboard) Warnings(step int, active []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.current()
	was := map[string]bool{}
	for _, w := range r.Warnings {
		was[w] = true
	}
	for _, w := range active {
		if !was[w] && len(r.WarningLog) < maxWarningLog {
			r.WarningLog = append(r.WarningLog, warningEvent{Step: step, Text: w})
		}
	}
	r.Warnings = append([]string{}, active...)
	r.WarningsStep = step
}

// Picture keeps the latest PNG of a name (trainer.Observer). A picture
// that does not decode as a PNG is dropped and logged.
func (d *Dashboard) Picture(step int, name string, pngData []byte) {
	cfg, err := png.DecodeConfig(bytes.NewReader(pngData))
	if err != nil {
		d.opt.Log.Warn("dashboard: dropping a picture that is not a PNG", "picture", name, "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.version++
	d.pictures[name] = &picture{png: pngData, Run: d.current().Name, Step: step, Version: d.version, Width: cfg.Width, Height: cfg.Height}
}

// state is what /api/state answers.
type state struct {
	Title    string              `json:"title"`
	Now      float64             `json:"now"` // seconds since the dashboard started
	Runs     []*run              `json:"runs"`
	Pictures map[string]*picture `json:"pictures"`
	Stream   *streamView         `json:"stream"`
}

// stateJSON encodes the state under the lock, so that nothing changes
// while it is read.
func (d *Dashboard) stateJSON() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := state{Title: d.opt.Title, Now: d.since(time.Now()), Runs: d.runs, Pictures: d.pictures}
	if st.Runs == nil {
		st.Runs = []*run{}
	}
	if d.stream != nil {
		st.Stream = d.stream.view()
	}
	return json.Marshal(st)
}

//go:embed web
var webFS embed.FS

// Handler serves the page and its API. The stream panel is sampled only
// while Serve runs.
func (d *Dashboard) Handler() http.Handler {
	web, _ := fs.Sub(webFS, "web") // cannot fail: web is embedded
	static := http.FileServerFS(web)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, web, "index.html")
	})
	mux.Handle("GET /app.js", static)
	mux.Handle("GET /style.css", static)
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, r *http.Request) {
		b, err := d.stateJSON()
		if err != nil {
			http.Error(w, "dashboard: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /api/picture/{name}", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		p := d.pictures[r.PathValue("name")]
		d.mu.Unlock()
		if p == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(p.png)
	})
	return securityHeaders(mux)
}

// securityHeaders keeps other sites from framing the page and the browser
// from guessing content types.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; frame-ancestors 'none'")
		h.ServeHTTP(w, r)
	})
}

// Serve serves the dashboard on addr until ctx ends, then shuts the server
// down (waiting up to 2 s for requests in flight). It returns once the
// listener is up, with the address it listens on (addr may name port 0);
// errors after that are logged. With Options.Metrics it also samples the
// registry once a second until ctx ends.
func (d *Dashboard) Serve(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("dashboard: listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.opt.Log.Error("dashboard server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if d.stream != nil {
		go d.sample(ctx)
	}
	bound := ln.Addr().String()
	url := "http://" + bound + "/"
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		d.opt.Log.Warn("the dashboard has no authentication and listens on more than this host's loopback interface", "addr", bound)
		if tcp.IP.IsUnspecified() {
			url = fmt.Sprintf("http://127.0.0.1:%d/", tcp.Port)
		}
	}
	d.opt.Log.Info("serving the dashboard", "url", url)
	return bound, nil
}

// sample reads the registry once a second until ctx ends.
func (d *Dashboard) sample(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		d.tick(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// tick samples the registry once; the sampler is guarded by d.mu.
func (d *Dashboard) tick(now time.Time) {
	snap, err := gather(d.stream.g, now)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stream.add(snap, err)
}
