//go:build amd64 && !noasm

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:generate go run ./internal/asmgen sgemm_amd64.s

// The assembly micro-kernels, one per row count (sgemm_amd64.s); see
// kernelFn for what they compute.
type asmKernel func(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX2x16R1(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX2x16R2(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX2x16R3(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX2x16R4(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX2x16R5(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX2x16R6(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R1(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R2(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R3(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R4(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R5(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R6(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R7(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R8(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R9(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R10(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R11(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX512x32R12(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func transpose16AVX512(dst *float32, ds int, src *float32, ss int)

var hasTranspose16 = cpu.X86.HasAVX512F

// canTranspose16 reports whether transpose16 works for T (float32 with
// AVX-512).
func canTranspose16[T Float]() bool {
	var zero T
	_, ok := any(zero).(float32)
	return ok && hasTranspose16
}

// transpose16 writes dst[j*ds+i] = src[i*ss+j] for i, j < 16; only where
// canTranspose16.
func transpose16[T Float](dst []T, ds int, src []T, ss int) {
	d, sr := any(dst).([]float32), any(src).([]float32)
	_ = d[15*ds+15]
	_ = sr[15*ss+15]
	transpose16AVX512(unsafe.SliceData(d), ds, unsafe.SliceData(sr), ss)
}

// wrapAsm turns the assembly kernel for rows rows and nr columns into a
// kernelFn, checking the bounds the assembly relies on (the offsets in
// boffs are the caller's promise: each at most bspan-nr).
func wrapAsm(rows, nr int, f asmKernel) kernelFn[float32] {
	return func(kc int, a []float32, lda int, b []float32, boffs []int32, bspan int, c []float32, ldc int, alpha float32, load bool, e epi[float32]) {
		if kc > 0 {
			_ = a[(kc-1)*lda+rows-1]
			_ = boffs[kc-1]
			_ = b[bspan-1]
		}
		_ = c[(rows-1)*ldc+nr-1]
		l, act := 0, 0
		if load {
			l = 1
		}
		if e.leaky {
			act = 1
		}
		var bias *float32
		if e.bias != nil {
			bias = &e.bias[:rows][0]
		}
		f(kc, unsafe.SliceData(a), lda, unsafe.SliceData(b), unsafe.SliceData(boffs), unsafe.SliceData(c), ldc, alpha, l, bias, act, e.slope)
	}
}

func asmFamily(name string, nr int, fs ...asmKernel) microKernel[float32] {
	k := microKernel[float32]{mr: len(fs), nr: nr, name: name, balanced: true, fns: make([]kernelFn[float32], len(fs)+1)}
	for r, f := range fs {
		k.fns[r+1] = wrapAsm(r+1, nr, f)
	}
	return k
}

// float32Kernels lists the micro-kernels this CPU can run, fastest first;
// the portable kernel is always last.
func float32Kernels() []microKernel[float32] {
	var ks []microKernel[float32]
	if cpu.X86.HasAVX512F {
		ks = append(ks, asmFamily("avx512-12x32", 32,
			sgemmAVX512x32R1, sgemmAVX512x32R2, sgemmAVX512x32R3, sgemmAVX512x32R4,
			sgemmAVX512x32R5, sgemmAVX512x32R6, sgemmAVX512x32R7, sgemmAVX512x32R8,
			sgemmAVX512x32R9, sgemmAVX512x32R10, sgemmAVX512x32R11, sgemmAVX512x32R12))
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, asmFamily("avx2-6x16", 16,
			sgemmAVX2x16R1, sgemmAVX2x16R2, sgemmAVX2x16R3, sgemmAVX2x16R4, sgemmAVX2x16R5, sgemmAVX2x16R6))
	}
	return append(ks, goKernel[float32]())
}
