package jobs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/model"
)

// trainedWeights writes a small PDM and SR network (random weights) as a
// training run would.
func trainedWeights(t *testing.T) (pdm, sr string) {
	t.Helper()
	dir := t.TempDir()
	cfg := tinyConfig(1)
	p, err := model.NewPDM(cfg.PDM, tensor.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Move the zero-initialised noise head so that the noise is not zero.
	for _, q := range p.Noise.Params() {
		d := q.Value.Data().([]float32)
		for i := range d {
			d[i] += 0.01 * float32(i%7-3)
		}
	}
	e, err := model.NewSR(cfg.SR, tensor.Float32, 4)
	if err != nil {
		t.Fatal(err)
	}
	pdm, sr = filepath.Join(dir, "pdm.safetensors"), filepath.Join(dir, "sr.safetensors")
	if err := model.SavePDM(pdm, p); err != nil {
		t.Fatal(err)
	}
	if err := model.SaveSR(sr, e); err != nil {
		t.Fatal(err)
	}
	return pdm, sr
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

// TestDegradeDeterministic: the same weights, images and seed give the same
// bytes; another seed gives other images.
func TestDegradeDeterministic(t *testing.T) {
	pdm, _ := trainedWeights(t)
	hr, _ := pipelineData(t)
	run := func(seed uint64) map[string][]byte {
		out := t.TempDir()
		recs, err := Degrade(context.Background(), DegradeOptions{Weights: pdm, In: hr, Out: out, Seed: seed, PerImage: 2, Log: testLog(t)})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 6 {
			t.Fatalf("%d records, want 6 (3 images x 2)", len(recs))
		}
		return readDir(t, out)
	}
	a, b, c := run(1), run(1), run(2)
	if len(a) != 7 {
		t.Fatalf("%d files, want 6 images and degradations.json", len(a))
	}
	differ := 0
	for name, v := range a {
		if !bytes.Equal(v, b[name]) {
			t.Errorf("%s differs between two runs with seed 1", name)
		}
		if strings.HasSuffix(name, ".png") && !bytes.Equal(v, c[name]) {
			differ++
		}
	}
	if differ != 6 {
		t.Errorf("%d of 6 images differ between seeds 1 and 2", differ)
	}
}

// TestJobsRefuseWrongWeights: SR weights given to degrade, and PDM weights
// given to sr, are refused with an error that says which is which.
func TestJobsRefuseWrongWeights(t *testing.T) {
	pdm, sr := trainedWeights(t)
	hr, _ := pipelineData(t)
	_, err := Degrade(context.Background(), DegradeOptions{Weights: sr, In: hr, Out: t.TempDir(), PerImage: 1, Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "sr weights") {
		t.Errorf("degrade with SR weights: %v", err)
	}
	err = SR(context.Background(), SROptions{Weights: pdm, In: hr, Out: t.TempDir(), Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "pdm weights") {
		t.Errorf("sr with PDM weights: %v", err)
	}
	if _, err := Degrade(context.Background(), DegradeOptions{Weights: pdm, In: t.TempDir(), Out: t.TempDir(), PerImage: 1, Log: testLog(t)}); err == nil || !strings.Contains(err.Error(), "no images") {
		t.Errorf("degrade of an empty directory: %v", err)
	}
}

// TestSRAndEval super-resolves LR images and scores them against their
// ground truth; bicubic against itself scores infinite PSNR and SSIM 1.
func TestSRAndEval(t *testing.T) {
	_, sr := trainedWeights(t)
	_, lr := pipelineData(t)
	netOut, bicOut := t.TempDir(), t.TempDir()
	if err := SR(context.Background(), SROptions{Weights: sr, In: lr, Out: netOut, Tile: 8, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	if err := SR(context.Background(), SROptions{Bicubic: true, Scale: 4, In: lr, Out: bicOut, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	same, err := Eval(bicOut, bicOut, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(same.Images) != 4 || *same.SSIM < 0.9999 || *same.PSNR < 99 {
		t.Errorf("bicubic against itself: %d images, PSNR %g, SSIM %g", len(same.Images), *same.PSNR, *same.SSIM)
	}
	res, err := Eval(netOut, bicOut, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 4 || *res.PSNR <= 0 || *res.PSNR > 99 || *res.SSIM <= 0 || *res.SSIM >= 1 {
		t.Errorf("network against bicubic: %+v", res)
	}
}
