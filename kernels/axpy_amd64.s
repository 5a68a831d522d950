//go:build amd64 && !noasm

#include "textflag.h"

// func axpy4AVX2(n int, out, a, b, c, d *float32, c0, c1, c2, c3 float32)
// out[j] = (((out[j] + c0*a[j]) + c1*b[j]) + c2*c[j]) + c3*d[j] for j < n,
// n a multiple of 8; each product and sum rounded on its own (no fused
// multiply-add), as the Go loop computes it.
TEXT ·axpy4AVX2(SB), NOSPLIT, $0-64
	MOVQ n+0(FP), CX
	MOVQ out+8(FP), DI
	MOVQ a+16(FP), R8
	MOVQ b+24(FP), R9
	MOVQ c+32(FP), R10
	MOVQ d+40(FP), R11
	VBROADCASTSS c0+48(FP), Y0
	VBROADCASTSS c1+52(FP), Y1
	VBROADCASTSS c2+56(FP), Y2
	VBROADCASTSS c3+60(FP), Y3
	XORQ AX, AX

loop:
	CMPQ AX, CX
	JGE  done
	VMOVUPS (DI)(AX*4), Y4
	VMULPS  (R8)(AX*4), Y0, Y5
	VADDPS  Y5, Y4, Y4
	VMULPS  (R9)(AX*4), Y1, Y5
	VADDPS  Y5, Y4, Y4
	VMULPS  (R10)(AX*4), Y2, Y5
	VADDPS  Y5, Y4, Y4
	VMULPS  (R11)(AX*4), Y3, Y5
	VADDPS  Y5, Y4, Y4
	VMOVUPS Y4, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     loop

done:
	VZEROUPPER
	RET

// func scaleAVX2(n int, out, a *float32, c float32)
// out[j] = c*a[j] for j < n, n a multiple of 8.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-28
	MOVQ n+0(FP), CX
	MOVQ out+8(FP), DI
	MOVQ a+16(FP), R8
	VBROADCASTSS c+24(FP), Y0
	XORQ AX, AX

sloop:
	CMPQ AX, CX
	JGE  sdone
	VMULPS  (R8)(AX*4), Y0, Y4
	VMOVUPS Y4, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     sloop

sdone:
	VZEROUPPER
	RET

// func axpy1AVX2(n int, out, a *float32, c float32)
// out[j] = out[j] + c*a[j] for j < n, n a multiple of 8 (no fused multiply-add).
TEXT ·axpy1AVX2(SB), NOSPLIT, $0-28
	MOVQ n+0(FP), CX
	MOVQ out+8(FP), DI
	MOVQ a+16(FP), R8
	VBROADCASTSS c+24(FP), Y0
	XORQ AX, AX

aloop:
	CMPQ AX, CX
	JGE  adone
	VMULPS  (R8)(AX*4), Y0, Y5
	VADDPS  (DI)(AX*4), Y5, Y4
	VMOVUPS Y4, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     aloop

adone:
	VZEROUPPER
	RET

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
