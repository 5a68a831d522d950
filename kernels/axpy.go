package kernels

// unit8Go is Unit8 in plain Go.
func unit8Go(out []float32, a []uint8) {
	a = a[:len(out)]
	for j, v := range a {
		out[j] = float32(v) / 255
	}
}

// tapsGo is taps in plain Go: each output the taps' sum in tap order, from
// +0 when zero is set, every product and sum rounded on its own (the
// conversions keep the compiler from fusing them).
func tapsGo(out, src []float32, idx []int, stride int, w []float32, zero bool) {
	for j := range out {
		acc := float32(w[0] * src[idx[0]*stride+j])
		if zero {
			acc = 0 + acc
		}
		for t := 1; t < len(idx); t++ {
			acc = acc + float32(w[t]*src[idx[t]*stride+j])
		}
		out[j] = acc
	}
}

// checkTaps panics unless every tap of taps reads inside src.
func checkTaps(out, src []float32, idx []int, stride int, w []float32) {
	if len(idx) == 0 || len(w) < len(idx) || stride < 0 {
		panic("kernels: taps: no taps, fewer weights than taps, or a negative stride")
	}
	last := len(src) - len(out)
	for _, i := range idx {
		if i < 0 || i*stride > last {
			panic("kernels: taps: a tap reads outside src")
		}
	}
}
