//go:build pdmcuda

package gpu

/*
#cgo CFLAGS: -I/usr/local/cuda/include -O2
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <cuda.h>
#include <cublas_v2.h>
#include "kernels.h"

// The CUDA driver and cuBLAS are loaded with dlopen on first use, not
// linked: a binary built with the pdmcuda tag starts on hosts without an
// NVIDIA driver (and reports why it cannot use a GPU) instead of failing
// to load. Each entry point below makes the device's context current on
// the calling thread first, so Go may call them from any thread.

#define DECL(f) static __typeof__(&f) p_##f;
DECL(cuInit) DECL(cuDriverGetVersion) DECL(cuDeviceGetCount) DECL(cuDeviceGet)
DECL(cuDeviceGetName) DECL(cuDeviceTotalMem) DECL(cuDeviceGetAttribute)
DECL(cuDevicePrimaryCtxRetain) DECL(cuDevicePrimaryCtxRelease) DECL(cuCtxSetCurrent)
DECL(cuStreamCreate) DECL(cuStreamDestroy) DECL(cuStreamSynchronize)
DECL(cuModuleLoadDataEx) DECL(cuModuleGetFunction) DECL(cuModuleUnload)
DECL(cuMemAlloc) DECL(cuMemFree) DECL(cuMemHostAlloc) DECL(cuMemFreeHost)
DECL(cuMemcpyHtoDAsync) DECL(cuMemcpyDtoHAsync) DECL(cuLaunchKernel)
DECL(cuGetErrorName) DECL(cuGetErrorString)
DECL(cublasCreate) DECL(cublasDestroy) DECL(cublasSetStream) DECL(cublasGemmEx)

static void *libcuda, *libcublas;
static char load_err[512];

// LOAD resolves f under the exported symbol name sym (the _v2 names that
// cuda.h maps the API names to).
#define LOAD(lib, f, sym) \
	if (!(p_##f = (__typeof__(p_##f))dlsym(lib, sym))) { \
		snprintf(load_err, sizeof load_err, "%s has no %s", #lib, sym); return -1; }

static int pd_load_blas(void);

// pd_load opens libcuda and cuBLAS, resolves every symbol, then
// initialises the driver: 0, -1 (see pd_load_error) or a CUresult from
// cuInit.
static int pd_load(void) {
	if (libcuda) return 0;
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		// The reason of the versioned name, the one the driver installs.
		snprintf(load_err, sizeof load_err, "cannot load the NVIDIA driver library: %s", dlerror());
		if (!(h = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL))) return -1;
	}
	LOAD(h, cuInit, "cuInit") LOAD(h, cuDriverGetVersion, "cuDriverGetVersion")
	LOAD(h, cuDeviceGetCount, "cuDeviceGetCount") LOAD(h, cuDeviceGet, "cuDeviceGet")
	LOAD(h, cuDeviceGetName, "cuDeviceGetName") LOAD(h, cuDeviceTotalMem, "cuDeviceTotalMem_v2")
	LOAD(h, cuDeviceGetAttribute, "cuDeviceGetAttribute")
	LOAD(h, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain")
	LOAD(h, cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2")
	LOAD(h, cuCtxSetCurrent, "cuCtxSetCurrent")
	LOAD(h, cuStreamCreate, "cuStreamCreate") LOAD(h, cuStreamDestroy, "cuStreamDestroy_v2")
	LOAD(h, cuStreamSynchronize, "cuStreamSynchronize")
	LOAD(h, cuModuleLoadDataEx, "cuModuleLoadDataEx") LOAD(h, cuModuleGetFunction, "cuModuleGetFunction")
	LOAD(h, cuModuleUnload, "cuModuleUnload")
	LOAD(h, cuMemAlloc, "cuMemAlloc_v2") LOAD(h, cuMemFree, "cuMemFree_v2")
	LOAD(h, cuMemHostAlloc, "cuMemHostAlloc") LOAD(h, cuMemFreeHost, "cuMemFreeHost")
	LOAD(h, cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2") LOAD(h, cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2")
	LOAD(h, cuLaunchKernel, "cuLaunchKernel")
	LOAD(h, cuGetErrorName, "cuGetErrorName") LOAD(h, cuGetErrorString, "cuGetErrorString")
	if (pd_load_blas() != 0) return -1;
	CUresult r = p_cuInit(0);
	if (r != CUDA_SUCCESS) return (int)r;
	libcuda = h;
	return 0;
}

// pd_load_blas opens cuBLAS (the versions CUDA 12 and 11 ship).
static int pd_load_blas(void) {
	if (libcublas) return 0;
	const char *names[] = {"libcublas.so.12", "libcublas.so.11", "libcublas.so"};
	void *h = NULL;
	for (int i = 0; i < 3 && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!h) { snprintf(load_err, sizeof load_err, "cannot load cuBLAS (libcublas.so.12 or .11): %s", dlerror()); return -1; }
	LOAD(h, cublasCreate, "cublasCreate_v2") LOAD(h, cublasDestroy, "cublasDestroy_v2")
	LOAD(h, cublasSetStream, "cublasSetStream_v2") LOAD(h, cublasGemmEx, "cublasGemmEx")
	libcublas = h;
	return 0;
}

static const char *pd_load_error(void) { return load_err; }

static const char *pd_error_name(int r) {
	const char *s = NULL;
	if (p_cuGetErrorName && p_cuGetErrorName((CUresult)r, &s) == CUDA_SUCCESS && s) return s;
	return "unknown CUDA error";
}
static const char *pd_error_string(int r) {
	const char *s = NULL;
	if (p_cuGetErrorString && p_cuGetErrorString((CUresult)r, &s) == CUDA_SUCCESS && s) return s;
	return "";
}

static int pd_device_count(int *n) { return (int)p_cuDeviceGetCount(n); }
static int pd_driver_version(int *v) { return (int)p_cuDriverGetVersion(v); }

typedef struct {
	CUdevice dev;
	CUcontext ctx;
	CUstream stream;
	cublasHandle_t blas;
	CUmodule mod;
	CUfunction fn[32];
	int nfn;
} pd_ctx;

// cuBLAS errors are returned offset by this, to tell them from CUresults.
#define BLAS_ERR 100000

static int pd_open(int ordinal, const char *ptx, const char **names, int nnames, pd_ctx **out,
                   char *name, int namelen, size_t *mem, int *major, int *minor) {
	if (nnames > 32) return (int)CUDA_ERROR_INVALID_VALUE;
	pd_ctx *c = (pd_ctx *)calloc(1, sizeof(pd_ctx));
	CUresult r;
	if ((r = p_cuDeviceGet(&c->dev, ordinal)) != CUDA_SUCCESS) goto fail;
	if ((r = p_cuDeviceGetName(name, namelen, c->dev)) != CUDA_SUCCESS) goto fail;
	if ((r = p_cuDeviceTotalMem(mem, c->dev)) != CUDA_SUCCESS) goto fail;
	if ((r = p_cuDeviceGetAttribute(major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, c->dev)) != CUDA_SUCCESS) goto fail;
	if ((r = p_cuDeviceGetAttribute(minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, c->dev)) != CUDA_SUCCESS) goto fail;
	// The primary context: the one the CUDA runtime (and so cuBLAS) uses.
	if ((r = p_cuDevicePrimaryCtxRetain(&c->ctx, c->dev)) != CUDA_SUCCESS) goto fail;
	if ((r = p_cuCtxSetCurrent(c->ctx)) != CUDA_SUCCESS) goto fail_ctx;
	if ((r = p_cuStreamCreate(&c->stream, CU_STREAM_NON_BLOCKING)) != CUDA_SUCCESS) goto fail_ctx;
	if ((r = p_cuModuleLoadDataEx(&c->mod, ptx, 0, NULL, NULL)) != CUDA_SUCCESS) goto fail_stream;
	for (int i = 0; i < nnames; i++)
		if ((r = p_cuModuleGetFunction(&c->fn[i], c->mod, names[i])) != CUDA_SUCCESS) goto fail_mod;
	c->nfn = nnames;
	cublasStatus_t s = p_cublasCreate(&c->blas);
	if (s != CUBLAS_STATUS_SUCCESS) { r = (CUresult)(BLAS_ERR + s); goto fail_mod; }
	if ((s = p_cublasSetStream(c->blas, (cudaStream_t)c->stream)) != CUBLAS_STATUS_SUCCESS) {
		p_cublasDestroy(c->blas); r = (CUresult)(BLAS_ERR + s); goto fail_mod; }
	*out = c;
	return 0;
fail_mod:
	p_cuModuleUnload(c->mod);
fail_stream:
	p_cuStreamDestroy(c->stream);
fail_ctx:
	p_cuDevicePrimaryCtxRelease(c->dev);
fail:
	free(c);
	return (int)r;
}

static void pd_close(pd_ctx *c) {
	p_cuCtxSetCurrent(c->ctx);
	p_cuStreamSynchronize(c->stream);
	p_cublasDestroy(c->blas);
	p_cuModuleUnload(c->mod);
	p_cuStreamDestroy(c->stream);
	p_cuDevicePrimaryCtxRelease(c->dev);
	free(c);
}

static int pd_alloc(pd_ctx *c, size_t n, dptr *p) {
	CUresult r = p_cuCtxSetCurrent(c->ctx);
	if (r == CUDA_SUCCESS) r = p_cuMemAlloc((CUdeviceptr *)p, n);
	return (int)r;
}
static int pd_free(pd_ctx *c, dptr p) {
	p_cuCtxSetCurrent(c->ctx);
	return (int)p_cuMemFree((CUdeviceptr)p);
}
static int pd_host_alloc(pd_ctx *c, size_t n, void **p) {
	CUresult r = p_cuCtxSetCurrent(c->ctx);
	if (r == CUDA_SUCCESS) r = p_cuMemHostAlloc(p, n, 0);
	return (int)r;
}
static int pd_host_free(pd_ctx *c, void *p) {
	p_cuCtxSetCurrent(c->ctx);
	return (int)p_cuMemFreeHost(p);
}
static int pd_h2d(pd_ctx *c, dptr dst, void *src, size_t n) {
	CUresult r = p_cuCtxSetCurrent(c->ctx);
	if (r == CUDA_SUCCESS) r = p_cuMemcpyHtoDAsync((CUdeviceptr)dst, src, n, c->stream);
	return (int)r;
}
static int pd_d2h(pd_ctx *c, void *dst, dptr src, size_t n) {
	CUresult r = p_cuCtxSetCurrent(c->ctx);
	if (r == CUDA_SUCCESS) r = p_cuMemcpyDtoHAsync(dst, (CUdeviceptr)src, n, c->stream);
	return (int)r;
}
static int pd_sync(pd_ctx *c) {
	CUresult r = p_cuCtxSetCurrent(c->ctx);
	if (r == CUDA_SUCCESS) r = p_cuStreamSynchronize(c->stream);
	return (int)r;
}

// pd_launch runs kernel k with one thread per element of total (its
// args->total), 256 threads per block. args points at the kernel's
// argument struct, copied by the driver at launch.
static int pd_launch(pd_ctx *c, int k, long long total, void *args) {
	if (k < 0 || k >= c->nfn) return (int)CUDA_ERROR_INVALID_VALUE;
	if (total <= 0) return 0;
	long long blocks = (total + 255) / 256;
	if (blocks > 0x7fffffffLL) return (int)CUDA_ERROR_INVALID_VALUE;
	CUresult r = p_cuCtxSetCurrent(c->ctx);
	if (r != CUDA_SUCCESS) return (int)r;
	void *params[1] = {args};
	return (int)p_cuLaunchKernel(c->fn[k], (unsigned)blocks, 1, 1, 256, 1, 1, 0, c->stream, params, NULL);
}

// pd_gemm computes the column-major C (m x n, ldc) = A (m x k, lda) * B
// (k x n, ldb) on the device's stream. prec 0: fp32 (CUBLAS_COMPUTE_32F,
// no TF32); 1: fp32 inputs rounded to TF32 on tensor cores; 2: A and B
// bfloat16, fp32 accumulation and output.
static int pd_gemm(pd_ctx *c, int prec, int m, int n, int k, dptr A, int lda, dptr B, int ldb, dptr C, int ldc) {
	CUresult r = p_cuCtxSetCurrent(c->ctx);
	if (r != CUDA_SUCCESS) return (int)r;
	float alpha = 1.0f, beta = 0.0f;
	cudaDataType_t in = prec == 2 ? CUDA_R_16BF : CUDA_R_32F;
	cublasComputeType_t ct = prec == 1 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
	cublasStatus_t s = p_cublasGemmEx(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha,
		(const void *)A, in, lda, (const void *)B, in, ldb, &beta, (void *)C, CUDA_R_32F, ldc,
		ct, CUBLAS_GEMM_DEFAULT);
	return s == CUBLAS_STATUS_SUCCESS ? 0 : BLAS_ERR + (int)s;
}
*/
import "C"

