//go:build !amd64 || noasm

package kernels

func axpy4(out, a, b, c, d []float32, c0, c1, c2, c3 float32) {
	axpy4Go(out, a, b, c, d, c0, c1, c2, c3)
}

func scale(out, a []float32, c float32) { scaleGo(out, a, c) }
