package trainer

import (
	"bytes"
	"context"
	"image/png"
	"path/filepath"
	"testing"
)

// recorder is an Observer that keeps what it is given.
type recorder struct {
	begins   []string
	reports  map[int]map[string]float64
	samples  map[string][]float64
	warnings []int // steps
	pictures map[string][2]int
	pictureS []int
}

func (r *recorder) Begin(name, config string, step, steps int) {
	r.begins = append(r.begins, name+" "+config)
}
func (r *recorder) Report(step int, v map[string]float64)  { r.reports[step] = v }
func (r *recorder) Sample(step int, q string, v []float64) { r.samples[q] = v }
func (r *recorder) Warnings(step int, active []string)     { r.warnings = append(r.warnings, step) }
func (r *recorder) Picture(step int, name string, b []byte) {
	c, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		r.pictures[name] = [2]int{-1, -1}
		return
	}
	r.pictures[name] = [2]int{c.Width, c.Height}
	r.pictureS = append(r.pictureS, step)
}

// TestObserver: a run tells its Observer where it starts, every report's
// values, the monitor's kernel widths, noise levels and warnings at each
// report, and its pictures (with the noise picture) at each sample_every.
func TestObserver(t *testing.T) {
	hr, lr := testData(t)
	cfg := tinyConfig() // 6 steps, reports every 2, pictures every 3
	rec := &recorder{reports: map[int]map[string]float64{}, samples: map[string][]float64{}, pictures: map[string][2]int{}}
	out := filepath.Join(t.TempDir(), "run")
	tr, err := New(cfg, Options{HRDir: hr, LRDir: lr, Out: out, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.begins) != 1 || rec.begins[0] != out+" tiny" {
		t.Errorf("Begin calls %q, want one of %q", rec.begins, out+" tiny")
	}
	for _, step := range []int{2, 4, 6} {
		v := rec.reports[step]
		for _, k := range []string{"g_adv", "d", "l1", "noise_reg", "k_width_std", "k_pair_ratio", "k_fill", "k_hf_excess", "step_s"} {
			if _, ok := v[k]; !ok {
				t.Errorf("report at step %d has no %s: %v", step, k, v)
			}
		}
	}
	if len(rec.reports) != 3 {
		t.Errorf("%d reports, want 3", len(rec.reports))
	}
	if n := len(rec.samples["kernel_width"]); n != monitorKernels {
		t.Errorf("%d kernel widths, want %d", n, monitorKernels)
	}
	if n := len(rec.samples["noise_level"]); n != cfg.Batch {
		t.Errorf("%d noise levels, want %d", n, cfg.Batch)
	}
	if len(rec.warnings) != 3 {
		t.Errorf("warnings at steps %v, want one call per report", rec.warnings)
	}
	n, s := min(8, cfg.Batch), cfg.LRCrop()*4+2 // PatchRows: zoom 4, 2-pixel gaps
	grid := 8*(cfg.PDM.Kernel.Size*4+2) + 2     // KernelGrid: 8 x 8, zoom 4
	for name, want := range map[string][2]int{KernelsFile: {grid, grid}, SamplesFile: {n*s + 2, 2*s + 2}, NoiseFile: {n*s + 2, 3*s + 2}} {
		if got := rec.pictures[name]; got != want {
			t.Errorf("picture %s is %v, want %v", name, got, want)
		}
	}
	if len(rec.pictureS) != 6 || rec.pictureS[0] != 3 || rec.pictureS[5] != 6 {
		t.Errorf("pictures at steps %v, want 3 at step 3 and 3 at step 6", rec.pictureS)
	}
}