import (
	_ "embed"
	"fmt"
	"sync"
	"unsafe"
)

// kernelsPTX is kernels.cu.h compiled by nvcc (make gpu-ptx; the cuda build
// needs it).
//
//go:embed kernels.ptx
var kernelsPTX string

const backendName = "cuda"

var loadOnce struct {
	sync.Once
	err error
}

// loadDriver opens the NVIDIA driver once per process.
func loadDriver() error {
	loadOnce.Do(func() {
		if r := C.pd_load(); r != 0 {
			if r == -1 {
				loadOnce.err = fmt.Errorf("%w: %s", ErrNoDevice, C.GoString(C.pd_load_error()))
				return
			}
			loadOnce.err = fmt.Errorf("%w: the CUDA driver did not initialise: %v", ErrNoDevice, cudaErr(int(r)))
		}
	})
	return loadOnce.err
}

// deviceCount is the number of GPUs the driver sees.
func deviceCount() (int, error) {
	if err := loadDriver(); err != nil {
		return 0, err
	}
	var n C.int
	if r := C.pd_device_count(&n); r != 0 {
		return 0, fmt.Errorf("gpu: counting devices: %w", cudaErr(int(r)))
	}
	return int(n), nil
}

func cudaErr(r int) error {
	if r >= int(C.BLAS_ERR) {
		return fmt.Errorf("cuBLAS status %d", r-int(C.BLAS_ERR))
	}
	return fmt.Errorf("%s (%d): %s", C.GoString(C.pd_error_name(C.int(r))), r, C.GoString(C.pd_error_string(C.int(r))))
}

