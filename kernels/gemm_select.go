package kernels

import "sync/atomic"

func goKernel[T Float]() microKernel[T] {
	return microKernel[T]{mr: 4, nr: 4, name: "go-4x4", fns: []kernelFn[T]{
		1: goKernelRows[T](1, 4), 2: goKernelRows[T](2, 4), 3: goKernelRows[T](3, 4), 4: goKernel4x4[T]}}
}

var (
	kernel32 atomic.Pointer[microKernel[float32]]
	kernel64 = goKernel[float64]()
)

func init() {
	k := float32Kernels()[0]
	kernel32.Store(&k)
}

// GemmKernel names the float32 micro-kernel Gemm uses.
func GemmKernel() string { return kernel32.Load().name }

// GemmKernels names the float32 micro-kernels this CPU and build can run,
// fastest first.
func GemmKernels() []string {
	var names []string
	for _, k := range float32Kernels() {
		names = append(names, k.name)
	}
	return names
}

// UseGemmKernel selects the float32 micro-kernel by name (one of
// GemmKernels) and reports whether it exists. Tests and benchmarks use it to
// run every path on the machine at hand.
func UseGemmKernel(name string) bool {
	for _, k := range float32Kernels() {
		if k.name == name {
			kernel32.Store(&k)
			return true
		}
	}
	return false
}

func kernelFor[T Float]() *microKernel[T] {
	var zero T
	if _, ok := any(zero).(float32); ok {
		return any(kernel32.Load()).(*microKernel[T])
	}
	return any(&kernel64).(*microKernel[T])
}
