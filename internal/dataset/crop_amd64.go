//go:build amd64 && !noasm

package dataset

import "golang.org/x/sys/cpu"

//go:noescape
func transposeBandSSE(rows *[8]*byte, n int, out *byte, dq int, rev bool)

// haveSSSE3: transposeBandSSE's byte reversal (PSHUFB) is there.
var haveSSSE3 = cpu.X86.HasSSSE3

// transposeBandFast is transposeBand in SSE registers where the CPU has
// them: the same bytes (TestExtractU8AllTransforms), about 3x fewer
// instructions than the uint64 transposes. It reports false when it did
// nothing.
func transposeBandFast(rows *[8][]uint8, out []uint8, q, dq int, rev bool) bool {
	n := len(rows[0]) &^ 7
	if !haveSSSE3 || n == 0 {
		return false
	}
	var ptrs [8]*byte
	for k := range rows {
		_ = rows[k][n-1]
		ptrs[k] = &rows[k][0]
	}
	// The first and last of the n stored words, whichever way dq runs.
	last := q + (n-1)*dq
	if min(q, last) < 0 || max(q, last)+8 > len(out) {
		panic("dataset: transposeBand writes outside the plane")
	}
	transposeBandSSE(&ptrs, n, &out[q], dq, rev)
	return true
}
