//go:build amd64 && !noasm

#include "textflag.h"

// Reverses the bytes of each 8-byte half of an XMM register (PSHUFB mask).
DATA revq<>+0(SB)/8, $0x0001020304050607
DATA revq<>+8(SB)/8, $0x08090a0b0c0d0e0f
GLOBL revq<>(SB), RODATA|NOPTR, $16

// func transposeBandSSE(rows *[8]*byte, n int, out *byte, dq int, rev bool)
// For x = 0, 8, ... < n (n a multiple of 8): the 8x8 bytes rows[k][x+j]
// are transposed, column x+j becoming the 8 bytes at out + (x+j)*dq
// (byte-reversed when rev is set): unpacks of bytes, then words, then
// dwords.
TEXT ·transposeBandSSE(SB), NOSPLIT, $0-33
	MOVQ    rows+0(FP), AX
	MOVQ    0(AX), R8
	MOVQ    8(AX), R9
	MOVQ    16(AX), R10
	MOVQ    24(AX), R11
	MOVQ    32(AX), R12
	MOVQ    40(AX), R13
	MOVQ    48(AX), R14
	MOVQ    56(AX), R15
	MOVQ    n+8(FP), CX
	MOVQ    out+16(FP), DI
	MOVQ    dq+24(FP), DX
	MOVBLZX rev+32(FP), BX
	MOVOU   revq<>(SB), X15
	XORQ    SI, SI

loop:
	CMPQ SI, CX
	JGE  done
	MOVQ (R8)(SI*1), X0
	MOVQ (R9)(SI*1), X1
	MOVQ (R10)(SI*1), X2
	MOVQ (R11)(SI*1), X3
	MOVQ (R12)(SI*1), X4
	MOVQ (R13)(SI*1), X5
	MOVQ (R14)(SI*1), X6
	MOVQ (R15)(SI*1), X7
	PUNPCKLBW X1, X0
	PUNPCKLBW X3, X2
	PUNPCKLBW X5, X4
	PUNPCKLBW X7, X6
	MOVOU     X0, X8
	PUNPCKLWL X2, X0
	PUNPCKHWL X2, X8
	MOVOU     X4, X9
	PUNPCKLWL X6, X4
	PUNPCKHWL X6, X9
	MOVOU     X0, X10
	PUNPCKLLQ X4, X0
	PUNPCKHLQ X4, X10
	MOVOU     X8, X11
	PUNPCKLLQ X9, X8
	PUNPCKHLQ X9, X11
	TESTQ BX, BX
	JZ    store
	PSHUFB X15, X0
	PSHUFB X15, X10
	PSHUFB X15, X8
	PSHUFB X15, X11

store:
	MOVQ   X0, (DI)
	ADDQ   DX, DI
	MOVHPS X0, (DI)
	ADDQ   DX, DI
	MOVQ   X10, (DI)
	ADDQ   DX, DI
	MOVHPS X10, (DI)
	ADDQ   DX, DI
	MOVQ   X8, (DI)
	ADDQ   DX, DI
	MOVHPS X8, (DI)
	ADDQ   DX, DI
	MOVQ   X11, (DI)
	ADDQ   DX, DI
	MOVHPS X11, (DI)
	ADDQ   DX, DI
	ADDQ   $8, SI
	JMP    loop

done:
	RET
