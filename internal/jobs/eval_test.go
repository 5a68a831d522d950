package jobs

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/lpips"
	"github.com/pdmflow/pdmflow/niqe"
	"github.com/pdmflow/pdmflow/quality"
)

// photoCrop cuts a w x h region at (x0, y0) of a photo of data/photos.
func photoCrop(t *testing.T, name string, x0, y0, w, h int) *imageio.Image {
	t.Helper()
	im, err := imageio.Load(filepath.Join("..", "..", "data", "photos", name))
	if err != nil {
		t.Fatal(err)
	}
	return im.Crop(x0, y0, w, h)
}

// evalDirs writes SR images (photo crops) and ground truths (the same
// crops moved by (dy, dx) = (2, -1) and darkened a little) into two
// directories, plus two SR images too small for NIQE (one block, none).
func evalDirs(t *testing.T) (sr, gt string) {
	t.Helper()
	sr, gt = filepath.Join(t.TempDir(), "sr"), filepath.Join(t.TempDir(), "gt")
	os.MkdirAll(sr, 0o755)
	os.MkdirAll(gt, 0o755)
	for _, c := range []struct {
		name, photo string
		x, y, w, h  int
	}{{"chelsea", "chelsea.png", 40, 20, 232, 208}, {"coffee", "coffee.png", 100, 60, 208, 232}, {"small", "astronaut.png", 200, 200, 120, 104}, {"tiny", "astronaut.png", 10, 10, 64, 64}} {
		a := photoCrop(t, c.photo, c.x, c.y, c.w, c.h)
		b := photoCrop(t, c.photo, c.x-1, c.y+2, c.w, c.h) // gt(y, x) = sr(y+2, x-1)
		for i, v := range b.Pix {
			b.Pix[i] = uint8(float64(v)*0.97 + 0.5)
		}
		if err := a.Save(filepath.Join(sr, c.name+".png")); err != nil {
			t.Fatal(err)
		}
		if err := b.Save(filepath.Join(gt, c.name+".png")); err != nil {
			t.Fatal(err)
		}
	}
	return sr, gt
}

