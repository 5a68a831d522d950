package jobs

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/diversity"
	"github.com/pdmflow/pdmflow/internal/testutil"
)

// TestDemoOnSynthTarget runs the demo end to end at a tiny scale on a
// synthetic target set of another distribution than the default: PDM-SR,
// the bicubic-trained SR, bicubic upsampling and the oracle SR trained on
// the true degradation are all scored, the learned distribution is
// compared with the truth, and a second run reuses what is done.
func TestDemoOnSynthTarget(t *testing.T) {
	photos, out := t.TempDir(), t.TempDir()
	testutil.WriteImages(t, photos, 4, 384, 384, 5)
	cfg := tinyConfig(4)
	cfg.HRCrop = 32
	// LPIPS of the lpips package's fixture weights (a reduced AlexNet):
	// the table gets its column.
	lp := []string{filepath.Join("..", "..", "lpips", "testdata", "lpips.safetensors")}
	o := DemoOptions{Photos: photos, Out: out, Config: cfg, Producers: 1, Dist: "defocus", Version: "v-test", LPIPS: lp, Log: slog.New(slog.DiscardHandler)}
	res, err := Demo(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dist != "defocus" || len(res.Rows) != 4 || !strings.Contains(res.Rows[3].Method, "oracle") {
		t.Fatalf("rows %+v for dist %q", res.Rows, res.Dist)
	}
	for _, r := range res.Rows {
		if r.PSNR < 10 || r.PSNR > 60 || r.SSIM <= 0 || r.SSIM > 1 {
			t.Errorf("%s: PSNR %g SSIM %g", r.Method, r.PSNR, r.SSIM)
		}
		// Y's error is sum c_i e_i with sum c_i^2 = 0.330, so by
		// Cauchy-Schwarz its MSE is at most 0.99 times the RGB MSE: Y's
		// PSNR is never below RGB's.
		if r.PSNRY < r.PSNR || r.PSNRY > 60 || r.SSIMY <= 0 || r.SSIMY > 1 || r.LPIPS <= 0 {
			t.Errorf("%s: PSNR-Y %g SSIM-Y %g LPIPS %g (RGB PSNR %g)", r.Method, r.PSNRY, r.SSIMY, r.LPIPS, r.PSNR)
		}
	}
	if res.Diversity == nil || res.Diversity.Get(diversity.Width).TrueN == 0 || res.Diversity.Get(diversity.Noise).N == 0 {
		t.Fatalf("diversity %+v", res.Diversity)
	}
	for _, f := range []string{"results.json", "results.md", "diversity/diversity.png", "data/truth.json", "oracle-sr/sr.safetensors"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "results.md"))
	if !strings.Contains(string(md), "defocus") || !strings.Contains(string(md), "spread ratio") || !strings.Contains(string(md), "| PSNR-Y (dB) | SSIM-Y | LPIPS |") {
		t.Errorf("results.md:\n%s", md)
	}
	var back DemoResult
	b, _ := os.ReadFile(filepath.Join(out, "results.json"))
	if err := json.Unmarshal(b, &back); err != nil || back.Diversity == nil {
		t.Errorf("results.json: %v", err)
	}
	// Provenance: the version, the full config, the seeds, the GEMM kernel
	// and every image's scores.
	if back.Version != "v-test" || back.FullConfig == nil || back.FullConfig.Batch != cfg.Batch || back.GemmKernel == "" || back.DataSeed == 0 ||
		len(back.Rows[2].Images) != back.ValPairs {
		t.Errorf("provenance: version %q, config %v, gemm %q, data seed %d, %d image scores for %d pairs",
			back.Version, back.FullConfig != nil, back.GemmKernel, back.DataSeed, len(back.Rows[2].Images), back.ValPairs)
	}
	if _, err := os.Stat(filepath.Join(out, "pdm-sr", "run.json")); err != nil {
		t.Error(err)
	}
	// A second run finds every stage done and gives the same scores.
	again, err := Demo(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range res.Rows {
		a, b := again.Rows[i], res.Rows[i]
		if a.Method != b.Method || a.PSNR != b.PSNR || a.SSIM != b.SSIM {
			t.Errorf("rerun: %+v, first run %+v", again.Rows[i], res.Rows[i])
		}
	}
}
