package schema

import "testing"

// BenchmarkFirstNonFinite is the finiteness check of one W3 message's
// y_ref values (34 rows of 3x32x32).
func BenchmarkFirstNonFinite(b *testing.B) {
	v := make([]float32, 34*3*32*32)
	for i := range v {
		v[i] = float32(i%255) / 255
	}
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		if firstNonFinite(v) != -1 {
			b.Fatal("finite values reported")
		}
	}
}
