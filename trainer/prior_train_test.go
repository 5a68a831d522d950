package trainer

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPriorsTrainAndResume trains with every prior of issue 13 on (the
// smoothness and radius priors, mode seeking, the discriminator's
// minibatch standard deviation, the kernel-only average): the losses are
// logged and finite, the noise network handed on is the trained one, and
// a run interrupted and resumed is bit-identical to one run in one go.
func TestPriorsTrainAndResume(t *testing.T) {
	hr, lr := testData(t)
	cfg := tinyConfig()
	cfg.Batch = 4
	cfg.Loss.KernelSmooth, cfg.Loss.KernelRadius, cfg.Loss.KernelRadiusPx = 0.5, 0.01, 2
	cfg.Loss.ModeSeeking = 1e-3
	cfg.Disc.BatchStd = true
	cfg.PDMEMA, cfg.PDMEMAKernelOnly = 0.9, true
	whole := runTrainer(t, cfg, hr, lr, filepath.Join(t.TempDir(), "whole"))
	split := filepath.Join(t.TempDir(), "split")
	first := *cfg
	first.Steps = 4
	runTrainer(t, &first, hr, lr, split)
	resumed := runTrainer(t, cfg, hr, lr, split)
	a, b := paramBits(whole.modules()), paramBits(resumed.modules())
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("parameter value %d differs after resuming", i)
		}
	}
	// The handed-on noise network is the trained one; the kernel network
	// is an average, not a copy.
	for i, p := range whole.PDM.Noise.Params() {
		if !equal(p.Float32Data(), whole.PDMAvg.Noise.Params()[i].Float32Data()) {
			t.Errorf("noise parameter %s of the handed-on PDM is not the trained one", p.Name)
		}
	}
	same := true
	for i, p := range whole.PDM.Kernel.Params() {
		if p.Learnable && !equal(p.Float32Data(), whole.PDMAvg.Kernel.Params()[i].Float32Data()) {
			same = false
		}
	}
	if same {
		t.Error("the kernel network is not averaged")
	}
	f, err := os.Open(filepath.Join(split, LogFile))
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
	for _, r := range rows[1:] {
		for _, c := range []string{"k_smooth", "k_radius", "mode_seek"} {
			v, err := strconv.ParseFloat(r[col[c]], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Errorf("step %s: %s = %q", r[0], c, r[col[c]])
			}
		}
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestPackedDiscriminatorTrains trains with a discriminator that judges
// pairs of samples (disc.pack 2), and refuses a batch it cannot pack.
func TestPackedDiscriminatorTrains(t *testing.T) {
	hr, lr := testData(t)
	cfg := tinyConfig()
	cfg.Batch, cfg.Disc.Pack = 4, 2
	tr := runTrainer(t, cfg, hr, lr, filepath.Join(t.TempDir(), "out"))
	if tr.Step() != cfg.Steps {
		t.Fatalf("stopped at step %d", tr.Step())
	}
	bad := tinyConfig()
	bad.Batch, bad.Disc.Pack = 3, 2
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "pack") {
		t.Errorf("batch 3 with pack 2: %v", err)
	}
}
