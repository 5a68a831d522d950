package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/bench"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/trainer"
)

// snapshot reads every file under dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			m[p] = b
		}
		return nil
	})
	return m
}

func sameFiles(t *testing.T, what string, a, b map[string][]byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("%s: %d files, then %d", what, len(a), len(b))
	}
	for p, v := range a {
		if !bytes.Equal(v, b[p]) {
			t.Errorf("%s: %s changed", what, p)
		}
	}
}

// TestJobsRefuseOverlappingDirs: degrade and sr refuse an output directory
// that is, holds or lies inside the input directory (through a symbolic
// link too), and leave the inputs untouched.
func TestJobsRefuseOverlappingDirs(t *testing.T) {
	pdm, sr := trainedWeights(t)
	root := t.TempDir()
	in := filepath.Join(root, "in")
	testutil.WriteImages(t, in, 2, 48, 40, 1)
	os.MkdirAll(filepath.Join(in, "sub"), 0o755)
	link := filepath.Join(root, "link")
	if err := os.Symlink(in, link); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	for _, c := range []struct{ name, in, out string }{
		{"same", in, in},
		{"same, spelt otherwise", in, in + "/./"},
		{"inside", in, filepath.Join(in, "sub")},
		{"inside, not there yet", in, filepath.Join(in, "new", "deeper")},
		{"through a link", in, link},
		{"inside through a link", link, filepath.Join(in, "sub")},
		{"holds the input", filepath.Join(in, "sub"), in},
	} {
		_, err := Degrade(context.Background(), DegradeOptions{Weights: pdm, In: c.in, Out: c.out, PerImage: 1, Replace: true, Log: testLog(t)})
		if !errors.Is(err, ErrOverlap) {
			t.Errorf("degrade, %s: %v, want ErrOverlap", c.name, err)
		}
		err = SR(context.Background(), SROptions{Weights: sr, In: c.in, Out: c.out, Replace: true, Log: testLog(t)})
		if !errors.Is(err, ErrOverlap) {
			t.Errorf("sr, %s: %v, want ErrOverlap", c.name, err)
		}
	}
	sameFiles(t, "the input tree", before, snapshot(t, root))
}

