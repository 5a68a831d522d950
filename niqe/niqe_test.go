package niqe

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/internal/imageio"
)

type crop struct {
	Image string `json:"image"`
	Crop  []int  `json:"crop"` // top, left, height, width
}

type expected struct {
	Block     int     `json:"block"`
	Sharpness float64 `json:"sharpness_threshold"`
	Pristine  []crop  `json:"pristine"`
	Model     struct {
		Patches int         `json:"patches"`
		Mu      []float64   `json:"mu"`
		Cov     [][]float64 `json:"cov"`
	} `json:"model"`
	First struct {
		Features  [][]float64 `json:"features"`
		Sharpness []float64   `json:"sharpness"`
	} `json:"patches_of_first_test"`
	Scores []struct {
		crop
		NIQE float64 `json:"niqe"`
	} `json:"scores"`
}

func loadExpected(t *testing.T) *expected {
	t.Helper()
	b, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

// grayOf loads an image (a photo of data/photos cut as c says, or a test
// image of testdata) in gray levels.
func grayOf(t *testing.T, c crop) ([]float64, int, int) {
	t.Helper()
	path := filepath.Join("testdata", c.Image)
	if c.Crop != nil {
		path = filepath.Join("..", "data", "photos", c.Image)
	}
	im, err := imageio.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Crop != nil {
		im = im.Crop(c.Crop[1], c.Crop[0], c.Crop[3], c.Crop[2])
	}
	return Gray(im.Pix, im.H, im.W), im.H, im.W
}

func close(a, b, tol float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= tol*(1+math.Abs(b))
}

// TestAgainstNumpy: features, the fitted model and scores match
// niqe_ref.py, an independent numpy implementation of the NIQE release's
// MATLAB code (direct 2-D filtering where this package filters
// separably, its own imresize, numpy's pinv): every feature of every patch
// of a test image and its sharpness within 1e-9 (relative), the model
// fitted on five pristine crops with threshold 0.75 (same patches kept)
// within 1e-9, and the NIQE of three images within 1e-9 (measured: 3e-14,
// 4e-14 and 1e-11).
func TestAgainstNumpy(t *testing.T) {
	e := loadExpected(t)
	g, h, w := grayOf(t, e.Scores[0].crop)
	ps, err := Extract(g, h, w, e.Block)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != len(e.First.Features) {
		t.Fatalf("%d patches, numpy %d", len(ps), len(e.First.Features))
	}
	var worst float64
	for i, p := range ps {
		for j, v := range p.Features {
			want := e.First.Features[i][j]
			if !close(v, want, 1e-9) {
				t.Errorf("patch %d feature %d = %.15g, numpy %.15g", i, j, v, want)
			}
			worst = max(worst, math.Abs(v-want)/(1+math.Abs(want)))
		}
		if !close(p.Sharpness, e.First.Sharpness[i], 1e-12) {
			t.Errorf("patch %d sharpness %.15g, numpy %.15g", i, p.Sharpness, e.First.Sharpness[i])
		}
	}
	t.Logf("features: largest relative difference %.2g", worst)

	f, err := NewFitter(FitOptions{Block: e.Block, Sharpness: e.Sharpness})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range e.Pristine {
		g, h, w := grayOf(t, c)
		if _, err := f.Add(g, h, w); err != nil {
			t.Fatal(err)
		}
	}
	m, err := f.Model()
	if err != nil {
		t.Fatal(err)
	}
	if m.Patches != e.Model.Patches {
		t.Fatalf("kept %d pristine patches, numpy %d", m.Patches, e.Model.Patches)
	}
	worst = 0
	for i := range NumFeatures {
		if !close(m.Mu[i], e.Model.Mu[i], 1e-9) {
			t.Errorf("mu[%d] = %.15g, numpy %.15g", i, m.Mu[i], e.Model.Mu[i])
		}
		for j := range NumFeatures {
			want := e.Model.Cov[i][j]
			if !close(m.Cov[i][j], want, 1e-9) {
				t.Errorf("cov[%d][%d] = %.15g, numpy %.15g", i, j, m.Cov[i][j], want)
			}
			worst = max(worst, math.Abs(m.Cov[i][j]-want)/(1+math.Abs(want)))
		}
	}
	t.Logf("model: %d images, %d of %d patches kept; covariance largest relative difference %.2g", m.Images, m.Patches, f.patches, worst)

	// The numpy model, loaded, scores the test images as numpy did.
	var flat []float64
	for _, row := range e.Model.Cov {
		flat = append(flat, row...)
	}
	ref, err := ModelFromArrays(e.Model.Mu, flat, e.Block)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range e.Scores {
		g, h, w := grayOf(t, s.crop)
		got, err := ref.Score(g, h, w)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: NIQE %.10f, numpy %.10f", s.Image, got, s.NIQE)
		if !close(got, s.NIQE, 1e-9) {
			t.Errorf("%s: NIQE %.12g, numpy %.12g", s.Image, got, s.NIQE)
		}
	}
}

// TestBlurScoresWorse: under a model fitted on sharp photos, a blurred
// image scores worse (higher) than the original, and more blur is worse
// still.
func TestBlurScoresWorse(t *testing.T) {
	e := loadExpected(t)
	f, _ := NewFitter(FitOptions{})
	for _, c := range e.Pristine {
		g, h, w := grayOf(t, c)
		if _, err := f.Add(g, h, w); err != nil {
			t.Fatal(err)
		}
	}
	m, err := f.Model()
	if err != nil {
		t.Fatal(err)
	}
	g, h, w := grayOf(t, crop{"chelsea.png", []int{6, 30, 288, 384}})
	prev, err := m.Score(g, h, w)
	if err != nil {
		t.Fatal(err)
	}
	for _, passes := range []int{1, 3} {
		b := g
		for range passes {
			b = filterReplicate(b, h, w) // sigma 7/6 per pass
		}
		s, err := m.Score(b, h, w)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d blur passes: NIQE %.3f (sharper: %.3f)", passes, s, prev)
		if !(s > prev) {
			t.Errorf("%d blur passes: NIQE %.3f, not worse than %.3f", passes, s, prev)
		}
		prev = s
	}
}

// TestAGGD: the shape and scales of a symmetric Laplacian sample (alpha 1)
// and a Gaussian sample (alpha 2) come out near their true values, with
// equal left and right scales; a sample without negative values gives
// MATLAB's alpha 0.2 and a NaN left scale.
func TestAGGD(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 200000
	gauss, lap := make([]float64, n), make([]float64, n)
	for i := range n {
		gauss[i] = 2 * r.NormFloat64()
		lap[i] = r.ExpFloat64()
		if r.IntN(2) == 0 {
			lap[i] = -lap[i]
		}
	}
	a, bl, br := aggd(gauss)
	// A GGD of shape 2 is a Gaussian with beta = sqrt(2) sigma.
	if math.Abs(a-2) > 0.05 || math.Abs(bl-2*math.Sqrt2) > 0.05 || math.Abs(br-2*math.Sqrt2) > 0.05 {
		t.Errorf("Gaussian: alpha %g, betas %g %g", a, bl, br)
	}
	a, bl, br = aggd(lap)
	if math.Abs(a-1) > 0.03 || math.Abs(bl-1) > 0.03 || math.Abs(br-1) > 0.03 {
		t.Errorf("Laplacian: alpha %g, betas %g %g", a, bl, br)
	}
	a, bl, br = aggd([]float64{0, 1, 2, 3})
	if a != 0.2 || !math.IsNaN(bl) || math.IsNaN(br) {
		t.Errorf("no negatives: alpha %g, betas %g %g", a, bl, br)
	}
}

// TestFlatAreas: where the 7x7 window is flat the coefficients are exactly
// 0 (not rounding noise of either sign), and elsewhere they are not.
func TestFlatAreas(t *testing.T) {
	const h, w = 40, 40
	im := make([]float64, h*w)
	for y := range h {
		for x := range w {
			im[y*w+x] = 201
			if x >= 20 {
				im[y*w+x] = float64((x*7 + y*13) % 50)
			}
		}
	}
	coef, _ := mscn(im, h, w)
	zeros := 0
	for y := range h {
		for x := range w {
			c := coef[y*w+x]
			if x < 17 && c != 0 {
				t.Fatalf("flat (%d, %d): coefficient %g", y, x, c)
			}
			if x >= 21 && c == 0 {
				zeros++
			}
		}
	}
	if zeros > h {
		t.Errorf("%d zero coefficients in the textured half", zeros)
	}
}

// TestPinv: the pseudo-inverse of a full-rank symmetric matrix is its
// inverse, and of a rank-deficient one satisfies A A+ A = A and A+ A A+ =
// A+.
func TestPinv(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 6
	mul := func(a, b []float64) []float64 {
		c := make([]float64, n*n)
		for i := range n {
			for k := range n {
				for j := range n {
					c[i*n+j] += a[i*n+k] * b[k*n+j]
				}
			}
		}
		return c
	}
	for _, rank := range []int{n, 3} {
		x := make([]float64, n*rank)
		for i := range x {
			x[i] = r.NormFloat64()
		}
		a := make([]float64, n*n) // x x'
		for i := range n {
			for j := range n {
				for k := range rank {
					a[i*n+j] += x[i*rank+k] * x[j*rank+k]
				}
			}
		}
		p := pinv(a, n)
		apa, pap := mul(mul(a, p), a), mul(mul(p, a), p)
		for i := range a {
			if math.Abs(apa[i]-a[i]) > 1e-9 || math.Abs(pap[i]-p[i]) > 1e-9*(1+math.Abs(p[i])) {
				t.Fatalf("rank %d: A A+ A or A+ A A+ differs at %d", rank, i)
			}
		}
		if rank == n {
			id := mul(a, p)
			for i := range n {
				for j := range n {
					want := 0.0
					if i == j {
						want = 1
					}
					if math.Abs(id[i*n+j]-want) > 1e-9 {
						t.Fatalf("A A+ [%d][%d] = %g", i, j, id[i*n+j])
					}
				}
			}
		}
	}
}

// TestGray against MATLAB's rgb2gray of hand-computed pixels.
func TestGray(t *testing.T) {
	// R, G, B planes of four pixels.
	rgb := []uint8{255, 0, 0, 100, 0, 255, 0, 150, 0, 0, 255, 200}
	want := []float64{76, 150, 29, math.Floor(0.298936021293775*100 + 0.587043074451121*150 + 0.114020904255103*200 + 0.5)}
	got := Gray(rgb, 1, 4)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("gray[%d] = %g, want %g", i, got[i], want[i])
		}
	}
}

