package jobs

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/trainer"
)

// TestStudy runs a 3 configs x 2 distributions x 2 seeds study at a tiny
// scale: every cell has results, the runs that do not depend on the PDM
// are shared between the configs, and so is the single-process run of two
// configs that differ only in a stream setting; the table counts each
// seed once per method and has the paired streamed-minus-single-process
// row; a second call reads the cells instead of running them.
func TestStudy(t *testing.T) {
	photos, out := t.TempDir(), t.TempDir()
	testutil.WriteImages(t, photos, 4, 384, 384, 5)
	a, b := tinyConfig(2), tinyConfig(2)
	a.HRCrop, b.HRCrop = 32, 32
	a.Name, b.Name = "plain", "smooth"
	b.Loss.KernelSmooth = 0.3
	c := *a
	c.Name, c.PublishEvery = "publish1", 1
	o := StudyOptions{Configs: []*trainer.Config{a, b, &c}, Dists: []string{"default", "motion"}, Seeds: []uint64{1, 2},
		Photos: photos, Out: out, Producers: 1, CompareDirect: true, Log: slog.New(slog.DiscardHandler)}
	res, err := Study(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cells) != 12 {
		t.Fatalf("%d cells", len(res.Cells))
	}
	shared, _ := filepath.Glob(filepath.Join(out, "shared", "bicubic-sr", "*", "s*"))
	oracles, _ := filepath.Glob(filepath.Join(out, "shared", "oracle-sr", "*", "*", "s*"))
	direct, _ := filepath.Glob(filepath.Join(out, "shared", "pdm-sr-direct", "*", "*", "s*"))
	if len(shared) != 2 || len(oracles) != 4 || len(direct) != 8 {
		t.Errorf("%d bicubic-SR runs (want one per seed), %d oracle runs (one per distribution and seed), %d single-process runs (8: plain and publish1 share theirs)",
			len(shared), len(oracles), len(direct))
	}
	md := res.Markdown()
	for _, want := range []string{"| default | bicubic upsampling | 2 |", "| motion | PDM-SR, plain | 2 |", "| motion | PDM-SR, smooth | 2 |", "| default | PDM-SR single process, plain | 2 |", "| default | oracle SR (trained on the true degradation) | 2 |",
		"| default | streamed minus single process, publish1 | 2 |", "| motion | PDM-SR single process, publish1 | 2 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("the table lacks %q:\n%s", want, md)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "study.md")); err != nil {
		t.Error(err)
	}
	// Read again: nothing runs (a removed run directory is not rebuilt in
	// read-only mode, and the others are read).
	os.RemoveAll(filepath.Join(out, "runs", "smooth", "motion", "s2"))
	o.ReadOnly = true
	again, err := Study(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Cells) != 11 {
		t.Errorf("read-only: %d cells, want the 11 with results", len(again.Cells))
	}
	if _, err := os.Stat(filepath.Join(out, "runs", "smooth", "motion", "s2")); err == nil {
		t.Error("a read-only study ran a cell")
	}
}