// TestJobsWriteAllOrNothing: an input that cannot be read stops degrade
// and sr before they write anything (the output directory does not
// appear, no temporary directory is left), and so do two inputs that
// would write the same file; a directory with outputs in it is replaced
// only with Replace, and then as a whole.
func TestJobsWriteAllOrNothing(t *testing.T) {
	pdm, sr := trainedWeights(t)
	root := t.TempDir()
	in := filepath.Join(root, "in")
	testutil.WriteImages(t, in, 3, 48, 40, 1)
	// Sorted between the good ones; its header is fine, its pixels are not.
	good, _ := os.ReadFile(filepath.Join(in, "img0.png"))
	if err := os.WriteFile(filepath.Join(in, "img1b.png"), good[:len(good)-40], 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "out")
	leftovers := func() []string {
		ents, _ := os.ReadDir(root)
		var names []string
		for _, e := range ents {
			if e.Name() != "in" {
				names = append(names, e.Name())
			}
		}
		return names
	}
	_, err := Degrade(context.Background(), DegradeOptions{Weights: pdm, In: in, Out: out, PerImage: 2, Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "img1b.png") {
		t.Fatalf("degrade with a truncated image: %v, want an error naming it", err)
	}
	if l := leftovers(); len(l) != 0 {
		t.Fatalf("a failed degrade left %v", l)
	}
	err = SR(context.Background(), SROptions{Weights: sr, In: in, Out: out, Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "img1b.png") {
		t.Fatalf("sr with a truncated image: %v, want an error naming it", err)
	}
	if l := leftovers(); len(l) != 0 {
		t.Fatalf("a failed sr left %v", l)
	}
	os.Remove(filepath.Join(in, "img1b.png"))
	// Two inputs with one stem.
	os.WriteFile(filepath.Join(in, "img0.gif"), []byte("GIF89a"), 0o644)
	if _, err := Degrade(context.Background(), DegradeOptions{Weights: pdm, In: in, Out: out, PerImage: 1, Log: testLog(t)}); err == nil || !strings.Contains(err.Error(), "img0.png") {
		t.Fatalf("degrade of img0.png and img0.gif: %v, want an error naming the clash", err)
	}
	os.Remove(filepath.Join(in, "img0.gif"))

	if _, err := Degrade(context.Background(), DegradeOptions{Weights: pdm, In: in, Out: out, PerImage: 1, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	first := snapshot(t, out)
	if len(first) != 4 {
		t.Fatalf("%d outputs, want 3 images and degradations.json", len(first))
	}
	// A second run into the same directory: refused without Replace...
	if _, err := Degrade(context.Background(), DegradeOptions{Weights: pdm, In: in, Out: out, PerImage: 2, Log: testLog(t)}); err == nil || !strings.Contains(err.Error(), "--replace") {
		t.Fatalf("degrade into a directory with outputs: %v, want a refusal naming --replace", err)
	}
	sameFiles(t, "the first outputs", first, snapshot(t, out))
	// ...and with it, the directory is the second run's alone.
	if _, err := Degrade(context.Background(), DegradeOptions{Weights: pdm, In: in, Out: out, PerImage: 2, Replace: true, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	if n := len(snapshot(t, out)); n != 7 {
		t.Fatalf("%d files after --replace, want 6 images and degradations.json", n)
	}
	if l := leftovers(); len(l) != 1 {
		t.Fatalf("after the jobs: %v, want only the output directory", l)
	}
}

const degradeChildEnv = "PDMFLOW_TEST_DEGRADE_CHILD"

// TestDegradeMemoryChild is TestDegradeMemoryIsBounded's child: it
// degrades the image it is given and exits; it does nothing in a normal
// run.
func TestDegradeMemoryChild(t *testing.T) {
	spec := os.Getenv(degradeChildEnv)
	if spec == "" {
		t.Skip("helper of TestDegradeMemoryIsBounded; runs only in its child process")
	}
	var c struct{ Weights, In, Out string }
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatal(err)
	}
	if _, err := Degrade(context.Background(), DegradeOptions{Weights: c.Weights, In: c.In, Out: c.Out, PerImage: 1}); err != nil {
		t.Fatal(err)
	}
}

// TestDegradeMemoryIsBounded degrades a 3000x3000 image with the cpu-small
// PDM in a child process and checks its peak resident memory: the decoded
// image (4 bytes a pixel here), the LR result and a bounded working set,
// not the whole image in floats through the networks (about 60 bytes a
// pixel: 15.7 GB for 16384x16384).
func TestDegradeMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a child process")
	}
	// The cpu-small PDM (random weights): the networks make pays.
	cfg, err := trainer.Preset("cpu-small")
	if err != nil {
		t.Fatal(err)
	}
	p, err := model.NewPDM(cfg.PDM, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	pdm := filepath.Join(t.TempDir(), "pdm.safetensors")
	if err := model.SavePDM(pdm, p); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "in")
	const side = 3000
	testutil.WriteImages(t, in, 1, side, side, 5)
	spec, _ := json.Marshal(map[string]string{"Weights": pdm, "In": in, "Out": filepath.Join(t.TempDir(), "out")})
	cmd := exec.Command(os.Args[0], "-test.run=^TestDegradeMemoryChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), degradeChildEnv+"="+string(spec))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	peak := bench.PeakRSSMiB(cmd.ProcessState)
	if peak == 0 {
		t.Skip("no peak RSS of a child process on this system")
	}
	// The decoded image is 34 MiB, the test binary alone some 30 MiB, the
	// whole image through the networks at once about 700 MiB.
	const limit = 260
	t.Logf("degrade of a %dx%d image: peak RSS %.0f MiB", side, side, peak)
	if peak > limit {
		t.Fatalf("degrade of a %dx%d image peaked at %.0f MiB of RSS, over %d MiB", side, side, peak, limit)
	}
}
