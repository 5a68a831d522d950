package pairset_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/pairset"
)

// python returns an interpreter that imports every module of mods, or ""
// and why not. PDMFLOW_REQUIRE_PYTHON=1 (CI) turns its absence into a
// failure.
func python(t *testing.T, mods string) string {
	t.Helper()
	var why []string
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		out, err := exec.Command(py, "-c", "import "+mods).CombinedOutput()
		if err == nil {
			return py
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		why = append(why, py+": "+lines[len(lines)-1])
	}
	msg := "no Python with " + mods + " (" + strings.Join(why, "; ") + "); Debian: apt-get install python3-torch python3-pil"
	if os.Getenv("PDMFLOW_REQUIRE_PYTHON") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// docSnippet returns the python code block of docs/datasets.md that
// defines class.
func docSnippet(t *testing.T, class string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "datasets.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(doc), "```python\n")[1:] {
		code, _, _ := strings.Cut(block, "```")
		if strings.Contains(code, "class "+class+"(") {
			return code
		}
	}
	t.Fatalf("docs/datasets.md has no python block defining %s", class)
	return ""
}

// TestPythonReadsBasicSR runs the PyTorch Dataset of docs/datasets.md on a
// BasicSR export and compares every pair it yields, and the provenance
// order, with the stream's.
func TestPythonReadsBasicSR(t *testing.T) {
	py := python(t, "numpy, torch, PIL")
	ctx := context.Background()
	msgs, bad := testStream()
	dir := t.TempDir()
	w, err := pairset.NewBasicSR(ctx, openDir(t, dir), pairset.Options{RowsPerFile: 4})
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, msgs, bad)
	script := docSnippet(t, "PdmflowBasicSR") + `
import sys
ds = PdmflowBasicSR(sys.argv[1])
items = []
for i in range(len(ds)):
    lr, hr = ds[i]
    items.append({"lr": list(lr.shape), "hr": list(hr.shape), "lr_sum": float(lr.double().sum()), "hr_sum": float(hr.double().sum()),
                  "lr_dtype": str(lr.dtype)})
print(json.dumps({"items": items, "ids": [p["sample_id"] for p in provenance(sys.argv[1])]}))
`
	f := filepath.Join(t.TempDir(), "read.py")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(py, f, dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", py, err, stderr.String())
	}
	var got struct {
		Items []struct {
			LR, HR  []int
			LRSum   float64 `json:"lr_sum"`
			HRSum   float64 `json:"hr_sum"`
			LRDtype string  `json:"lr_dtype"`
		}
		IDs []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	pairs, hdrs, _ := uniquePairs(msgs)
	if len(got.Items) != len(pairs) || len(got.IDs) != len(pairs) {
		t.Fatalf("Python read %d pairs and %d provenance lines, want %d", len(got.Items), len(got.IDs), len(pairs))
	}
	for i, p := range pairs {
		h, it := hdrs[i], got.Items[i]
		var hrSum, lrSum float64
		for _, v := range p.XRef {
			hrSum += float64(v) / 255
		}
		for _, v := range imageio.FromPlanarFloat(h.LRW, h.LRH, p.YRef).Pix {
			lrSum += float64(v) / 255
		}
		if !equalInts(it.HR, []int{3, h.HRH, h.HRW}) || !equalInts(it.LR, []int{3, h.LRH, h.LRW}) || it.LRDtype != "torch.float32" ||
			math.Abs(it.HRSum-hrSum) > 1e-3 || math.Abs(it.LRSum-lrSum) > 1e-3 || got.IDs[i] != p.SampleID {
			t.Errorf("pair %d (%s): Python gave %+v, id %s; want shapes 3x%dx%d and 3x%dx%d, sums %.4f %.4f", i, p.SampleID, it, got.IDs[i],
				h.LRH, h.LRW, h.HRH, h.HRW, lrSum, hrSum)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
