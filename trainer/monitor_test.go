package trainer

import (
	"bytes"
	"context"
	"encoding/csv"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pdmflow/pdmflow/diversity"
	"github.com/pdmflow/pdmflow/model"
)

// TestDiversityMonitorInReports trains a few steps with a truth file: each
// report's CSV row carries the monitor's measures and the distances to the
// truth, and the metrics hold them.
func TestDiversityMonitorInReports(t *testing.T) {
	hr, lr := testData(t)
	out := t.TempDir()
	truth := &diversity.Truth{Dist: "test", Scale: 4, KernelSize: 7}
	for i := 0; i < 10; i++ {
		s := 0.8 + 0.2*float64(i)
		truth.Images = append(truth.Images, diversity.TruthImage{Kernel: model.KernelStats{SigmaMajor: s, SigmaMinor: s}, NoiseStd: 0.01 * float64(i+1)})
	}
	tp := filepath.Join(out, "truth.json")
	if err := truth.Write(tp); err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig()
	cfg.LogEvery = 2
	var buf bytes.Buffer
	tr, err := New(cfg, Options{HRDir: hr, LRDir: lr, Out: filepath.Join(out, "run"), Truth: tp, Log: slog.New(slog.NewTextHandler(&buf, nil)), Progress: &buf})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(out, "run", LogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, c := range rows[0] {
		col[c] = i
	}
	if len(rows) != 1+cfg.Steps/cfg.LogEvery {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows[1:] {
		for _, c := range []string{"k_width", "k_width_std", "k_pair_ratio", "k_fill", "k_hf_excess", "noise_level_std", "w1_width", "spread_width", "w1_noise", "spread_noise"} {
			v, err := strconv.ParseFloat(r[col[c]], 64)
			if err != nil || v < 0 {
				t.Errorf("step %s: %s = %q", r[0], c, r[col[c]])
			}
		}
		// The box init spreads the kernels over the whole window: width
		// several taps, far from the truth's 0.8-2.6.
		if w, _ := strconv.ParseFloat(r[col["w1_width"]], 64); w <= 0 {
			t.Errorf("step %s: W1 of widths %g", r[0], w)
		}
	}
	if v := promtest.ToFloat64(tr.m.Diversity.WithLabelValues("k_fill")); v <= 0 {
		t.Errorf("metric pdmflow_trainer_diversity{name=k_fill} = %g", v)
	}
	// Another scale than the config's is refused.
	truth.Scale = 2
	if err := truth.Write(tp); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Options{HRDir: hr, LRDir: lr, Out: filepath.Join(out, "run2"), Truth: tp}); err == nil {
		t.Error("a x2 truth was accepted for a x4 config")
	}
}
