package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/internal/testutil"
)

// TestImportRRDBThenSR: `pdmflow import --kind rrdb` converts an RRDBNet
// checkpoint (BasicSR's names; internal/official's fixture) into SR
// weights that `pdmflow sr` runs, in tiles, at the checkpoint's x4.
func TestImportRRDBThenSR(t *testing.T) {
	dir := t.TempDir()
	weights := filepath.Join(dir, "rrdb.safetensors")
	var o, e bytes.Buffer
	args := []string{"import", "--in", filepath.Join("..", "..", "internal", "official", "testdata", "rrdb_x4.pth"), "--kind", "rrdb", "--out", weights}
	if code := run(context.Background(), args, &o, &e); code != exitOK {
		t.Fatalf("import: exit %d: %s", code, e.String())
	}
	if !strings.Contains(o.String(), `"arch":"rrdb"`) || !strings.Contains(o.String(), `"gc":2`) {
		t.Errorf("import output: %s", o.String())
	}
	lr, sr := filepath.Join(dir, "lr"), filepath.Join(dir, "sr")
	testutil.WriteImages(t, lr, 1, 11, 9, 3)
	if code := run(context.Background(), []string{"sr", "--weights", weights, "--in", lr, "--out", sr, "--tile", "5"}, &o, &e); code != exitOK {
		t.Fatalf("sr: exit %d: %s", code, e.String())
	}
	ims, err := imageio.List(sr)
	if err != nil || len(ims) != 1 {
		t.Fatalf("sr output: %v %v", ims, err)
	}
	im, err := imageio.Load(ims[0])
	if err != nil {
		t.Fatal(err)
	}
	if im.W != 44 || im.H != 36 {
		t.Errorf("SR image %dx%d, want 44x36", im.W, im.H)
	}
}
