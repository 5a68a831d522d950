//go:build amd64 && !noasm

#include "textflag.h"

// func unitAVX2(n int, out *float32, a *uint8)
// out[j] = float32(a[j]) / 255 for j < n, n a multiple of 8 (a correctly
// rounded division, as in Go).
TEXT ·unitAVX2(SB), NOSPLIT, $0-24
	MOVQ n+0(FP), CX
	MOVQ out+8(FP), DI
	MOVQ a+16(FP), R8
	MOVL $0x437f0000, AX // 255.0
	MOVL AX, X1
	VBROADCASTSS X1, Y1
	XORQ AX, AX

uloop:
	CMPQ AX, CX
	JGE  udone
	VPMOVZXBD (R8)(AX*1), Y2
	VCVTDQ2PS Y2, Y2
	VDIVPS    Y1, Y2, Y2
	VMOVUPS   Y2, (DI)(AX*4)
	ADDQ      $8, AX
	JMP       uloop

udone:
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
