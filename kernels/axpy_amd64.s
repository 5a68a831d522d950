//go:build amd64 && !noasm

#include "textflag.h"

// func unitAVX2(n int, out *float32, a *uint8)
// out[j] = float32(a[j]) / 255 for j < n, n a multiple of 8 (needs FMA).
// The quotient q = x*r with r = float32(1/255) is corrected once:
// q + (x - q*255)*r, the residual computed exactly by an FMA. That gives the
// correctly rounded division's bits for every byte (TestTapsMatchesGo
// checks all 256) at the cost of two FMAs and a multiply, where VDIVPS
// is a long-latency, low-throughput instruction.
TEXT ·unitAVX2(SB), NOSPLIT, $0-24
	MOVQ n+0(FP), CX
	MOVQ out+8(FP), DI
	MOVQ a+16(FP), R8
	MOVL $0x437f0000, AX // 255.0
	MOVL AX, X1
	VBROADCASTSS X1, Y1
	MOVL $0x3b808081, AX // float32(1/255)
	MOVL AX, X3
	VBROADCASTSS X3, Y3
	XORQ AX, AX

u16:
	LEAQ 16(AX), BX
	CMPQ BX, CX
	JGT  u8
	VPMOVZXBD    (R8)(AX*1), Y2
	VPMOVZXBD    8(R8)(AX*1), Y6
	VCVTDQ2PS    Y2, Y2
	VCVTDQ2PS    Y6, Y6
	VMULPS       Y3, Y2, Y4
	VMULPS       Y3, Y6, Y7
	VFNMADD231PS Y1, Y4, Y2 // x - q*255, exact
	VFNMADD231PS Y1, Y7, Y6
	VFMADD231PS  Y3, Y2, Y4 // q + residual*r
	VFMADD231PS  Y3, Y6, Y7
	VMOVUPS      Y4, (DI)(AX*4)
	VMOVUPS      Y7, 32(DI)(AX*4)
	MOVQ         BX, AX
	JMP          u16

u8:
	CMPQ AX, CX
	JGE  udone
	VPMOVZXBD    (R8)(AX*1), Y2
	VCVTDQ2PS    Y2, Y2
	VMULPS       Y3, Y2, Y4
	VFNMADD231PS Y1, Y4, Y2
	VFMADD231PS  Y3, Y2, Y4
	VMOVUPS      Y4, (DI)(AX*4)
	ADDQ         $8, AX
	JMP          u8

udone:
	VZEROUPPER
	RET

// func unitAVX512(n int, out *float32, a *uint8)
// unitAVX2 for n a multiple of 32, sixteen bytes per register.
TEXT ·unitAVX512(SB), NOSPLIT, $0-24
	MOVQ n+0(FP), CX
	MOVQ out+8(FP), DI
	MOVQ a+16(FP), R8
	MOVL $0x437f0000, AX // 255.0
	MOVL AX, X1
	VBROADCASTSS X1, Z1
	MOVL $0x3b808081, AX // float32(1/255)
	MOVL AX, X3
	VBROADCASTSS X3, Z3
	XORQ AX, AX

z32:
	CMPQ AX, CX
	JGE  zudone
	VPMOVZXBD    (R8)(AX*1), Z2
	VPMOVZXBD    16(R8)(AX*1), Z6
	VCVTDQ2PS    Z2, Z2
	VCVTDQ2PS    Z6, Z6
	VMULPS       Z3, Z2, Z4
	VMULPS       Z3, Z6, Z7
	VFNMADD231PS Z1, Z4, Z2
	VFNMADD231PS Z1, Z7, Z6
	VFMADD231PS  Z3, Z2, Z4
	VFMADD231PS  Z3, Z6, Z7
	VMOVUPS      Z4, (DI)(AX*4)
	VMOVUPS      Z7, 64(DI)(AX*4)
	ADDQ         $32, AX
	JMP          z32

zudone:
	VZEROUPPER
	RET

