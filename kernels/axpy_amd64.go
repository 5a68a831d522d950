//go:build amd64 && !noasm

package kernels

import "golang.org/x/sys/cpu"

//go:noescape
func axpy4AVX2(n int, out, a, b, c, d *float32, c0, c1, c2, c3 float32)

//go:noescape
func scaleAVX2(n int, out, a *float32, c float32)

//go:noescape
func axpy1AVX2(n int, out, a *float32, c float32)

//go:noescape
func unitAVX2(n int, out *float32, a *uint8)

var haveAVX2 = cpu.X86.HasAVX2

// axpy1 sets out[j] += c*a[j] (the product rounded, then the sum).
func axpy1(out, a []float32, c float32) {
	n := len(out) &^ 7
	if haveAVX2 && n > 0 {
		_ = a[len(out)-1]
		axpy1AVX2(n, &out[0], &a[0], c)
		axpy1Go(out[n:], a[n:], c)
		return
	}
	axpy1Go(out, a, c)
}

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

// axpy4 sets out[j] = (((out[j] + c0*a[j]) + c1*b[j]) + c2*c[j]) + c3*d[j],
// every operation rounded on its own: the same bits as axpy4Go. a, b, c
// and d are at least as long as out.
func axpy4(out, a, b, c, d []float32, c0, c1, c2, c3 float32) {
	n := len(out) &^ 7
	if haveAVX2 && n > 0 {
		_, _, _, _ = a[len(out)-1], b[len(out)-1], c[len(out)-1], d[len(out)-1]
		axpy4AVX2(n, &out[0], &a[0], &b[0], &c[0], &d[0], c0, c1, c2, c3)
		axpy4Go(out[n:], a[n:], b[n:], c[n:], d[n:], c0, c1, c2, c3)
		return
	}
	axpy4Go(out, a, b, c, d, c0, c1, c2, c3)
}

// scale sets out[j] = c*a[j].
func scale(out, a []float32, c float32) {
	n := len(out) &^ 7
	if haveAVX2 && n > 0 {
		_ = a[len(out)-1]
		scaleAVX2(n, &out[0], &a[0], c)
		scaleGo(out[n:], a[n:], c)
		return
	}
	scaleGo(out, a, c)
}
