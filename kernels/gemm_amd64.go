//go:build amd64 && !noasm

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:generate go run ./internal/asmgen sgemm_amd64.s

//go:noescape
func sgemmKernel6x16AVX2(kc int, a, b, c *float32, ldc int, alpha float32)

//go:noescape
func sgemmKernel12x32AVX512(kc int, a, b, c *float32, ldc int, alpha float32)

// float32Kernels lists the micro-kernels this CPU can run, fastest first;
// the portable kernel is always last.
func float32Kernels() []microKernel[float32] {
	var ks []microKernel[float32]
	if cpu.X86.HasAVX512F {
		ks = append(ks, microKernel[float32]{mr: 12, nr: 32, name: "avx512-12x32", fn: func(kc int, a, b, c []float32, ldc int, alpha float32) {
			_ = a[12*kc-1]
			_ = b[32*kc-1]
			_ = c[11*ldc+31]
			sgemmKernel12x32AVX512(kc, unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(c), ldc, alpha)
		}})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, microKernel[float32]{mr: 6, nr: 16, name: "avx2-6x16", fn: func(kc int, a, b, c []float32, ldc int, alpha float32) {
			_ = a[6*kc-1]
			_ = b[16*kc-1]
			_ = c[5*ldc+15]
			sgemmKernel6x16AVX2(kc, unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(c), ldc, alpha)
		}})
	}
	return append(ks, goKernel[float32]())
}
