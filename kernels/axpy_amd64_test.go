//go:build amd64 && !noasm

package kernels

import "testing"

// TestTapsNarrowerPaths runs TestTapsMatchesGo's checks with the AVX-512
// taps and Unit8 and then the FMA Unit8 turned off, so that an AVX-512 machine checks
// the AVX2 blocks and the plain Go conversion too.
func TestTapsNarrowerPaths(t *testing.T) {
	if !haveTapsAVX512 && !haveUnitFMA {
		t.Skip("this CPU has neither AVX-512 nor FMA: TestTapsMatchesGo already covers its only path")
	}
	defer func(a, u, f bool) {
		haveTapsAVX512, haveUnitAVX512, haveUnitFMA = a, u, f
	}(haveTapsAVX512, haveUnitAVX512, haveUnitFMA)
	haveTapsAVX512, haveUnitAVX512 = false, false
	t.Run("avx2", checkTapsMatchesGo)
	haveUnitFMA = false
	t.Run("go-unit8", checkTapsMatchesGo)
}
