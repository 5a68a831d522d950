// The device kernels of package gpu. nvcc compiles this file (as CUDA: -x cu) to PTX
// (kernels.ptx, embedded in a binary built with the pdmcuda tag); the host
// emulation (emu.cc, pdmcudaemu tag) compiles the same file with g++ and runs
// each kernel as a loop over its threads, so that the orchestration and the
// kernels are tested on machines without a GPU.
//
// Every kernel is one thread per output element (KERNEL below) with no
// shared memory and no synchronisation inside a block: that is what lets
// the emulation run them as plain loops. The arithmetic mirrors the CPU
// reference (package kernels) operation by operation, with products and
// sums rounded separately (mul_rn, add_rn: no fused multiply-add) where the
// CPU rounds them separately, so that the blur, the resize and the
// epilogues give the CPU's bits for the same inputs; only the GEMMs
// (cuBLAS) sum in another order.
#include "kernels.h"

#ifdef __CUDACC__
#include <cuda_bf16.h>
#define DEV __device__ __forceinline__
typedef __nv_bfloat16 bf16;
DEV bf16 to_bf16(float f) { return __float2bfloat16_rn(f); }
DEV float mul_rn(float a, float b) { return __fmul_rn(a, b); }
DEV float add_rn(float a, float b) { return __fadd_rn(a, b); }
DEV double dmul_rn(double a, double b) { return __dmul_rn(a, b); }
DEV double dadd_rn(double a, double b) { return __dadd_rn(a, b); }
#define KERNEL(name, Args)                                                  \
	DEV void name##_body(const Args &a, i64 i);                             \
	extern "C" __global__ void name(Args a) {                               \
		i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;                 \
		if (i < a.total) name##_body(a, i);                                 \
	}                                                                       \
	DEV void name##_body(const Args &a, i64 i)
#else
#include <math.h>
#include <stdint.h>
#include <string.h>
#define DEV static inline
typedef uint16_t bf16;
// Round to nearest even, as __float2bfloat16_rn; NaN stays NaN.
DEV bf16 to_bf16(float f) {
	uint32_t u;
	memcpy(&u, &f, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16)((u >> 16) | 0x40);
	u += 0x7fffu + ((u >> 16) & 1u);
	return (bf16)(u >> 16);
}
// The host build turns contraction off (emu.cc): plain operators round
// each operation.
DEV float mul_rn(float a, float b) { return a * b; }
DEV float add_rn(float a, float b) { return a + b; }
DEV double dmul_rn(double a, double b) { return a * b; }
DEV double dadd_rn(double a, double b) { return a + b; }
#define KERNEL(name, Args)                                                  \
	static void name##_body(const Args &a, i64 i);                          \
	extern "C" void emu_##name(const Args *a) {                             \
		for (i64 i = 0; i < a->total; i++) name##_body(*a, i);              \
	}                                                                       \
	static void name##_body(const Args &a, i64 i)
#endif

#define F(p) ((float *)(p))
#define CF(p) ((const float *)(p))
#define CD(p) ((const double *)(p))

// reflect is numpy's "reflect" (PyTorch's ReflectionPad2d): the edge pixel
// is not repeated (kernels.reflect).
DEV int reflect(int i, int n) {
	if (n == 1) return 0;
	int period = 2 * (n - 1);
	i %= period;
	if (i < 0) i += period;
	if (i >= n) i = period - i;
	return i;
}

KERNEL(u8_to_f32, U8ToF32Args) {
	// IEEE division (nvcc's default -prec-div=true): the CPU's bits.
	F(a.out)[i] = (float)((const unsigned char *)a.in)[i] / 255.0f;
}

