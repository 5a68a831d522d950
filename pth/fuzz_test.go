package pth

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode: no input makes Decode panic or return a tensor whose bytes do
// not match its shape, and every error wraps ErrFormat. The corpus starts
// from the fixtures (zip, protocol 4, legacy, the refused os.system one).
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"zip.pth", "proto4.pth", "legacy.pth", "evil.pth"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x80, 2, '}', '.'})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		file, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		var total int
		for _, ts := range file.Tensors {
			es, ok := elemSizes[ts.DType]
			if !ok {
				t.Fatalf("%s: dtype %q", ts.Name, ts.DType)
			}
			if len(ts.Data) != es*ts.NumElements() {
				t.Fatalf("%s: %d bytes for %s %v", ts.Name, len(ts.Data), ts.DType, ts.Shape)
			}
			total += len(ts.Data)
		}
		// Each tensor has at most its storage's elements, and each
		// storage is in the file, but tensors may share a storage.
		if total > len(b)*len(file.Tensors) {
			t.Fatalf("%d tensor bytes from a %d-byte file", total, len(b))
		}
	})
}
