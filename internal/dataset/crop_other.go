//go:build !amd64 || noasm

package dataset

// transposeBandFast has no vector path here: transposeBand does the work.
func transposeBandFast(rows *[8][]uint8, out []uint8, q, dq int, rev bool) bool { return false }
