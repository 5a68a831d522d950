//go:build amd64 && !noasm

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

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

//go:noescape
func transpose8AVX2(dst *float32, ds int, src *float32, ss int)

// canTranspose8 reports whether transpose8 works for T (float32 with AVX2).
func canTranspose8[T Float]() bool {
	var zero T
	_, ok := any(zero).(float32)
	return ok && haveAVX2
}

// transpose8 writes dst[j*ds+i] = src[i*ss+j] for i, j < 8; only where
// canTranspose8.
func transpose8[T Float](dst []T, ds int, src []T, ss int) {
	d, s := any(dst).([]float32), any(src).([]float32)
	_ = d[7*ds+7]
	_ = s[7*ss+7]
	transpose8AVX2(unsafe.SliceData(d), ds, unsafe.SliceData(s), ss)
}
