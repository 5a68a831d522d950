// Package gpu runs a producer's per-batch work on NVIDIA GPUs: the PDM's
// inference (the kernel network, the per-sample blur + downsample, the
// noise network in every noise mode), the gaussian degradation's blur and
// the bicubic degradation's resize, behind the model.Device seam, so that
// everything above it (seeds, crops, latents, messages, hot reload,
// metrics) is the producer's own code whichever device runs the batch.
//
// Builds:
//
//   - default (no tag): no CUDA at all; Open("cpu") works, a GPU spec says
//     the binary was built without CUDA (ErrNotBuilt), and "auto" falls back
//     to the CPU.
//   - pdmcuda tag: the CUDA driver and cuBLAS are loaded with dlopen when a GPU
//     is first asked for, so the binary also starts, and falls back to the
//     CPU with "auto", on hosts without them; the kernels (kernels.cu.h) are
//     compiled to PTX at build time (make gpu-ptx) and embedded.
//   - pdmcudaemu tag: the same orchestration and the same kernel source on the
//     host (kernels.cu.h compiled by g++, each kernel a loop over its threads;
//     a plain GEMM for cuBLAS's), for tests on machines without a GPU. It
//     verifies the logic, not the driver binding or the speed.
//
// Every activation inside the networks is kept channel-major (C x N x H x W)
// so that a convolution over the whole batch is one GEMM: im2col (for 3x3
// kernels) then cuBLAS, then one epilogue kernel applying the bias, the
// inference BatchNorm, the residual and the ReLU as model.ConvStep defines
// them. The kernel network always runs in fp32; the noise network's GEMMs
// run in the device's Precision (fp32, TF32 or bfloat16 inputs with fp32
// accumulation). Weights are uploaded once per sampler (and on Reload);
// activations, the im2col buffer and the pinned host buffers of the
// transfers are allocated once per batch shape.
package gpu
