package trainer

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/kernels"
)

// valData writes validation pairs: ground truth, and LR images made by
// bicubic downsampling of it.
func valData(t *testing.T) (hr, lr string) {
	dir := t.TempDir()
	hr, lr = filepath.Join(dir, "vhr"), filepath.Join(dir, "vlr")
	testutil.WriteImages(t, hr, 2, 32, 28, 9)
	os.MkdirAll(lr, 0o755)
	paths, _ := imageio.List(hr)
	for _, p := range paths {
		im, _ := imageio.Load(p)
		out := make([]float32, 3*7*8)
		kernels.ResizeBicubic(3, im.H, im.W, 7, 8, out, im.Float32())
		kernels.Quantize8(out, out)
		if err := imageio.FromPlanarFloat(8, 7, out).Save(filepath.Join(lr, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	return hr, lr
}

// TestValidationWhileTraining scores the SR network every two steps: the
// CSV carries the scores, the best weights are kept, and a resumed run
// keeps the best so far.
func TestValidationWhileTraining(t *testing.T) {
	hr, lr := testData(t)
	vhr, vlr := valData(t)
	cfg := tinyConfig()
	cfg.LogEvery = 2
	out := filepath.Join(t.TempDir(), "out")
	run := func(steps int) *Trainer {
		c := *cfg
		c.Steps = steps
		tr, err := New(&c, Options{HRDir: hr, LRDir: lr, Out: out, Val: &ValOptions{HR: vhr, LR: vlr, Every: 2}})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if err := tr.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	first := run(4)
	if math.IsInf(first.bestPSNR, -1) || first.bestPSNR < 5 || first.bestPSNR > 60 {
		t.Fatalf("best PSNR %g", first.bestPSNR)
	}
	resumed := run(6)
	if resumed.bestPSNR < first.bestPSNR {
		t.Errorf("the resumed run forgot the best PSNR: %g < %g", resumed.bestPSNR, first.bestPSNR)
	}
	for _, f := range []string{SRBestFile, PDMBestFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	f, _ := os.Open(filepath.Join(out, LogFile))
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
		p, err1 := strconv.ParseFloat(r[col["val_psnr"]], 64)
		s, err2 := strconv.ParseFloat(r[col["val_ssim"]], 64)
		if err1 != nil || err2 != nil || p < 5 || s <= 0 || s > 1 {
			t.Errorf("step %s: val_psnr %q val_ssim %q", r[0], r[col["val_psnr"]], r[col["val_ssim"]])
		}
	}
	if _, err := New(cfg, Options{HRDir: hr, LRDir: lr, Out: t.TempDir(), Val: &ValOptions{HR: vhr}}); err == nil {
		t.Error("validation without LR images was accepted")
	}
}

// TestRunRecord: every start of a run (the first and each resume) is
// recorded with the version, the GEMM kernel, the step and the seed.
func TestRunRecord(t *testing.T) {
	hr, lr := testData(t)
	out := filepath.Join(t.TempDir(), "out")
	for _, steps := range []int{2, 4} {
		c := *tinyConfig()
		c.Steps = steps
		tr, err := New(&c, Options{HRDir: hr, LRDir: lr, Out: out, Version: "v-test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		tr.Close()
	}
	b, err := os.ReadFile(filepath.Join(out, RunFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec RunRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Starts) != 2 || rec.Starts[0].Step != 0 || rec.Starts[1].Step != 2 || rec.Starts[1].Version != "v-test" || rec.Starts[0].GemmKernel == "" {
		t.Errorf("run record %+v", rec)
	}
}
