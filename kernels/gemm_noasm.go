//go:build !amd64 || noasm

package kernels

// float32Kernels lists the micro-kernels this build can run: only the
// portable one without assembly.
func float32Kernels() []microKernel[float32] { return []microKernel[float32]{goKernel[float32]()} }

// canTranspose16 reports that there is no block transpose in this build.
func canTranspose16[T Float]() bool { return false }

func transpose16[T Float](dst []T, ds int, src []T, ss int) { panic("kernels: no transpose16") }

func canTranspose8[T Float]() bool { return false }

func transpose8[T Float](dst []T, ds int, src []T, ss int) { panic("kernels: no transpose8") }
