package kernels

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// loadVectors reads one of the reference files computed with PyTorch in
// float64 (testdata/VECTORS.md).
func loadVectors(t *testing.T, name string, into any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("reference vectors: %v", err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("reference vectors %s: %v", name, err)
	}
}

// assertClose fails unless |got-want| <= tol*max(1,|want|) element-wise.
func assertClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(got[i] - want[i]); d > tol*math.Max(1, math.Abs(want[i])) || math.IsNaN(got[i]) {
			t.Fatalf("%s[%d] = %.15g, want %.15g", what, i, got[i], want[i])
		}
	}
}