// func tapsAVX2(n int, out, src *float32, idx *int, stride int, w *float32, k int, zero bool)
// out[j] = (...((s + w[0]*src[idx[0]*stride+j]) + w[1]*src[idx[1]*stride+j]) ...) + w[k-1]*src[idx[k-1]*stride+j]
// for j < n, n a multiple of 8, k >= 1, where s is +0 when zero is set and
// the first term stands alone otherwise: the taps accumulated in order in
// registers, each product and sum rounded on its own, as scale (or clear)
// followed by axpy4 and axpy1 compute them through memory.
TEXT ·tapsAVX2(SB), NOSPLIT, $0-57
	MOVQ    n+0(FP), CX
	MOVQ    out+8(FP), DI
	MOVQ    src+16(FP), SI
	MOVQ    idx+24(FP), R8
	MOVQ    stride+32(FP), R12
	MOVQ    w+40(FP), R9
	MOVQ    k+48(FP), R10
	MOVBLZX zero+56(FP), R11
	VXORPS  Y15, Y15, Y15
	XORQ    AX, AX

// 64 outputs at a time in eight accumulators: each sum is a chain of
// dependent additions, and eight chains keep both adders busy where four
// wait on the adds' latency.
t64:
	LEAQ 64(AX), BX
	CMPQ BX, CX
	JGT  t32
	MOVQ  (R8), DX
	IMULQ R12, DX
	LEAQ  (SI)(DX*4), DX
	VBROADCASTSS (R9), Y8
	VMULPS (DX)(AX*4), Y8, Y0
	VMULPS 32(DX)(AX*4), Y8, Y1
	VMULPS 64(DX)(AX*4), Y8, Y2
	VMULPS 96(DX)(AX*4), Y8, Y3
	VMULPS 128(DX)(AX*4), Y8, Y4
	VMULPS 160(DX)(AX*4), Y8, Y5
	VMULPS 192(DX)(AX*4), Y8, Y6
	VMULPS 224(DX)(AX*4), Y8, Y7
	TESTQ R11, R11
	JZ    t64taps
	VADDPS Y0, Y15, Y0
	VADDPS Y1, Y15, Y1
	VADDPS Y2, Y15, Y2
	VADDPS Y3, Y15, Y3
	VADDPS Y4, Y15, Y4
	VADDPS Y5, Y15, Y5
	VADDPS Y6, Y15, Y6
	VADDPS Y7, Y15, Y7

t64taps:
	MOVQ $1, BX

t64loop:
	CMPQ BX, R10
	JGE  t64store
	MOVQ  (R8)(BX*8), DX
	IMULQ R12, DX
	LEAQ  (SI)(DX*4), DX
	VBROADCASTSS (R9)(BX*4), Y8
	VMULPS (DX)(AX*4), Y8, Y9
	VADDPS Y9, Y0, Y0
	VMULPS 32(DX)(AX*4), Y8, Y10
	VADDPS Y10, Y1, Y1
	VMULPS 64(DX)(AX*4), Y8, Y11
	VADDPS Y11, Y2, Y2
	VMULPS 96(DX)(AX*4), Y8, Y12
	VADDPS Y12, Y3, Y3
	VMULPS 128(DX)(AX*4), Y8, Y13
	VADDPS Y13, Y4, Y4
	VMULPS 160(DX)(AX*4), Y8, Y14
	VADDPS Y14, Y5, Y5
	VMULPS 192(DX)(AX*4), Y8, Y9
	VADDPS Y9, Y6, Y6
	VMULPS 224(DX)(AX*4), Y8, Y10
	VADDPS Y10, Y7, Y7
	INCQ BX
	JMP  t64loop

t64store:
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS Y3, 96(DI)(AX*4)
	VMOVUPS Y4, 128(DI)(AX*4)
	VMOVUPS Y5, 160(DI)(AX*4)
	VMOVUPS Y6, 192(DI)(AX*4)
	VMOVUPS Y7, 224(DI)(AX*4)
	ADDQ    $64, AX
	JMP     t64

