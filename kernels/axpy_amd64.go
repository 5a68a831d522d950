//go:build amd64 && !noasm

package kernels

import "golang.org/x/sys/cpu"

//go:noescape
func unitAVX2(n int, out *float32, a *uint8)

var haveAVX2 = cpu.X86.HasAVX2

// haveUnitFMA: unitAVX2 corrects its reciprocal with FMAs.
var haveUnitFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func unitAVX512(n int, out *float32, a *uint8)

// haveUnitAVX512: Unit8 converts blocks of 32 in AVX-512 registers.
var haveUnitAVX512 = cpu.X86.HasAVX512F

// Unit8 sets out[j] = float32(a[j]) / 255, the same bits as the division.
func Unit8(out []float32, a []uint8) {
	if len(out) == 0 {
		return
	}
	_ = a[len(out)-1]
	j := 0
	if n := len(out) &^ 31; haveUnitAVX512 && n > 0 {
		unitAVX512(n, &out[0], &a[0])
		j = n
	}
	if n := (len(out) - j) &^ 7; haveUnitFMA && n > 0 {
		unitAVX2(n, &out[j], &a[j])
		j += n
	}
	unit8Go(out[j:], a[j:])
}

//go:noescape
func tapsAVX2(n int, out, src *float32, idx *int, stride int, w *float32, k int, zero bool)

//go:noescape
func tapsAVX512(n int, out, src *float32, idx *int, stride int, w *float32, k int, zero bool)

// haveTapsAVX512: taps runs blocks of 128 outputs in AVX-512 registers (a
// variable, so that the tests cover the AVX2 path on an AVX-512 machine).
var haveTapsAVX512 = cpu.X86.HasAVX512F

// taps sets out[j] to the sum over t of w[t]*src[idx[t]*stride+j],
// accumulated in tap order in registers: from the first term alone, or
// from +0 when zero is set, every product and sum rounded on its own. It
// gives the bits of scale (or clear) then axpy4 and axpy1 over the same
// rows, without their round trips through out.
func taps(out, src []float32, idx []int, stride int, w []float32, zero bool) {
	checkTaps(out, src, idx, stride, w)
	j := 0
	if n := len(out) &^ 127; haveTapsAVX512 && n > 0 {
		tapsAVX512(n, &out[0], &src[0], &idx[0], stride, &w[0], len(idx), zero)
		j = n
	}
	if n := (len(out) - j) &^ 7; haveAVX2 && n > 0 {
		tapsAVX2(n, &out[j], &src[j], &idx[0], stride, &w[0], len(idx), zero)
		j += n
	}
	if j < len(out) {
		tapsGo(out[j:], src[j:], idx, stride, w, zero)
	}
}
