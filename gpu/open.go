package gpu

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/pdmflow/pdmflow/model"
)

// ErrNoDevice is returned when no GPU can be used: no NVIDIA driver or
// cuBLAS, no device, or a binary built without CUDA (ErrNotBuilt).
var ErrNoDevice = errors.New("gpu: no usable NVIDIA GPU")

// ErrNotBuilt is returned for a GPU by a binary built without the pdmcuda tag.
var ErrNotBuilt = fmt.Errorf("%w: this binary was built without CUDA support (make build-cuda builds one)", ErrNoDevice)

// Precision is the arithmetic of the noise network's convolutions on a
// GPU (the kernel network always runs in fp32).
type Precision string

const (
	FP32 Precision = "fp32" // IEEE float32 GEMMs (cuBLAS CUBLAS_COMPUTE_32F)
	TF32 Precision = "tf32" // inputs rounded to TF32 on tensor cores, fp32 accumulation
	BF16 Precision = "bf16" // bfloat16 inputs and weights, fp32 accumulation
)

// ParsePrecision reads "fp32", "tf32" or "bf16" ("" is fp32).
func ParsePrecision(s string) (Precision, error) {
	switch p := Precision(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return FP32, nil
	case FP32, TF32, BF16:
		return p, nil
	}
	return "", fmt.Errorf("gpu: precision %q: fp32, tf32 or bf16", s)
}

func precisionCode(p Precision) int {
	switch p {
	case TF32:
		return 1
	case BF16:
		return 2
	}
	return 0
}

// Count reports how many GPUs this binary can use (ErrNotBuilt without the
// pdmcuda tag; an error wrapping ErrNoDevice when the driver is missing).
func Count() (int, error) { return deviceCount() }

// Open resolves a device spec (the producer's --device) into devices:
//
//	cpu        the CPU reference (model.CPU)
//	cuda:N     GPU N ("cuda" is cuda:0)
//	cuda:all   every GPU, one device each
//	auto       every GPU when this binary has CUDA and the driver sees one;
//	           otherwise the CPU, with the reason logged
//
// prec is the GPUs' precision. The caller closes every device returned.
func Open(spec string, prec Precision, log *slog.Logger) ([]model.Device, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := ParsePrecision(string(prec)); err != nil {
		return nil, err
	}
	if prec == "" {
		prec = FP32
	}
	spec = strings.ToLower(strings.TrimSpace(spec))
	switch {
	case spec == "" || spec == "cpu":
		return []model.Device{model.CPU}, nil
	case spec == "auto":
		n, err := deviceCount()
		if err == nil && n == 0 {
			err = fmt.Errorf("%w: the driver sees no GPU", ErrNoDevice)
		}
		if err != nil {
			log.Info("no GPU to use, generating on the CPU", "reason", err)
			return []model.Device{model.CPU}, nil
		}
		return openRange(0, n, prec)
	case spec == "cuda":
		return openRange(0, 1, prec)
	case strings.HasPrefix(spec, "cuda:"):
		rest := spec[len("cuda:"):]
		if rest == "all" {
			n, err := deviceCount()
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return nil, fmt.Errorf("%w: the driver sees no GPU", ErrNoDevice)
			}
			return openRange(0, n, prec)
		}
		i, err := strconv.Atoi(rest)
		if err != nil || i < 0 {
			return nil, fmt.Errorf("gpu: device %q: want cpu, auto, cuda, cuda:N or cuda:all", spec)
		}
		return openRange(i, i+1, prec)
	}
	return nil, fmt.Errorf("gpu: device %q: want cpu, auto, cuda, cuda:N or cuda:all", spec)
}

// openRange opens GPUs [lo, hi), closing those opened when one fails.
func openRange(lo, hi int, prec Precision) ([]model.Device, error) {
	n, err := deviceCount()
	if err != nil {
		return nil, err
	}
	if hi > n {
		return nil, fmt.Errorf("%w: cuda:%d asked for, the driver sees %d GPUs", ErrNoDevice, hi-1, n)
	}
	var devs []model.Device
	for i := lo; i < hi; i++ {
		d, err := openDevice(i, prec)
		if err != nil {
			for _, d := range devs {
				d.Close()
			}
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// Backend says what GPU support this binary has: "cuda" (built with the
// pdmcuda tag), "cudaemu" (the host emulation, for tests) or "" (none).
func Backend() string { return backendName }