t32:
	LEAQ 32(AX), BX
	CMPQ BX, CX
	JGT  t8
	MOVQ  (R8), DX
	IMULQ R12, DX
	LEAQ  (SI)(DX*4), DX
	VBROADCASTSS (R9), Y8
	VMULPS (DX)(AX*4), Y8, Y0
	VMULPS 32(DX)(AX*4), Y8, Y1
	VMULPS 64(DX)(AX*4), Y8, Y2
	VMULPS 96(DX)(AX*4), Y8, Y3
	TESTQ R11, R11
	JZ    t32taps
	VADDPS Y0, Y15, Y0
	VADDPS Y1, Y15, Y1
	VADDPS Y2, Y15, Y2
	VADDPS Y3, Y15, Y3

t32taps:
	MOVQ $1, BX

t32loop:
	CMPQ BX, R10
	JGE  t32store
	MOVQ  (R8)(BX*8), DX
	IMULQ R12, DX
	LEAQ  (SI)(DX*4), DX
	VBROADCASTSS (R9)(BX*4), Y8
	VMULPS (DX)(AX*4), Y8, Y4
	VMULPS 32(DX)(AX*4), Y8, Y5
	VMULPS 64(DX)(AX*4), Y8, Y6
	VMULPS 96(DX)(AX*4), Y8, Y7
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	INCQ BX
	JMP  t32loop

t32store:
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ    $32, AX
	JMP     t32

t8:
	CMPQ AX, CX
	JGE  tdone
	MOVQ  (R8), DX
	IMULQ R12, DX
	LEAQ  (SI)(DX*4), DX
	VBROADCASTSS (R9), Y8
	VMULPS (DX)(AX*4), Y8, Y0
	TESTQ R11, R11
	JZ    t8taps
	VADDPS Y0, Y15, Y0

t8taps:
	MOVQ $1, BX

t8loop:
	CMPQ BX, R10
	JGE  t8store
	MOVQ  (R8)(BX*8), DX
	IMULQ R12, DX
	LEAQ  (SI)(DX*4), DX
	VBROADCASTSS (R9)(BX*4), Y8
	VMULPS (DX)(AX*4), Y8, Y4
	VADDPS Y4, Y0, Y0
	INCQ BX
	JMP  t8loop

t8store:
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     t8

tdone:
	VZEROUPPER
	RET

// func tapsAVX512(n int, out, src *float32, idx *int, stride int, w *float32, k int, zero bool)
// tapsAVX2 for n a multiple of 128, in eight 16-wide accumulators.
TEXT ·tapsAVX512(SB), NOSPLIT, $0-57
	MOVQ    n+0(FP), CX
	MOVQ    out+8(FP), DI
	MOVQ    src+16(FP), SI
	MOVQ    idx+24(FP), R8
	MOVQ    stride+32(FP), R12
	MOVQ    w+40(FP), R9
	MOVQ    k+48(FP), R10
	MOVBLZX zero+56(FP), R11
	VPXORD  Z31, Z31, Z31
	XORQ    AX, AX

z128:
	LEAQ 128(AX), BX
	CMPQ BX, CX
	JGT  zdone
	MOVQ  (R8), DX
	IMULQ R12, DX
	LEAQ  (SI)(DX*4), DX
	VBROADCASTSS (R9), Z8
	VMULPS (DX)(AX*4), Z8, Z0
	VMULPS 64(DX)(AX*4), Z8, Z1
	VMULPS 128(DX)(AX*4), Z8, Z2
	VMULPS 192(DX)(AX*4), Z8, Z3
	VMULPS 256(DX)(AX*4), Z8, Z4
	VMULPS 320(DX)(AX*4), Z8, Z5
	VMULPS 384(DX)(AX*4), Z8, Z6
	VMULPS 448(DX)(AX*4), Z8, Z7
	TESTQ R11, R11
	JZ    z128taps
	VADDPS Z0, Z31, Z0
	VADDPS Z1, Z31, Z1
	VADDPS Z2, Z31, Z2
	VADDPS Z3, Z31, Z3
	VADDPS Z4, Z31, Z4
	VADDPS Z5, Z31, Z5
	VADDPS Z6, Z31, Z6
	VADDPS Z7, Z31, Z7

