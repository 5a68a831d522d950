package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/internal/syncbuf"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/trainer"
)

// TestUIAddrInHelp: the commands that train or produce offer --ui-addr.
func TestUIAddrInHelp(t *testing.T) {
	for _, name := range []string{"run", "train", "produce"} {
		var o, e bytes.Buffer
		if code := run(context.Background(), []string{name, "--help"}, &o, &e); code != exitOK {
			t.Fatalf("%s --help: exit %d", name, code)
		}
		if !strings.Contains(o.String(), "--ui-addr") || !strings.Contains(o.String(), "no authentication") {
			t.Errorf("%s --help does not offer --ui-addr:\n%s", name, o.String())
		}
	}
}

var dashboardURL = regexp.MustCompile(`msg="serving the dashboard" url=(http://\S+/)`)

// TestTrainServesDashboard: train --ui-addr on local data logs the
// dashboard's URL, the dashboard follows the run, and it stops answering
// when the command ends.
func TestTrainServesDashboard(t *testing.T) {
	dir := t.TempDir()
	hr, lr := filepath.Join(dir, "hr"), filepath.Join(dir, "lr")
	testutil.WriteImages(t, hr, 2, 40, 36, 1)
	testutil.WriteImages(t, lr, 3, 12, 10, 2)
	cfg, err := trainer.Preset("cpu-small")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Name, cfg.Batch, cfg.HRCrop, cfg.Steps = "ui", 2, 24, 1_000_000
	cfg.PDM.Kernel = model.KernelConfig{Size: 7, NC: 4, NF: 8, NB: 1, Conv: 1, Init: "box"}
	cfg.PDM.Noise = model.NoiseConfig{Mode: model.NoiseMixed, NC: 2, NF: 4, NB: 1, Conv: 3}
	cfg.Disc = model.DiscConfig{NF: 4, Out: 2, Stride: 1}
	cfg.SR.NF, cfg.SR.NB = 4, 1
	cfg.LogEvery, cfg.SampleEvery, cfg.CheckpointEvery = 1, 2, 1000
	cfgFile := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(cfgFile, cfg.YAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var o, e syncbuf.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"train", "--hr", hr, "--lr", lr, "--out", filepath.Join(dir, "out"), "--config", cfgFile, "--ui-addr", "127.0.0.1:0"}, &o, &e)
	}()
	var url string
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if url == "" {
			if m := dashboardURL.FindStringSubmatch(e.String()); m != nil {
				url = m[1]
			}
		}
		if url != "" {
			var st struct {
				Runs []struct {
					Config string                  `json:"config"`
					Series map[string][][2]float64 `json:"series"`
				} `json:"runs"`
				Pictures map[string]any `json:"pictures"`
				Stream   any            `json:"stream"`
			}
			if resp, err := client.Get(url + "api/state"); err == nil {
				err = json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if len(st.Runs) == 1 && st.Runs[0].Config == "ui" && len(st.Runs[0].Series["l1"]) >= 2 && st.Pictures["kernels.png"] != nil {
					if st.Stream != nil {
						t.Errorf("a stream panel on local data: %v", st.Stream)
					}
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dashboard with two reports and pictures after 30 s (url %q):\n%s", url, e.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if c := <-code; c != exitInterrupted {
		t.Fatalf("exit %d, want %d:\n%s", c, exitInterrupted, e.String())
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Get(url + "api/state")
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("the dashboard still answers after train returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
