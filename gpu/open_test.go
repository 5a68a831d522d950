package gpu

import (
	"errors"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/model"
)

func TestOpen(t *testing.T) {
	devs, err := Open("cpu", FP32, nil)
	if err != nil || len(devs) != 1 || devs[0] != model.CPU {
		t.Fatalf("cpu: %v, %v", devs, err)
	}
	// auto always gives something to generate on: the GPUs, or the CPU.
	devs, err = Open("auto", FP32, nil)
	if err != nil || len(devs) == 0 {
		t.Fatalf("auto: %v, %v", devs, err)
	}
	for _, d := range devs {
		d.Close()
	}
	for _, bad := range []string{"gpu", "cuda:", "cuda:-1", "cuda:x", "cpu:0"} {
		if _, err := Open(bad, FP32, nil); err == nil || errors.Is(err, ErrNoDevice) {
			t.Errorf("%q: got %v, want a usage error", bad, err)
		}
	}
	if _, err := Open("cuda:99", FP32, nil); !errors.Is(err, ErrNoDevice) {
		t.Errorf("cuda:99: got %v, want ErrNoDevice", err)
	}
	if _, err := Open("cpu", "fp16", nil); err == nil {
		t.Error("precision fp16 accepted")
	}
	if backendName == "" { // the default build
		if _, err := Open("cuda:0", FP32, nil); !errors.Is(err, ErrNotBuilt) || !strings.Contains(err.Error(), "make build-cuda") {
			t.Errorf("cuda:0 without CUDA: got %v, want ErrNotBuilt saying how to build one", err)
		}
		if devs, err := Open("auto", FP32, nil); err != nil || devs[0] != model.CPU {
			t.Errorf("auto without CUDA: %v, %v; want the CPU", devs, err)
		}
	}
	for _, p := range []string{"", "fp32", "TF32", " bf16 "} {
		if _, err := ParsePrecision(p); err != nil {
			t.Errorf("precision %q: %v", p, err)
		}
	}
}
