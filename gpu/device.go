//go:build pdmcuda || pdmcudaemu

package gpu

/*
#include "kernels.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/pdmflow/pdmflow/model"
)

// dptr is a device address.
type dptr uint64

// kernel names a kernel of kernels.cu.h; the order is kernels.h's
// PD_KERNELS.
type kernel int

const (
	kU8ToF32 kernel = iota
	kBlurDown
	kIm2ColF32
	kIm2ColBF16
	kToBF16
	kBiasAct
	kSoftmaxCols
	kToCNHW
	kCenterPlanes
	kAddNoise
	kNoiseStats
	kFourierQuant
	kResizeAxis
)

var kernelNames = [...]string{
	"u8_to_f32", "blur_down", "im2col_f32", "im2col_bf16", "to_bf16", "bias_act", "softmax_cols",
	"to_cnhw", "center_planes", "add_noise", "noise_stats", "fourier_quant", "resize_axis",
}

// engineInfo describes a GPU.
type engineInfo struct {
	Name         string
	MemBytes     int64
	Major, Minor int // compute capability
	Driver       int // CUDA driver version, e.g. 12040 (0 in the emulation)
}

// engine is what the samplers need of a GPU: memory, copies on one
// stream, kernel launches and GEMMs, all asynchronous until sync. The cuda
// build implements it with the CUDA driver and cuBLAS (engine_cuda.go),
// the cudaemu build on the host (engine_emu.go).
type engine interface {
	engineInfo() engineInfo
	alloc(n int) (dptr, error)
	free(p dptr)
	// hostAlloc returns pinned host memory (page-locked: copies from and
	// to it are DMA transfers).
	hostAlloc(n int) ([]byte, error)
	hostFree(b []byte)
	h2d(dst dptr, src []byte) error
	d2h(dst []byte, src dptr) error
	sync() error
	// launch runs kernel k with one thread per element of total; args
	// points at its argument struct (kernels.h).
	launch(k kernel, total int64, args unsafe.Pointer) error
	// gemm: column-major C (m x n, ldc) = A (m x k, lda) * B (k x n, ldb)
	// in precision p (BF16: A and B hold bfloat16).
	gemm(p Precision, m, n, k int, a dptr, lda int, b dptr, ldb int, c dptr, ldc int) error
	close()
}

// Device is one GPU as a model.Device.
type Device struct {
	e       engine
	ordinal int
	prec    Precision
	info    engineInfo
}

var _ model.Device = (*Device)(nil)

func openDevice(ordinal int, prec Precision) (model.Device, error) {
	e, err := openEngine(ordinal)
	if err != nil {
		return nil, err
	}
	info := e.engineInfo()
	if (prec == BF16 || prec == TF32) && info.Major < 8 {
		e.close()
		return nil, fmt.Errorf("gpu: cuda:%d (%s, compute capability %d.%d): %s needs compute capability 8.0 or newer", ordinal, info.Name, info.Major, info.Minor, prec)
	}
	return &Device{e: e, ordinal: ordinal, prec: prec, info: info}, nil
}

func (d *Device) Name() string { return fmt.Sprintf("cuda:%d", d.ordinal) }

// Tag is "cuda/PRECISION" ("cudaemu/PRECISION" for the emulation).
func (d *Device) Tag() string { return backendName + "/" + string(d.prec) }

// Precision is the noise network's GEMM precision.
func (d *Device) Precision() Precision { return d.prec }

func (d *Device) Describe() string {
	drv := ""
	if d.info.Driver > 0 {
		drv = fmt.Sprintf(", CUDA driver %d.%d", d.info.Driver/1000, d.info.Driver%1000/10)
	}
	return fmt.Sprintf("%s: %s (compute capability %d.%d, %.1f GiB%s), %s", d.Name(), d.info.Name, d.info.Major, d.info.Minor,
		float64(d.info.MemBytes)/(1<<30), drv, d.prec)
}

func (d *Device) Close() error {
	if d.e != nil {
		d.e.close()
		d.e = nil
	}
	return nil
}

func (d *Device) launch(k kernel, total int64, args unsafe.Pointer) error {
	return d.e.launch(k, total, args)
}

// devMem is a sampler's device allocations, freed together.
type devMem struct {
	e    engine
	ptrs []dptr
	host [][]byte
}

func (m *devMem) alloc(n int) (dptr, error) {
	p, err := m.e.alloc(n)
	if err != nil {
		return 0, err
	}
	m.ptrs = append(m.ptrs, p)
	return p, nil
}

func (m *devMem) pinned(n int) ([]byte, error) {
	b, err := m.e.hostAlloc(n)
	if err != nil {
		return nil, err
	}
	m.host = append(m.host, b)
	return b, nil
}

func (m *devMem) free() {
	for _, p := range m.ptrs {
		m.e.free(p)
	}
	for _, b := range m.host {
		m.e.hostFree(b)
	}
	m.ptrs, m.host = nil, nil
}

// allocs allocates several buffers, stopping at the first error.
func (m *devMem) allocs(sizes []int, dst ...*dptr) error {
	for i, p := range dst {
		var err error
		if *p, err = m.alloc(sizes[i]); err != nil {
			return err
		}
	}
	return nil
}

func f32Bytes(v []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

func f64Bytes(v []float64) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 8*len(v))
}

func i32Bytes(v []int32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

func u16Bytes(v []uint16) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 2*len(v))
}

// floatsAt views n float32 of b from byte offset off (4-byte aligned).
func floatsAt(b []byte, off, n int) []float32 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[off])), n)
}

// toBF16 rounds v to bfloat16 to nearest even, as the kernels' to_bf16.
func toBF16(v []float32) []uint16 {
	out := make([]uint16, len(v))
	for i, f := range v {
		u := *(*uint32)(unsafe.Pointer(&f))
		if u&0x7fffffff > 0x7f800000 {
			out[i] = uint16(u>>16) | 0x40
			continue
		}
		u += 0x7fff + (u>>16)&1
		out[i] = uint16(u >> 16)
	}
	return out
}

// align rounds n up to a multiple of 256 bytes (the alignment of every
// region inside one allocation).
func align(n int) int { return (n + 255) &^ 255 }

// cArgs is implemented by the kernels' argument structs.
type cArgs interface {
	C.U8ToF32Args | C.BlurArgs | C.Im2ColArgs | C.ToBF16Args | C.BiasActArgs | C.SoftmaxArgs |
		C.ToCNHWArgs | C.CenterArgs | C.AddNoiseArgs | C.NoiseStatsArgs | C.QuantArgs | C.ResizeArgs
}

// run launches k with args (whose total field says how many threads).
func run[A cArgs](e engine, k kernel, total int64, a *A) error {
	return e.launch(k, total, unsafe.Pointer(a))
}

// The kernels' argument structs and field types, for the package's tests
// (a test file cannot use cgo).
type (
	u8ToF32Args    = C.U8ToF32Args
	blurArgs       = C.BlurArgs
	softmaxArgs    = C.SoftmaxArgs
	centerArgs     = C.CenterArgs
	noiseStatsArgs = C.NoiseStatsArgs
	addNoiseArgs   = C.AddNoiseArgs
	quantArgs      = C.QuantArgs
)

func cdptr(p dptr) C.dptr { return C.dptr(p) }
func ci64(n int) C.i64    { return C.i64(n) }
func ci(n int) C.int      { return C.int(n) }
