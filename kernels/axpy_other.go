//go:build !amd64 || noasm

package kernels

func axpy4(out, a, b, c, d []float32, c0, c1, c2, c3 float32) {
	axpy4Go(out, a, b, c, d, c0, c1, c2, c3)
}

func scale(out, a []float32, c float32) { scaleGo(out, a, c) }

func axpy1(out, a []float32, c float32) { axpy1Go(out, a, c) }

// Unit8 sets out[j] = float32(a[j]) / 255.
func Unit8(out []float32, a []uint8) { unit8Go(out, a) }

// haveAVX2 is false: the vector paths are assembly for amd64.
const haveAVX2 = false