z128taps:
	MOVQ $1, BX

z128loop:
	CMPQ BX, R10
	JGE  z128store
	MOVQ  (R8)(BX*8), DX
	IMULQ R12, DX
	LEAQ  (SI)(DX*4), DX
	VBROADCASTSS (R9)(BX*4), Z8
	VMULPS (DX)(AX*4), Z8, Z9
	VADDPS Z9, Z0, Z0
	VMULPS 64(DX)(AX*4), Z8, Z10
	VADDPS Z10, Z1, Z1
	VMULPS 128(DX)(AX*4), Z8, Z11
	VADDPS Z11, Z2, Z2
	VMULPS 192(DX)(AX*4), Z8, Z12
	VADDPS Z12, Z3, Z3
	VMULPS 256(DX)(AX*4), Z8, Z13
	VADDPS Z13, Z4, Z4
	VMULPS 320(DX)(AX*4), Z8, Z14
	VADDPS Z14, Z5, Z5
	VMULPS 384(DX)(AX*4), Z8, Z15
	VADDPS Z15, Z6, Z6
	VMULPS 448(DX)(AX*4), Z8, Z16
	VADDPS Z16, Z7, Z7
	INCQ BX
	JMP  z128loop

z128store:
	VMOVUPS Z0, (DI)(AX*4)
	VMOVUPS Z1, 64(DI)(AX*4)
	VMOVUPS Z2, 128(DI)(AX*4)
	VMOVUPS Z3, 192(DI)(AX*4)
	VMOVUPS Z4, 256(DI)(AX*4)
	VMOVUPS Z5, 320(DI)(AX*4)
	VMOVUPS Z6, 384(DI)(AX*4)
	VMOVUPS Z7, 448(DI)(AX*4)
	ADDQ    $128, AX
	JMP     z128

zdone:
	VZEROUPPER
	RET

// func transpose8AVX2(dst *float32, ds int, src *float32, ss int)
// dst[j*ds+i] = src[i*ss+j] for i, j < 8 (strides in elements): eight rows
// loaded, interleaved in pairs, in fours, then their 128-bit halves
// exchanged.
TEXT ·transpose8AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ ds+8(FP), DX
	SHLQ $2, DX
	MOVQ src+16(FP), SI
	MOVQ ss+24(FP), BX
	SHLQ $2, BX
	VMOVUPS (SI), Y0
	ADDQ    BX, SI
	VMOVUPS (SI), Y1
	ADDQ    BX, SI
	VMOVUPS (SI), Y2
	ADDQ    BX, SI
	VMOVUPS (SI), Y3
	ADDQ    BX, SI
	VMOVUPS (SI), Y4
	ADDQ    BX, SI
	VMOVUPS (SI), Y5
	ADDQ    BX, SI
	VMOVUPS (SI), Y6
	ADDQ    BX, SI
	VMOVUPS (SI), Y7

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	VMOVUPS Y8, (DI)
	ADDQ    DX, DI
	VMOVUPS Y9, (DI)
	ADDQ    DX, DI
	VMOVUPS Y10, (DI)
	ADDQ    DX, DI
	VMOVUPS Y11, (DI)
	ADDQ    DX, DI
	VMOVUPS Y12, (DI)
	ADDQ    DX, DI
	VMOVUPS Y13, (DI)
	ADDQ    DX, DI
	VMOVUPS Y14, (DI)
	ADDQ    DX, DI
	VMOVUPS Y15, (DI)
	VZEROUPPER
	RET
