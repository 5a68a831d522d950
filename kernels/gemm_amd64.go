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
func sgemmAVX2x16C1(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX2x16C2(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX2x16C3(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX2x16C4(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX2x16C5(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func sgemmAVX2x16C6(kc int, a *float32, lda int, b *float32, boffs *int32, c *float32, ldc int, alpha float32, load int, bias *float32, act int, slope float32)

//go:noescape
func packB16AVX2(kc int, b *float32, boffs *int32, dst *float32)

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

//go:noescape
func transpose8AVX2(dst *float32, ds int, src *float32, ss int)

// canTranspose8 reports whether transpose8 works for T (float32 with AVX2;
// the assembly is in axpy_amd64.s).
func canTranspose8[T Float]() bool {
	var zero T
	_, ok := any(zero).(float32)
	return ok && haveAVX2
}

// transpose8 writes dst[j*ds+i] = src[i*ss+j] for i, j < 8; only where
// canTranspose8.
func transpose8[T Float](dst []T, ds int, src []T, ss int) {
	d, s := any(dst).([]float32), any(src).([]float32)
	_ = d[7*ds+7]
	_ = s[7*ss+7]
	transpose8AVX2(unsafe.SliceData(d), ds, unsafe.SliceData(s), ss)
}

// wrapAsm turns the assembly kernel for rows rows and nr columns into a
// kernelFn, checking the bounds the assembly relies on (the offsets in
// boffs are the caller's promise: each at most bspan-nr). fc, where not
// nil, is the same kernel for a contiguous B panel: it is called when
// boffs is the packed panel's table seqOffsets[nr].
func wrapAsm(rows, nr int, f, fc asmKernel) kernelFn[float32] {
	seq := &seqOffsets[nr][0]
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
		k := f
		if fc != nil && unsafe.SliceData(boffs) == seq {
			k = fc
		}
		k(kc, unsafe.SliceData(a), lda, unsafe.SliceData(b), unsafe.SliceData(boffs), unsafe.SliceData(c), ldc, alpha, l, bias, act, e.slope)
	}
}

// asmFamily makes the micro-kernel of the assembly kernels fs (rows 1, 2,
// ...) and, where not nil, their contiguous-B variants fcs.
func asmFamily(name string, nr int, fs, fcs []asmKernel) microKernel[float32] {
	k := microKernel[float32]{mr: len(fs), nr: nr, name: name, balanced: true, fns: make([]kernelFn[float32], len(fs)+1)}
	for r, f := range fs {
		var fc asmKernel
		if fcs != nil {
			fc = fcs[r]
		}
		k.fns[r+1] = wrapAsm(r+1, nr, f, fc)
	}
	return k
}

// packB16 copies the 16 columns of B at the offsets boffs[:kc] into a
// contiguous panel: dst[16*p+j] = b[boffs[p]+j].
func packB16(kc int, b []float32, boffs []int32, bspan int, dst []float32) {
	if kc <= 0 {
		return
	}
	_ = boffs[kc-1]
	_ = b[bspan-1]
	_ = dst[16*kc-1]
	packB16AVX2(kc, unsafe.SliceData(b), unsafe.SliceData(boffs), unsafe.SliceData(dst))
}

// float32Kernels lists the micro-kernels this CPU can run, fastest first;
// the portable kernel is always last.
func float32Kernels() []microKernel[float32] {
	var ks []microKernel[float32]
	if cpu.X86.HasAVX512F {
		ks = append(ks, asmFamily("avx512-12x32", 32, []asmKernel{
			sgemmAVX512x32R1, sgemmAVX512x32R2, sgemmAVX512x32R3, sgemmAVX512x32R4,
			sgemmAVX512x32R5, sgemmAVX512x32R6, sgemmAVX512x32R7, sgemmAVX512x32R8,
			sgemmAVX512x32R9, sgemmAVX512x32R10, sgemmAVX512x32R11, sgemmAVX512x32R12}, nil))
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		// Panels of B read in place (convolutions) are copied into a
		// contiguous panel once there are several row panels: the loads of
		// scattered, misaligned rows cost the 6x16 kernel up to a third of
		// its speed, and rows 4 KiB apart (1x1 convolutions on 32x32
		// planes) share one set of L1.
		k := asmFamily("avx2-6x16", 16, []asmKernel{
			sgemmAVX2x16R1, sgemmAVX2x16R2, sgemmAVX2x16R3, sgemmAVX2x16R4, sgemmAVX2x16R5, sgemmAVX2x16R6}, []asmKernel{
			sgemmAVX2x16C1, sgemmAVX2x16C2, sgemmAVX2x16C3, sgemmAVX2x16C4, sgemmAVX2x16C5, sgemmAVX2x16C6})
		k.pack = packB16
		ks = append(ks, k)
	}
	return append(ks, goKernel[float32]())
}
