/* The arguments of the device kernels in kernels.cu.h, one struct per kernel,
 * passed by value. Shared by nvcc (the kernels), cgo (package gpu fills
 * them) and the host emulation (emu.cc), so every field has a fixed size:
 * device addresses are dptr (64 bits), counts are 64-bit where a batch can
 * exceed 2^31 elements.
 *
 * Layouts: "NCHW" is sample-major (n, c, y, x); "CNHW" is channel-major
 * (c, n, y, x), the layout of every activation inside the networks, where
 * a convolution over the whole batch is one GEMM with N*H*W columns. */
#ifndef PDMFLOW_GPU_KERNELS_H
#define PDMFLOW_GPU_KERNELS_H

typedef unsigned long long dptr;
typedef long long i64;

/* out[i] = in[i] / 255 (8-bit to float, the same bits as the CPU). */
typedef struct { dptr out, in; i64 total; } U8ToF32Args;

/* Blur + downsample of pdm-spec 2.2: y[n,c,i,j] = sum_{u,v} k * x[n,c,
 * refl(S*i+u-KS/2), refl(S*j+v-KS/2)], x and y NCHW. klayout 0: one kernel
 * per sample, k[n][u*KS+v]; 1: one per LR pixel in CNHW, k[u*KS+v][n][i][j]. */
typedef struct {
	dptr y, x, k;
	int n, c, h, w, ks, s, oh, ow, klayout;
	i64 total; /* n*c*oh*ow */
} BlurArgs;

/* im2col of a CNHW activation x (planes of stride plane = N*H*W) for a
 * KS x KS convolution, stride 1, zero padding KS/2, over samples
 * [n0, n0+nc): col[(ci*KS+u)*KS+v][(m*H+y)*W+x] for m < nc, as float
 * (im2col_f32) or bfloat16 (im2col_bf16). */
typedef struct {
	dptr col, x;
	int cin, n0, nc, h, w, ks;
	i64 plane;
	i64 total; /* cin*ks*ks*nc*h*w */
} Im2ColArgs;

/* out[i] = bf16(in[i]) (round to nearest even), for 1x1 convolutions in
 * bfloat16. */
typedef struct { dptr out, in; i64 total; } ToBF16Args;

/* The epilogue of a convolution, for j < p: v = y[c][j] + bias[c], then
 * v = scale[c]*v + shift[c] in float64 (inference BatchNorm; scale and
 * shift are doubles), then v = res[c][j] + v, then act (0 identity, 1
 * ReLU). bias, scale (with shift) and res are optional (0). */
typedef struct {
	dptr y, bias, scale, shift, res;
	int c, act;
	i64 p;
	i64 total; /* c*p */
} BiasActArgs;

/* Softmax of every column of in (d rows of m columns, CNHW with d
 * channels) in float64: out[col][r] when transposed (one kernel per sample,
 * m = n), else out[r][col]. */
typedef struct {
	dptr out, in;
	int d, transposed;
	i64 m;
	i64 total; /* m */
} SoftmaxArgs;

/* dst[(coff+c)*n*hw + m*hw + p] = src[(m*c_src+c)*hw + p]: an NCHW tensor
 * of c_src channels into channels [coff, coff+c_src) of a CNHW one. */
typedef struct {
	dptr dst, src;
	int n, c_src, coff;
	i64 hw;
	i64 total; /* n*c_src*hw */
} ToCNHWArgs;

/* Subtract from each (channel, sample) plane of a CNHW tensor its mean
 * (the noise network's zero_mean). One thread per plane. */
typedef struct {
	dptr x;
	int c, n;
	i64 hw;
	i64 total; /* c*n */
} CenterArgs;

/* y[(m*c+ch)*hw+p] = clean[(m*c+ch)*hw+p] + noise[ch*n*hw + m*hw + p]:
 * the fake LR (NCHW) from the clean LR (NCHW) and the noise (CNHW). */
typedef struct {
	dptr y, clean, noise;
	int n, c;
	i64 hw;
	i64 total; /* n*c*hw */
} AddNoiseArgs;

/* Per sample m, the mean and standard deviation of its noise (CNHW, c
 * channels) in float64, channel by channel as the CPU sums them. */
typedef struct {
	dptr mean, std, noise;
	int n, c;
	i64 hw;
	i64 total; /* n */
} NoiseStatsArgs;

/* y = FourierQuant(x), the smooth 8-bit quantisation, in float64. */
typedef struct { dptr y, x; i64 total; } QuantArgs;

/* One pass of the bicubic resize over planes: along the height (axis 0),
 * dst[p][o][x] = sum_t w[o*taps+t] * src[p][idx[o*taps+t]][x]; along the
 * width (axis 1), dst[p][y][o] = sum_t w[o*taps+t] * src[p][y][idx[..]],
 * accumulated tap by tap in order. */
typedef struct {
	dptr dst, src, idx, wt;
	int planes, h, w, oh, ow, taps, axis;
	i64 total; /* planes*oh*ow */
} ResizeArgs;

/* Every kernel, in the order of package gpu's kernel constants: its name
 * (the entry point in the PTX) and its argument struct. */
#define PD_KERNELS(X)                   \
	X(u8_to_f32, U8ToF32Args)           \
	X(blur_down, BlurArgs)              \
	X(im2col_f32, Im2ColArgs)           \
	X(im2col_bf16, Im2ColArgs)          \
	X(to_bf16, ToBF16Args)              \
	X(bias_act, BiasActArgs)            \
	X(softmax_cols, SoftmaxArgs)        \
	X(to_cnhw, ToCNHWArgs)              \
	X(center_planes, CenterArgs)        \
	X(add_noise, AddNoiseArgs)          \
	X(noise_stats, NoiseStatsArgs)      \
	X(fourier_quant, QuantArgs)         \
	X(resize_axis, ResizeArgs)

#endif