func loadPair(t *testing.T, sr, gt, name string) (*imageio.Image, *imageio.Image) {
	t.Helper()
	a, err := imageio.Load(filepath.Join(sr, name+".png"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := imageio.Load(filepath.Join(gt, name+".png"))
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestEvalDefaultUnchanged: without the new options the JSON has exactly
// the keys it had (images with name, psnr, ssim; psnr; ssim; border) and
// the values are kernels.PSNR and SSIM of the RGB images.
func TestEvalDefaultUnchanged(t *testing.T) {
	sr, gt := evalDirs(t)
	res, err := Eval(sr, gt, 4)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	var m map[string]any
	json.Unmarshal(b, &m)
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !reflect.DeepEqual(keys, []string{"border", "images", "psnr", "ssim"}) {
		t.Errorf("keys %v", keys)
	}
	img := m["images"].([]any)[0].(map[string]any)
	if len(img) != 3 || img["name"] != "chelsea" {
		t.Errorf("image entry %v", img)
	}
	a, g := loadPair(t, sr, gt, "chelsea")
	if *res.Images[0].PSNR != kernels.PSNR(a.Pix, g.Pix, 3, a.H, a.W, 4) || *res.Images[0].SSIM != kernels.SSIM(a.Pix, g.Pix, 3, a.H, a.W, 4) {
		t.Errorf("chelsea: %+v", res.Images[0])
	}
}

// TestEvalMetrics: --y-channel, --shift, --lpips and --niqe give, per
// image, what the packages compute on the same (border-cropped) images:
// the shift search finds the offset the ground truths were made with, the
// LPIPS of the lpips package's fixture weights, and the NIQE of a model
// that NIQEFit fitted on pristine photos and wrote; an image too small
// for NIQE is listed as skipped; NIQE alone works without ground truth.
func TestEvalMetrics(t *testing.T) {
	sr, gt := evalDirs(t)
	pristine := filepath.Join(t.TempDir(), "pristine")
	os.MkdirAll(pristine, 0o755)
	for _, name := range []string{"astronaut.png", "brick.png", "gravel.png", "grass.png"} {
		if err := photoCrop(t, name, 0, 0, 480, 384).Save(filepath.Join(pristine, name)); err != nil {
			t.Fatal(err)
		}
	}
	// An image without a whole block is skipped, not fatal.
	if err := photoCrop(t, "coffee.png", 0, 0, 90, 90).Save(filepath.Join(pristine, "small.png")); err != nil {
		t.Fatal(err)
	}
	modelPath := filepath.Join(t.TempDir(), "niqe", "model.json")
	fitted, err := NIQEFit(context.Background(), NIQEFitOptions{Pristine: pristine, Out: modelPath})
	if err != nil {
		t.Fatal(err)
	}
	if fitted.Images != 4 || fitted.Patches < 37 || fitted.SharpnessThreshold != niqe.DefaultSharpness {
		t.Errorf("fitted %d images, %d patches, threshold %g", fitted.Images, fitted.Patches, fitted.SharpnessThreshold)
	}
	model, err := niqe.LoadModel(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	lp := []string{filepath.Join("..", "..", "lpips", "testdata", "lpips.safetensors")}
	net, err := lpips.Load(lp...)
	if err != nil {
		t.Fatal(err)
	}
	o := EvalOptions{SR: sr, GT: gt, Border: 4, Y: true, Shift: 3, LPIPS: lp, NIQE: modelPath}
	res, err := EvalWith(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Channel != "y" || res.Shift != 3 || !reflect.DeepEqual(res.NIQESkipped, []string{"small", "tiny"}) || len(res.Images) != 4 {
		t.Fatalf("result %+v", res)
	}
	var sumNIQE float64
	for _, sc := range res.Images {
		a, g := loadPair(t, sr, gt, sc.Name)
		q, _ := quality.Compare(a.Pix, g.Pix, a.H, a.W, quality.Options{Y: true, Border: 4, Shift: 3})
		if *sc.PSNR != q.PSNR || *sc.SSIM != q.SSIM || *sc.PSNRShift != [2]int{2, -1} || *sc.SSIMShift != [2]int{2, -1} {
			t.Errorf("%s: %+v, quality.Compare %+v", sc.Name, sc, q)
		}
		ca, cg := a.Crop(4, 4, a.W-8, a.H-8), g.Crop(4, 4, a.W-8, a.H-8)
		d, _ := net.Distance(ca.Pix, cg.Pix, ca.H, ca.W)
		if sc.LPIPS == nil || *sc.LPIPS != d {
			t.Errorf("%s: LPIPS %v, lpips %g", sc.Name, sc.LPIPS, d)
		}
		if sc.Name == "small" || sc.Name == "tiny" {
			if sc.NIQE != nil {
				t.Errorf("small: NIQE %g", *sc.NIQE)
			}
			continue
		}
		v, err := model.Score(niqe.Gray(ca.Pix, ca.H, ca.W), ca.H, ca.W)
		if err != nil || sc.NIQE == nil || *sc.NIQE != v {
			t.Errorf("%s: NIQE %v, niqe %g (%v)", sc.Name, sc.NIQE, v, err)
		}
		sumNIQE += v
	}
	if math.Abs(*res.NIQE-sumNIQE/2) > 1e-12 {
		t.Errorf("mean NIQE %g, want %g (over the two images large enough)", *res.NIQE, sumNIQE/2)
	}
	// NIQE alone needs no ground truth.
	alone, err := EvalWith(context.Background(), EvalOptions{SR: sr, Border: 4, NIQE: modelPath})
	if err != nil {
		t.Fatal(err)
	}
	if alone.PSNR != nil || alone.Images[0].PSNR != nil || *alone.NIQE != *res.NIQE {
		t.Errorf("NIQE alone: %+v", alone)
	}
	if _, err := EvalWith(context.Background(), EvalOptions{SR: sr, Border: 4, Y: true, NIQE: modelPath}); err == nil || !strings.Contains(err.Error(), "need the ground truth") {
		t.Errorf("Y without ground truth: %v", err)
	}
}
