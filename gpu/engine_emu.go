//go:build pdmcudaemu && !pdmcuda

package gpu

/*
#cgo CXXFLAGS: -O2 -std=c++17
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

int emu_launch(int k, const void *args);
const char *emu_kernel_name(int k);
void emu_gemm(int prec, int m, int n, int k, dptr A, int lda, dptr B, int ldb, dptr C, int ldc);

static dptr emu_alloc(size_t n) { return (dptr)calloc(1, n); }
static void emu_free(dptr p) { free((void *)p); }
static void emu_h2d(dptr dst, const void *src, size_t n) { memcpy((void *)dst, src, n); }
static void emu_d2h(void *dst, dptr src, size_t n) { memcpy(dst, (const void *)src, n); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

const backendName = "cudaemu"

// emuEngine is the host emulation of a GPU: "device" memory is host memory
// from C's allocator, kernels run as loops (emu.cc).
type emuEngine struct{ ordinal int }

// emuDevices is how many emulated GPUs there are.
const emuDevices = 2

func loadDriver() error { return nil }

func deviceCount() (int, error) { return emuDevices, nil }

func openEngine(ordinal int) (engine, error) {
	if ordinal < 0 || ordinal >= emuDevices {
		return nil, fmt.Errorf("gpu: cudaemu:%d: %w: the emulation has %d devices", ordinal, ErrNoDevice, emuDevices)
	}
	for k, name := range kernelNames {
		if got := C.GoString(C.emu_kernel_name(C.int(k))); got != name {
			return nil, fmt.Errorf("gpu: kernel %d is %q in kernels.h and %q in package gpu", k, got, name)
		}
	}
	return &emuEngine{ordinal: ordinal}, nil
}

func (e *emuEngine) engineInfo() engineInfo {
	return engineInfo{Name: fmt.Sprintf("host emulation %d", e.ordinal), MemBytes: 1 << 30, Major: 9, Minor: 0}
}

func (e *emuEngine) alloc(n int) (dptr, error) {
	p := C.emu_alloc(C.size_t(max(n, 1)))
	if p == 0 {
		return 0, fmt.Errorf("gpu: emulation: cannot allocate %d bytes", n)
	}
	return dptr(p), nil
}

func (e *emuEngine) free(p dptr) { C.emu_free(C.dptr(p)) }

func (e *emuEngine) hostAlloc(n int) ([]byte, error) {
	p := C.calloc(1, C.size_t(max(n, 1)))
	if p == nil {
		return nil, fmt.Errorf("gpu: emulation: cannot allocate %d bytes", n)
	}
	return unsafe.Slice((*byte)(p), n), nil
}

func (e *emuEngine) hostFree(b []byte) {
	if cap(b) > 0 {
		C.free(unsafe.Pointer(unsafe.SliceData(b)))
	}
}

func (e *emuEngine) h2d(dst dptr, src []byte) error {
	if len(src) > 0 {
		C.emu_h2d(C.dptr(dst), unsafe.Pointer(unsafe.SliceData(src)), C.size_t(len(src)))
	}
	return nil
}

func (e *emuEngine) d2h(dst []byte, src dptr) error {
	if len(dst) > 0 {
		C.emu_d2h(unsafe.Pointer(unsafe.SliceData(dst)), C.dptr(src), C.size_t(len(dst)))
	}
	return nil
}

func (e *emuEngine) sync() error { return nil }

func (e *emuEngine) launch(k kernel, total int64, args unsafe.Pointer) error {
	if total <= 0 {
		return nil
	}
	if C.emu_launch(C.int(k), args) != 0 {
		return fmt.Errorf("gpu: emulation: no kernel %d", k)
	}
	return nil
}

func (e *emuEngine) gemm(p Precision, m, n, k int, a dptr, lda int, b dptr, ldb int, c dptr, ldc int) error {
	C.emu_gemm(C.int(precisionCode(p)), C.int(m), C.int(n), C.int(k), C.dptr(a), C.int(lda), C.dptr(b), C.int(ldb), C.dptr(c), C.int(ldc))
	return nil
}

func (e *emuEngine) close() {}
