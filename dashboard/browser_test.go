package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/dashboard"
	"github.com/pdmflow/pdmflow/internal/jobs"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/trainer"
)

var _ trainer.Observer = (*dashboard.Dashboard)(nil)

// requireChromium makes a missing chromium fail the test instead of
// skipping it (CI sets it: .ci/run installs chromium).
const requireChromium = "PDMFLOW_REQUIRE_CHROMIUM"

// chromium finds Debian's chromium, or skips the test saying why (fails
// under PDMFLOW_REQUIRE_CHROMIUM=1).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "chromium is not installed (Debian: apt-get install chromium); .ci/run installs it so that this test runs in CI"
	if os.Getenv(requireChromium) == "1" {
		t.Fatal(why + ", and " + requireChromium + "=1")
	}
	t.Skip(why)
	return ""
}

// tinyConfig is a config small enough for a test, as trainer's tests use.
func tinyConfig() *trainer.Config {
	c, _ := trainer.Preset("cpu-small")
	c.Name = "tiny"
	c.Batch, c.HRCrop, c.Steps = 4, 24, 1_000_000 // stopped by the test
	c.PDM.Kernel = model.KernelConfig{Size: 7, NC: 4, NF: 8, NB: 1, Conv: 1, Init: "box"}
	c.PDM.Noise = model.NoiseConfig{Mode: model.NoiseMixed, NC: 2, NF: 4, NB: 1, Conv: 3}
	c.Disc = model.DiscConfig{NF: 4, Out: 2, Stride: 1}
	c.SR.NF, c.SR.NB = 4, 1
	c.LogEvery, c.SampleEvery, c.CheckpointEvery = 2, 2, 1000
	return c
}

// state is the part of /api/state the test waits on.
type state struct {
	Runs []struct {
		Series  map[string][][2]float64 `json:"series"`
		Samples map[string]struct {
			Values []float64 `json:"values"`
		} `json:"samples"`
	} `json:"runs"`
	Pictures map[string]struct {
		Width  int `json:"width"`
		Height int `json:"height"`
	} `json:"pictures"`
	Stream *struct {
		Producers []struct {
			ID        string   `json:"id"`
			PairsPerS *float64 `json:"pairs_per_s"`
		} `json:"producers"`
		Trainers []struct {
			DataWaitS *float64 `json:"data_wait_s"`
		} `json:"trainers"`
	} `json:"stream"`
}

var pictureNames = []string{trainer.KernelsFile, trainer.SamplesFile, trainer.NoiseFile}

// ready says what the dashboard still lacks before the page can show
// everything ("" when nothing).
func (s *state) ready() string {
	if len(s.Runs) != 1 {
		return fmt.Sprintf("%d runs", len(s.Runs))
	}
	r := s.Runs[0]
	for _, k := range []string{"l1", "g_adv", "d", "val_psnr", "val_ssim", "k_width_std", "k_fill"} {
		if len(r.Series[k]) < 2 {
			return fmt.Sprintf("%d points of %s", len(r.Series[k]), k)
		}
	}
	for _, q := range []string{"kernel_width", "noise_level"} {
		if len(r.Samples[q].Values) == 0 {
			return "no " + q + " sample"
		}
	}
	for _, n := range pictureNames {
		if _, ok := s.Pictures[n]; !ok {
			return "no " + n
		}
	}
	if s.Stream == nil || len(s.Stream.Producers) != 2 || len(s.Stream.Trainers) != 1 {
		return "no stream panel with 2 producers and a trainer"
	}
	for _, p := range s.Stream.Producers {
		if p.PairsPerS == nil {
			return "no pairs/s of " + p.ID
		}
	}
	if s.Stream.Trainers[0].DataWaitS == nil {
		return "no data wait"
	}
	return ""
}

