package jobs

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/internal/official"
	"github.com/pdmflow/pdmflow/lpips"
	"github.com/pdmflow/pdmflow/model"
)

// TestImport: an official DegModel checkpoint imports into a PDM file that
// model.LoadPDM reads, with the inferred config reported; LPIPS weights
// from two .pth files merge into one safetensors file that scores exactly
// as the two files do; a wrong kind fails naming what is missing.
func TestImport(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "pdm.safetensors")
	res, err := Import(ImportOptions{In: []string{filepath.Join("..", "official", "testdata", "pdm_mixed.pth")}, Kind: official.KindPDM, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	p, err := model.LoadPDM(out)
	if err != nil {
		t.Fatal(err)
	}
	if p.Cfg.Noise.Mode != model.NoiseMixed || !strings.Contains(res.Config, `"mode":"mixed"`) {
		t.Errorf("config %+v, reported %s", p.Cfg, res.Config)
	}
	td := filepath.Join("..", "..", "lpips", "testdata")
	merged := filepath.Join(dir, "lpips.safetensors")
	if _, err := Import(ImportOptions{In: []string{filepath.Join(td, "features.pth"), filepath.Join(td, "lin.pth")}, Kind: KindLPIPS, Out: merged}); err != nil {
		t.Fatal(err)
	}
	two, err := lpips.Load(filepath.Join(td, "features.pth"), filepath.Join(td, "lin.pth"))
	if err != nil {
		t.Fatal(err)
	}
	one, err := lpips.Load(merged)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := imageio.Load(filepath.Join(td, "a1.png"))
	b, _ := imageio.Load(filepath.Join(td, "b1.png"))
	d1, _ := one.Distance(a.Pix, b.Pix, a.H, a.W)
	d2, _ := two.Distance(a.Pix, b.Pix, a.H, a.W)
	if d1 != d2 || d1 == 0 {
		t.Errorf("merged LPIPS %g, from the two files %g", d1, d2)
	}
	_, err = Import(ImportOptions{In: []string{filepath.Join("..", "official", "testdata", "disc.pth")}, Kind: official.KindEDSR, Out: filepath.Join(dir, "x")})
	if err == nil || !strings.Contains(err.Error(), "head.0.weight") {
		t.Errorf("disc as EDSR: %v", err)
	}
}