// kernels.BlurDownRef, products rounded before each sum, taps in order.
KERNEL(blur_down, BlurArgs) {
	i64 t = i;
	int j = (int)(t % a.ow);
	t /= a.ow;
	int r = (int)(t % a.oh);
	t /= a.oh;
	int ch = (int)(t % a.c);
	int n = (int)(t / a.c);
	const float *plane = CF(a.x) + ((i64)n * a.c + ch) * a.h * a.w;
	const float *k = CF(a.k);
	int p = a.ks / 2;
	float acc = 0.0f;
	for (int u = 0; u < a.ks; u++) {
		int y = reflect(a.s * r + u - p, a.h);
		for (int v = 0; v < a.ks; v++) {
			int x = reflect(a.s * j + v - p, a.w);
			int tap = u * a.ks + v;
			float kv = a.klayout == 0 ? k[(i64)n * a.ks * a.ks + tap]
			                          : k[(((i64)tap * a.n + n) * a.oh + r) * a.ow + j];
			acc = add_rn(acc, mul_rn(kv, plane[(i64)y * a.w + x]));
		}
	}
	F(a.y)[i] = acc;
}

DEV float im2col_at(const Im2ColArgs &a, i64 i, i64 *row, i64 *colj, i64 cols) {
	*colj = i % cols;
	*row = i / cols;
	int v = (int)(*row % a.ks);
	int u = (int)((*row / a.ks) % a.ks);
	int ci = (int)(*row / ((i64)a.ks * a.ks));
	int x = (int)(*colj % a.w);
	int y = (int)((*colj / a.w) % a.h);
	int m = (int)(*colj / ((i64)a.h * a.w));
	int sy = y + u - a.ks / 2, sx = x + v - a.ks / 2;
	if (sy < 0 || sy >= a.h || sx < 0 || sx >= a.w) return 0.0f;
	return CF(a.x)[(i64)ci * a.plane + ((i64)(a.n0 + m) * a.h + sy) * a.w + sx];
}

KERNEL(im2col_f32, Im2ColArgs) {
	i64 cols = (i64)a.nc * a.h * a.w, row, colj;
	float v = im2col_at(a, i, &row, &colj, cols);
	F(a.col)[row * cols + colj] = v;
}

KERNEL(im2col_bf16, Im2ColArgs) {
	i64 cols = (i64)a.nc * a.h * a.w, row, colj;
	float v = im2col_at(a, i, &row, &colj, cols);
	((bf16 *)a.col)[row * cols + colj] = to_bf16(v);
}

KERNEL(to_bf16, ToBF16Args) { ((bf16 *)a.out)[i] = to_bf16(CF(a.in)[i]); }

// The convolution's bias (a float sum), inference BatchNorm as
// kernels.BatchNormEval computes it (scale*v + shift in float64, then
// rounded), the residual (kernels.AddScaled: res + v), then ReLU.
KERNEL(bias_act, BiasActArgs) {
	int ch = (int)(i / a.p);
	float v = F(a.y)[i];
	if (a.bias) v = add_rn(v, CF(a.bias)[ch]);
	if (a.scale) v = (float)dadd_rn(dmul_rn(CD(a.scale)[ch], (double)v), CD(a.shift)[ch]);
	if (a.res) v = add_rn(CF(a.res)[i], v);
	if (a.act == 1 && v < 0.0f) v = 0.0f;
	F(a.y)[i] = v;
}

// kernels.Softmax along the channels of one column, in float64: e rounded
// to float, then scaled by 1/sum in float64 and rounded again.
KERNEL(softmax_cols, SoftmaxArgs) {
	const float *x = CF(a.in);
	float *out = F(a.out);
	double m = -INFINITY;
	for (int r = 0; r < a.d; r++) {
		double v = (double)x[(i64)r * a.m + i];
		if (v > m) m = v;
	}
	double sum = 0.0;
	for (int r = 0; r < a.d; r++) {
		double e = exp((double)x[(i64)r * a.m + i] - m);
		i64 o = a.transposed ? i * a.d + r : (i64)r * a.m + i;
		out[o] = (float)e;
		sum = dadd_rn(sum, e);
	}
	double inv = 1.0 / sum;
	for (int r = 0; r < a.d; r++) {
		i64 o = a.transposed ? i * a.d + r : (i64)r * a.m + i;
		out[o] = (float)dmul_rn((double)out[o], inv);
	}
}

