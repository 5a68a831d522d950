package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// apiState is the part of /api/state the tests read.
type apiState struct {
	Title string `json:"title"`
	Runs  []struct {
		Name     string                  `json:"name"`
		Config   string                  `json:"config"`
		Step     int                     `json:"step"`
		Steps    int                     `json:"steps"`
		Series   map[string][][2]float64 `json:"series"`
		Samples  map[string]samples      `json:"samples"`
		Warnings []string                `json:"warnings"`
		Log      []warningEvent          `json:"warning_log"`
	} `json:"runs"`
	Pictures map[string]picture `json:"pictures"`
	Stream   *struct {
		Producers []producerView                     `json:"producers"`
		Trainers  []trainerView                      `json:"trainers"`
		History   map[string]map[string][][2]float64 `json:"history"`
	} `json:"stream"`
}

func getState(t *testing.T, h http.Handler) apiState {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/state", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/api/state: %d %s", rec.Code, rec.Body)
	}
	var st apiState
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("/api/state: %v\n%s", err, rec.Body)
	}
	return st
}

// TestObserverState: what the trainer hands over (runs, reports with NaN,
// samples, warnings as they begin, pictures) comes out of /api/state and
// /api/picture as it went in.
func TestObserverState(t *testing.T) {
	d := New(Options{Title: "test"})
	h := d.Handler()
	d.Report(2, map[string]float64{"l1": 0.5}) // before Begin: an unnamed run
	d.Begin("out/a", "tiny", 0, 10)
	d.Report(2, map[string]float64{"l1": 0.4, "g_adv": math.NaN(), "d": math.Inf(1)})
	d.Report(4, map[string]float64{"l1": 0.3, "val_psnr": 21.5})
	d.Sample(4, "kernel_width", []float64{1, 2, math.NaN(), 3})
	d.Warnings(4, []string{"one-kernel: x"})
	d.Warnings(6, []string{"one-kernel: x", "sparse-kernels: y"})
	d.Picture(4, "kernels.png", pngOf(t, 7, 5))
	d.Picture(4, "bad.png", []byte("not a png"))

	st := getState(t, h)
	if st.Title != "test" || len(st.Runs) != 2 {
		t.Fatalf("title %q, %d runs; want test, 2", st.Title, len(st.Runs))
	}
	r := st.Runs[1]
	if r.Name != "out/a" || r.Config != "tiny" || r.Step != 4 || r.Steps != 10 {
		t.Errorf("run %+v", r)
	}
	if got := r.Series["l1"]; len(got) != 2 || got[0] != [2]float64{2, 0.4} || got[1] != [2]float64{4, 0.3} {
		t.Errorf("l1 series %v", got)
	}
	if _, ok := r.Series["g_adv"]; ok {
		t.Error("a NaN value made a series")
	}
	if _, ok := r.Series["d"]; ok {
		t.Error("an infinite value made a series")
	}
	if got := r.Samples["kernel_width"]; got.Step != 4 || len(got.Values) != 3 {
		t.Errorf("kernel_width sample %+v, want 3 values at step 4", got)
	}
	if len(r.Warnings) != 2 || len(r.Log) != 2 || r.Log[0].Step != 4 || r.Log[1].Step != 6 {
		t.Errorf("warnings %v, log %v", r.Warnings, r.Log)
	}
	p, ok := st.Pictures["kernels.png"]
	if !ok || p.Width != 7 || p.Height != 5 || p.Step != 4 || p.Run != "out/a" {
		t.Errorf("pictures %+v", st.Pictures)
	}
	if _, ok := st.Pictures["bad.png"]; ok {
		t.Error("a picture that is not a PNG was kept")
	}
	if st.Stream != nil {
		t.Error("a stream panel without a registry")
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/picture/kernels.png", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/png" || !bytes.Equal(rec.Body.Bytes(), pngOf(t, 7, 5)) {
		t.Errorf("/api/picture/kernels.png: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/picture/nosuch.png", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/api/picture/nosuch.png: %d, want 404", rec.Code)
	}
}

// TestPage: the page and its script and style sheet are served; nothing
// else is.
func TestPage(t *testing.T) {
	h := New(Options{}).Handler()
	for _, tc := range []struct {
		path, ctype, contains string
		code                  int
	}{
		{"/", "text/html", `<script src="app.js">`, 200},
		{"/app.js", "javascript", "api/state", 200},
		{"/style.css", "text/css", "canvas", 200},
		{"/index.html", "", "", 404}, // the page is at / only
		{"/nosuch", "", "", 404},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.code {
			t.Errorf("%s: %d, want %d", tc.path, rec.Code, tc.code)
			continue
		}
		if !strings.Contains(rec.Header().Get("Content-Type"), tc.ctype) || !strings.Contains(rec.Body.String(), tc.contains) {
			t.Errorf("%s: %q, body without %q", tc.path, rec.Header().Get("Content-Type"), tc.contains)
		}
		if rec.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: no X-Frame-Options", tc.path)
		}
	}
}

// TestSeriesThinning: a series never holds more than its limit, keeps its
// first and latest points, and stays in order.
func TestSeriesThinning(t *testing.T) {
	var s series
	for i := 0; i < 5000; i++ {
		s.add(float64(i), float64(i), 100)
		if len(s.pts) > 100 {
			t.Fatalf("%d points after %d adds", len(s.pts), i+1)
		}
	}
	if s.pts[0][0] != 0 || s.pts[len(s.pts)-1][0] != 4999 {
		t.Errorf("first %v, last %v", s.pts[0], s.pts[len(s.pts)-1])
	}
	for i := 1; i < len(s.pts); i++ {
		if s.pts[i][0] <= s.pts[i-1][0] {
			t.Fatalf("out of order at %d: %v", i, s.pts[i-1:i+1])
		}
	}
}

// TestStreamRates: the stream panel's rates, means and current values come
// from the registry's producer and trainer metrics, per run and producer.
func TestStreamRates(t *testing.T) {
	reg := prometheus.NewRegistry()
	wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"run": "r1"}, reg)
	pairs := prometheus.NewCounter(prometheus.CounterOpts{Name: "pdmflow_producer_pairs_total", ConstLabels: prometheus.Labels{"producer": "p0"}})
	version := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pdmflow_producer_weights_version", ConstLabels: prometheus.Labels{"producer": "p0"}})
	wait := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pdmflow_trainer_data_wait_seconds"})
	steps := prometheus.NewCounter(prometheus.CounterOpts{Name: "pdmflow_trainer_steps_total"})
	losses := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pdmflow_trainer_loss"}, []string{"name"})
	wrapped.MustRegister(pairs, version, wait, steps, losses)
	losses.WithLabelValues("l1").Set(1)

	d := New(Options{Metrics: reg})
	t0 := d.start
	d.tick(t0)
	pairs.Add(50)
	version.Set(3)
	steps.Add(10)
	wait.Observe(0.1)
	wait.Observe(0.3)
	d.tick(t0.Add(5 * time.Second))

	st := getState(t, d.Handler()).Stream
	if st == nil || len(st.Producers) != 1 || len(st.Trainers) != 1 {
		t.Fatalf("stream %+v, want one producer and one trainer", st)
	}
	p, tr := st.Producers[0], st.Trainers[0]
	if p.Run != "r1" || p.ID != "p0" || p.PairsPerS == nil || *p.PairsPerS != 10 || p.WeightsVersion != 3 || p.Pairs != 50 {
		t.Errorf("producer %+v (pairs/s %v), want r1/p0 at 10 pairs/s, version 3", p, p.PairsPerS)
	}
	if tr.Run != "r1" || tr.StepsPerS == nil || *tr.StepsPerS != 2 || tr.DataWaitS == nil || math.Abs(*tr.DataWaitS-0.2) > 1e-12 {
		t.Errorf("trainer %+v, want 2 steps/s and a data wait of 0.2 s", tr)
	}
	if got := st.History["pairs_per_s"]["r1/p0"]; len(got) != 1 || got[0][1] != 10 {
		t.Errorf("pairs/s history %v", got)
	}
	if got := st.History["data_wait_ms"]["trainer r1"]; len(got) != 1 || math.Abs(got[0][1]-200) > 1e-9 {
		t.Errorf("data wait history %v", got)
	}
	// No new observations: no mean, a rate of 0.
	d.tick(t0.Add(11 * time.Second))
	st = getState(t, d.Handler()).Stream
	if tr := st.Trainers[0]; tr.DataWaitS != nil || tr.StepsPerS == nil || *tr.StepsPerS != 0 {
		t.Errorf("idle trainer %+v", tr)
	}
}

// TestServeShutsDown: Serve listens on the address given, answers, and
// stops answering once its context ends.
func TestServeShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	d := New(Options{Metrics: prometheus.NewRegistry()})
	addr, err := d.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"runs":[]`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := &http.Client{Timeout: time.Second}
		resp, err := c.Get("http://" + addr + "/api/state")
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("the dashboard still answers 5 s after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := d.Serve(context.Background(), "127.0.0.1:-1"); err == nil || !strings.HasPrefix(err.Error(), "dashboard: ") {
		t.Errorf("a bad address: %v", err)
	}
}
