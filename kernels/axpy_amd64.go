//go:build amd64 && !noasm

package kernels

import "golang.org/x/sys/cpu"

//go:noescape
func unitAVX2(n int, out *float32, a *uint8)

var haveAVX2 = cpu.X86.HasAVX2

// Unit8 sets out[j] = float32(a[j]) / 255, the same bits as the division.
func Unit8(out []float32, a []uint8) {
	n := len(out) &^ 7
	if haveAVX2 && n > 0 {
		_ = a[len(out)-1]
		unitAVX2(n, &out[0], &a[0])
		unit8Go(out[n:], a[n:])
		return
	}
	unit8Go(out, a)
}

//go:noescape
func tapsAVX2(n int, out, src *float32, idx *int, stride int, w *float32, k int, zero bool)

// taps sets out[j] to the sum over t of w[t]*src[idx[t]*stride+j],
// accumulated in tap order in registers: from the first term alone, or
// from +0 when zero is set, every product and sum rounded on its own. It
// gives the bits of scale (or clear) then axpy4 and axpy1 over the same
// rows, without their round trips through out.
func taps(out, src []float32, idx []int, stride int, w []float32, zero bool) {
	checkTaps(out, src, idx, stride, w)
	n := len(out) &^ 7
	if haveAVX2 && n > 0 {
		tapsAVX2(n, &out[0], &src[0], &idx[0], stride, &w[0], len(idx), zero)
		if n < len(out) {
			tapsGo(out[n:], src[n:], idx, stride, w, zero)
		}
		return
	}
	tapsGo(out, src, idx, stride, w, zero)
}