KERNEL(to_cnhw, ToCNHWArgs) {
	i64 t = i;
	i64 p = t % a.hw;
	t /= a.hw;
	int ch = (int)(t % a.c_src);
	int m = (int)(t / a.c_src);
	F(a.dst)[((i64)(a.coff + ch) * a.n + m) * a.hw + p] = CF(a.src)[i];
}

// kernels.CenterPlanes on one (channel, sample) plane: the mean summed in
// float64 and rounded to float, then subtracted in float.
KERNEL(center_planes, CenterArgs) {
	float *x = F(a.x) + i * a.hw; // planes of a CNHW tensor are consecutive
	double s = 0.0;
	for (i64 p = 0; p < a.hw; p++) s = dadd_rn(s, (double)x[p]);
	float m = (float)(s / (double)a.hw);
	for (i64 p = 0; p < a.hw; p++) x[p] = x[p] - m;
}

KERNEL(add_noise, AddNoiseArgs) {
	i64 t = i;
	i64 p = t % a.hw;
	t /= a.hw;
	int ch = (int)(t % a.c);
	int m = (int)(t / a.c);
	F(a.y)[i] = add_rn(CF(a.clean)[i], CF(a.noise)[((i64)ch * a.n + m) * a.hw + p]);
}

// model.NoiseStats of one sample, its values in NCHW order.
KERNEL(noise_stats, NoiseStatsArgs) {
	const float *noise = CF(a.noise);
	double s = 0.0, ss = 0.0;
	for (int ch = 0; ch < a.c; ch++) {
		const float *plane = noise + ((i64)ch * a.n + i) * a.hw;
		for (i64 p = 0; p < a.hw; p++) {
			double v = (double)plane[p];
			s = dadd_rn(s, v);
			ss = dadd_rn(ss, dmul_rn(v, v));
		}
	}
	double cnt = (double)((i64)a.c * a.hw);
	double m = s / cnt;
	double var = dadd_rn(ss / cnt, -dmul_rn(m, m));
	F(a.mean)[i] = (float)m;
	F(a.std)[i] = (float)sqrt(var > 0.0 ? var : 0.0);
}

// kernels.FourierQuant in float64: t + sum_{k=1..5} (-1)^k sin(2 pi k 255 t) / (pi k 255).
KERNEL(fourier_quant, QuantArgs) {
	const double pi = 3.141592653589793;
	double t = (double)CF(a.x)[i];
	double s = t;
	for (int k = 1; k <= 5; k++) {
		double arg = dmul_rn(dmul_rn(dmul_rn(2.0 * pi, (double)k), 255.0), t);
		double term = sin(arg) / dmul_rn(dmul_rn(pi, (double)k), 255.0);
		s = (k % 2 == 1) ? dadd_rn(s, -term) : dadd_rn(s, term);
	}
	F(a.y)[i] = (float)s;
}

// One pass of kernels.ResizeBicubic: taps in order from the first product.
KERNEL(resize_axis, ResizeArgs) {
	i64 t = i;
	int x = (int)(t % a.ow);
	t /= a.ow;
	int y = (int)(t % a.oh);
	int pl = (int)(t / a.oh);
	const float *src = CF(a.src) + (i64)pl * a.h * a.w;
	const int *idx = (const int *)a.idx;
	const float *wt = CF(a.wt);
	int o = a.axis == 0 ? y : x;
	float acc = 0.0f;
	for (int k = 0; k < a.taps; k++) {
		int s = idx[o * a.taps + k];
		float v = a.axis == 0 ? src[(i64)s * a.w + x] : src[(i64)y * a.w + s];
		float prod = mul_rn(wt[o * a.taps + k], v);
		acc = k == 0 ? prod : add_rn(acc, prod);
	}
	F(a.dst)[i] = acc;
}
