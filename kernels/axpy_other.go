//go:build !amd64 || noasm

package kernels

// Unit8 sets out[j] = float32(a[j]) / 255.
func Unit8(out []float32, a []uint8) { unit8Go(out, a) }

// haveAVX2 is false: the vector paths are assembly for amd64.
const haveAVX2 = false

func taps(out, src []float32, idx []int, stride int, w []float32, zero bool) {
	checkTaps(out, src, idx, stride, w)
	tapsGo(out, src, idx, stride, w, zero)
}
