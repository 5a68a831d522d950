//go:build !amd64 || noasm

package kernels

// float32Kernels lists the micro-kernels this build can run: only the
// portable one without assembly.
func float32Kernels() []microKernel[float32] { return []microKernel[float32]{goKernel[float32]()} }