// cudaEngine is one GPU: its primary context, a stream, a cuBLAS handle
// and the kernels module.
type cudaEngine struct {
	c    *C.pd_ctx
	info engineInfo
}

func openEngine(ordinal int) (engine, error) {
	if err := loadDriver(); err != nil {
		return nil, err
	}
	cptx := C.CString(kernelsPTX)
	defer C.free(unsafe.Pointer(cptx))
	names := make([]*C.char, len(kernelNames))
	for i, n := range kernelNames {
		names[i] = C.CString(n)
		defer C.free(unsafe.Pointer(names[i]))
	}
	// The array of names lives in C memory: cgo forbids passing Go memory
	// that holds pointers.
	cnames := (**C.char)(C.malloc(C.size_t(len(names)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(cnames))
	copy(unsafe.Slice(cnames, len(names)), names)
	var (
		c            *C.pd_ctx
		name         [256]C.char
		mem          C.size_t
		major, minor C.int
	)
	if r := C.pd_open(C.int(ordinal), cptx, cnames, C.int(len(names)), &c, &name[0], C.int(len(name)), &mem, &major, &minor); r != 0 {
		return nil, fmt.Errorf("gpu: cuda:%d: %w", ordinal, cudaErr(int(r)))
	}
	var drv C.int
	C.pd_driver_version(&drv)
	e := &cudaEngine{c: c, info: engineInfo{
		Name: C.GoString(&name[0]), MemBytes: int64(mem), Major: int(major), Minor: int(minor), Driver: int(drv),
	}}
	return e, nil
}

func (e *cudaEngine) engineInfo() engineInfo { return e.info }

func (e *cudaEngine) alloc(n int) (dptr, error) {
	var p C.dptr
	if r := C.pd_alloc(e.c, C.size_t(max(n, 1)), &p); r != 0 {
		return 0, fmt.Errorf("gpu: allocating %d bytes on %s: %w", n, e.info.Name, cudaErr(int(r)))
	}
	return dptr(p), nil
}

func (e *cudaEngine) free(p dptr) {
	if p != 0 {
		C.pd_free(e.c, C.dptr(p))
	}
}

func (e *cudaEngine) hostAlloc(n int) ([]byte, error) {
	var p unsafe.Pointer
	if r := C.pd_host_alloc(e.c, C.size_t(max(n, 1)), &p); r != 0 {
		return nil, fmt.Errorf("gpu: allocating %d bytes of pinned host memory: %w", n, cudaErr(int(r)))
	}
	return unsafe.Slice((*byte)(p), n), nil
}

func (e *cudaEngine) hostFree(b []byte) {
	if cap(b) > 0 {
		C.pd_host_free(e.c, unsafe.Pointer(unsafe.SliceData(b)))
	}
}

func (e *cudaEngine) h2d(dst dptr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	if r := C.pd_h2d(e.c, C.dptr(dst), unsafe.Pointer(unsafe.SliceData(src)), C.size_t(len(src))); r != 0 {
		return fmt.Errorf("gpu: copy to the device: %w", cudaErr(int(r)))
	}
	return nil
}

func (e *cudaEngine) d2h(dst []byte, src dptr) error {
	if len(dst) == 0 {
		return nil
	}
	if r := C.pd_d2h(e.c, unsafe.Pointer(unsafe.SliceData(dst)), C.dptr(src), C.size_t(len(dst))); r != 0 {
		return fmt.Errorf("gpu: copy from the device: %w", cudaErr(int(r)))
	}
	return nil
}

func (e *cudaEngine) sync() error {
	if r := C.pd_sync(e.c); r != 0 {
		return fmt.Errorf("gpu: %s: %w", e.info.Name, cudaErr(int(r)))
	}
	return nil
}

func (e *cudaEngine) launch(k kernel, total int64, args unsafe.Pointer) error {
	if r := C.pd_launch(e.c, C.int(k), C.longlong(total), args); r != 0 {
		return fmt.Errorf("gpu: kernel %s: %w", kernelNames[k], cudaErr(int(r)))
	}
	return nil
}

func (e *cudaEngine) gemm(p Precision, m, n, k int, a dptr, lda int, b dptr, ldb int, c dptr, ldc int) error {
	if r := C.pd_gemm(e.c, C.int(precisionCode(p)), C.int(m), C.int(n), C.int(k), C.dptr(a), C.int(lda), C.dptr(b), C.int(ldb), C.dptr(c), C.int(ldc)); r != 0 {
		return fmt.Errorf("gpu: GEMM %dx%dx%d (%s): %w", m, n, k, p, cudaErr(int(r)))
	}
	return nil
}

func (e *cudaEngine) close() {
	if e.c != nil {
		C.pd_close(e.c)
		e.c = nil
	}
}
