package jobs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/pdmflow/pdmflow/diversity"
	"github.com/pdmflow/pdmflow/internal/synth"
	"github.com/pdmflow/pdmflow/internal/testutil"
)

// TestDiversityAgainstSynthTruth builds a small target set with a known
// distribution and compares a PDM with its truth: every quantity is
// reported, with the truth's own statistics, and the pictures are written.
func TestDiversityAgainstSynthTruth(t *testing.T) {
	photos, data := t.TempDir(), t.TempDir()
	testutil.WriteImages(t, photos, 4, 96, 96, 3)
	o := synth.DefaultOptions()
	o.Params, _ = synth.Dist("mixed")
	o.LRTile, o.ValTile = 48, 48
	m, err := synth.Build(photos, data, o)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := diversity.ReadTruth(filepath.Join(data, diversity.TruthFile))
	if err != nil {
		t.Fatal(err)
	}
	if truth.Dist != "mixed" || len(truth.Images) == 0 || len(truth.Images) != len(m.Truth().Images) {
		t.Fatalf("truth of %q with %d images", truth.Dist, len(truth.Images))
	}
	for _, im := range truth.Images {
		if im.NoiseStd <= 0 || im.Kernel.SigmaMajor <= 0 {
			t.Fatalf("image %s: %+v", im.Name, im)
		}
	}
	pdm, _ := trainedWeights(t)
	out := t.TempDir()
	res, err := Diversity(DiversityOptions{Weights: pdm, Truth: filepath.Join(data, diversity.TruthFile), HR: filepath.Join(data, "hr"), HRCrop: 24, Samples: 40, Seed: 2, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{diversity.Width, diversity.Aniso, diversity.CY, diversity.CX, diversity.Noise} {
		st := res.Report.Get(q)
		if st.Quantity != q || st.N == 0 || st.TrueN != len(truth.Images) {
			t.Errorf("%s: %+v", q, st)
		}
	}
	if n := len(res.Learned[diversity.Noise]); n != 40 {
		t.Errorf("%d noise levels for 40 samples", n)
	}
	for _, f := range []string{"diversity.json", "diversity.md", "diversity.png"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	var back DiversityResult
	b, _ := os.ReadFile(filepath.Join(out, "diversity.json"))
	if err := json.Unmarshal(b, &back); err != nil || back.Report.Get(diversity.Width).W1 != res.Report.Get(diversity.Width).W1 {
		t.Errorf("diversity.json: %v", err)
	}
	// Another scale than the truth's is refused.
	bad := *truth
	bad.Scale = 2
	if err := bad.Write(filepath.Join(out, "bad.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := Diversity(DiversityOptions{Weights: pdm, Truth: filepath.Join(out, "bad.json")}); err == nil {
		t.Error("a x2 truth for a x4 PDM was accepted")
	}
}