// TestModelFile: a model round-trips through its file; malformed models
// and too-small images are errors that say what is wrong.
func TestModelFile(t *testing.T) {
	mu := make([]float64, NumFeatures)
	cov := make([]float64, NumFeatures*NumFeatures)
	for i := range NumFeatures {
		mu[i] = float64(i)
		cov[i*NumFeatures+i] = 1
	}
	m, err := ModelFromArrays(mu, cov, 96)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.json")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadModel(path)
	if err != nil || back.Mu[5] != 5 || back.Cov[3][3] != 1 {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := ModelFromArrays(mu[:35], cov, 96); err == nil || !strings.Contains(err.Error(), "36 means") {
		t.Errorf("short mean: %v", err)
	}
	cov[1] = 0.5
	if _, err := ModelFromArrays(mu, cov, 96); err == nil || !strings.Contains(err.Error(), "not symmetric") {
		t.Errorf("asymmetric: %v", err)
	}
	os.WriteFile(path, []byte(`{"format":"other"}`), 0o644)
	if _, err := LoadModel(path); err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("other format: %v", err)
	}
	if _, err := m.Score(make([]float64, 100*150), 100, 150); !errors.Is(err, ErrTooFewPatches) {
		t.Errorf("one block: %v", err)
	}
	if _, err := m.Score(make([]float64, 90*150), 90, 150); !errors.Is(err, ErrTooFewPatches) || !strings.Contains(err.Error(), "no whole 96x96 block") {
		t.Errorf("no block: %v", err)
	}
}