func get(url string) ([]byte, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

var (
	tagRe  = regexp.MustCompile(`<(canvas|img|tr|body)\b[^>]*>`)
	attrRe = regexp.MustCompile(`([a-zA-Z-]+)="([^"]*)"`)
)

// elements returns the attributes of every canvas, img, tr and body
// element of a dumped DOM.
func elements(dom string) []map[string]string {
	var out []map[string]string
	for _, tag := range tagRe.FindAllString(dom, -1) {
		a := map[string]string{"tag": strings.TrimPrefix(strings.Fields(tag)[0], "<")}
		for _, m := range attrRe.FindAllStringSubmatch(tag, -1) {
			a[m[1]] = m[2]
		}
		out = append(out, a)
	}
	return out
}

func find(els []map[string]string, key, value string) map[string]string {
	for _, e := range els {
		if e[key] == value {
			return e
		}
	}
	return nil
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// TestDashboardInBrowser runs a short streamed training (an embedded
// JetStream server, two producers, the trainer with validation, tiny
// networks) with the dashboard, loads the page in headless chromium while
// it trains, and checks in the rendered DOM that every plot drew data and
// every picture loaded at its size: the loss, validation and monitor
// curves, the kernel-width and noise-level histograms, the pictures, and
// the stream's producer and trainer rows and curves. Set
// PDMFLOW_DASHBOARD_SCREENSHOT=FILE.png to also keep a screenshot.
func TestDashboardInBrowser(t *testing.T) {
	browser := chromium(t)
	dir := t.TempDir()
	hr, lr := filepath.Join(dir, "hr"), filepath.Join(dir, "lr")
	valHR, valLR := filepath.Join(dir, "val_hr"), filepath.Join(dir, "val_lr")
	testutil.WriteImages(t, hr, 3, 40, 36, 1)
	testutil.WriteImages(t, lr, 3, 12, 10, 2)
	testutil.WriteImages(t, valHR, 1, 48, 48, 3)
	testutil.WriteImages(t, valLR, 1, 12, 12, 4)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := metrics.NewRegistry()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	d := dashboard.New(dashboard.Options{Title: "pdmflow test", Metrics: reg, Log: log})
	addr, err := d.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/"
	cfg := tinyConfig()
	done := make(chan error, 1)
	go func() {
		done <- jobs.Pipeline(ctx, jobs.PipelineOptions{Config: cfg, Run: "dash", HR: hr, LR: lr, Out: filepath.Join(dir, "out"),
			Producers: 2, Registry: reg, Log: log, Observer: d,
			Val: &trainer.ValOptions{HR: valHR, LR: valLR, Every: 2}})
	}()
	stop := func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("pipeline: %v", err)
		}
	}

	// Wait until the dashboard has something of everything.
	var st state
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := get(url + "api/state")
		if err != nil {
			t.Fatal(err)
		}
		st = state{}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("api/state: %v", err)
		}
		missing := st.ready()
		if missing == "" {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended (%v) before the dashboard had data: %s\n%s", err, missing, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("after 60 s the dashboard still has %s\n%s", missing, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	pictures := map[string][2]int{}
	for _, n := range pictureNames {
		b, err := get(url + "api/picture/" + n)
		if err != nil {
			t.Fatal(err)
		}
		c, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		pictures[n] = [2]int{c.Width, c.Height}
	}

	// The page, while the run goes on. Virtual time runs the page's polls
	// (every 1.5 s) and waits for its fetches and pictures.
	args := []string{"--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + filepath.Join(dir, "chromium"), "--window-size=1400,3400", "--hide-scrollbars",
		"--virtual-time-budget=5000"}
	bctx, bcancel := context.WithTimeout(ctx, 60*time.Second)
	defer bcancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(bctx, browser, append(args, "--dump-dom", url)...)
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
	}
	t.Logf("chromium --dump-dom took %.1f s", time.Since(start).Seconds())
	if shot := os.Getenv("PDMFLOW_DASHBOARD_SCREENSHOT"); shot != "" {
		abs, _ := filepath.Abs(shot)
		cmd := exec.CommandContext(bctx, browser, append(args, "--screenshot="+abs, url)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("chromium --screenshot: %v\n%s", err, b)
		}
	}
	stop()

	dom := string(out)
	els := elements(dom)
	body := find(els, "tag", "body")
	if body == nil || atoi(body["data-polls"]) < 1 || body["data-runs"] != "1" {
		t.Fatalf("the page never read api/state: body %v\n%s", body, dom)
	}
	// Curves: every one of these drew at least two points.
	for _, k := range []string{"l1", "g_adv", "d", "noise_reg", "val_psnr", "val_ssim", "k_width_std", "k_pair_ratio", "k_fill", "k_hf_excess", "step_s", "wait_s", "pair_age"} {
		c := find(els, "data-chart", k)
		if c == nil {
			t.Errorf("no chart of %s", k)
			continue
		}
		if n := atoi(c["data-points"]); n < 2 {
			t.Errorf("chart %s drew %s points, want at least 2", k, c["data-points"])
		}
	}
	// Histograms: the monitor's 64 kernels, the batch's noise levels.
	for q, want := range map[string]int{"kernel_width": 64, "noise_level": cfg.Batch} {
		h := find(els, "data-hist", q)
		if h == nil {
			t.Errorf("no histogram of %s", q)
			continue
		}
		if atoi(h["data-count"]) != want || atoi(h["data-bins"]) < 5 {
			t.Errorf("histogram %s: %s values in %s bins, want %d values", q, h["data-count"], h["data-bins"], want)
		}
	}
	// Pictures: loaded, at the size of the served PNG.
	for _, n := range pictureNames {
		img := find(els, "data-picture", n)
		if img == nil {
			t.Errorf("no picture %s", n)
			continue
		}
		got := [2]int{atoi(img["data-natural-width"]), atoi(img["data-natural-height"])}
		if got != pictures[n] || got[0] <= 0 {
			t.Errorf("picture %s loaded at %v, want %v", n, got, pictures[n])
		}
	}
	// The stream: both producers with their rates, the trainer, and the
	// per-producer pairs/s curve.
	for _, id := range []string{"p0", "p1"} {
		row := find(els, "data-producer", id)
		if row == nil || row["data-run"] != "dash" {
			t.Errorf("no row of producer %s of run dash: %v", id, row)
			continue
		}
		if r, err := strconv.ParseFloat(row["data-pairs-per-s"], 64); err != nil || r < 0 {
			t.Errorf("producer %s: pairs/s %q", id, row["data-pairs-per-s"])
		}
	}
	if row := find(els, "data-trainer", "dash"); row == nil || row["data-data-wait-s"] == "" {
		t.Errorf("no trainer row with a data wait: %v", row)
	}
	c := find(els, "data-chart", "stream-pairs_per_s")
	if c == nil || atoi(c["data-curves"]) != 2 || atoi(c["data-points"]) < 2 {
		t.Errorf("pairs/s chart: %v, want 2 curves and points", c)
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}
