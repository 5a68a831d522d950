//go:build pdmcudaemu && !pdmcuda

// The host emulation of the device (pdmcudaemu build tag): kernels.cu.h
// compiled as C++ with each kernel a loop over its threads, and a plain
// column-major GEMM with cuBLAS's argument conventions. It runs package
// gpu's orchestration and kernels on machines without a GPU; it says
// nothing about the driver binding (engine_cuda.go) or speed.
// No fused multiply-adds: kernels.cu.h's mul_rn and add_rn round each
// operation, as the GPU's __fmul_rn and __fadd_rn do (cgo does not pass
// -ffp-contract=off, so say it here).
#pragma GCC optimize("fp-contract=off")
#include "kernels.cu.h"

#include <stdlib.h>

extern "C" int emu_launch(int k, const void *args) {
	int i = 0;
#define CASE(name, Args) \
	if (k == i++) { emu_##name((const Args *)args); return 0; }
	PD_KERNELS(CASE)
#undef CASE
	return -1;
}

extern "C" const char *emu_kernel_name(int k) {
	int i = 0;
#define NAME(name, Args) \
	if (k == i++) return #name;
	PD_KERNELS(NAME)
#undef NAME
	return "";
}

// TF32 keeps 10 of float's 23 mantissa bits: round to nearest even.
static float round_tf32(float f) {
	uint32_t u;
	memcpy(&u, &f, 4);
	if ((u & 0x7f800000u) == 0x7f800000u) return f;
	u += 0xfffu + ((u >> 13) & 1u);
	u &= 0xffffe000u;
	memcpy(&f, &u, 4);
	return f;
}

static float from_bf16(uint16_t b) {
	uint32_t u = (uint32_t)b << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

// C (m x n, ldc) = A (m x k, lda) * B (k x n, ldb), column-major, summed in
// float over k in order. prec 0: fp32; 1: inputs rounded to TF32; 2: A
// and B bfloat16.
extern "C" void emu_gemm(int prec, int m, int n, int k, dptr A, int lda, dptr B, int ldb, dptr C, int ldc) {
	float *c = (float *)C;
	for (int j = 0; j < n; j++) {
		float *cj = c + (i64)j * ldc;
		for (int i = 0; i < m; i++) cj[i] = 0.0f;
		for (int l = 0; l < k; l++) {
			float b;
			if (prec == 2) b = from_bf16(((const uint16_t *)B)[l + (i64)j * ldb]);
			else b = ((const float *)B)[l + (i64)j * ldb];
			if (prec == 1) b = round_tf32(b);
			for (int i = 0; i < m; i++) {
				float a;
				if (prec == 2) a = from_bf16(((const uint16_t *)A)[i + (i64)l * lda]);
				else a = ((const float *)A)[i + (i64)l * lda];
				if (prec == 1) a = round_tf32(a);
				cj[i] = cj[i] + a * b;
			}
		}
	}
}
