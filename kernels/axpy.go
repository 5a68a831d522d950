package kernels

// axpy4Go is axpy4 in plain Go, the reference of the assembly.
func axpy4Go(out, a, b, c, d []float32, c0, c1, c2, c3 float32) {
	a, b, c, d = a[:len(out)], b[:len(out)], c[:len(out)], d[:len(out)]
	for j := range out {
		v := out[j] + c0*a[j]
		v += c1 * b[j]
		v += c2 * c[j]
		out[j] = v + c3*d[j]
	}
}

// scaleGo is scale in plain Go.
func scaleGo(out, a []float32, c float32) {
	a = a[:len(out)]
	for j, v := range a {
		out[j] = c * v
	}
}

// axpy1Go is axpy1 in plain Go.
func axpy1Go(out, a []float32, c float32) {
	a = a[:len(out)]
	for j, v := range a {
		out[j] += c * v
	}
}

// unit8Go is Unit8 in plain Go.
func unit8Go(out []float32, a []uint8) {
	a = a[:len(out)]
	for j, v := range a {
		out[j] = float32(v) / 255
	}
}
