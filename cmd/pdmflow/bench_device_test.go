//go:build !pdmcudaemu

package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/gpu"
	"github.com/pdmflow/pdmflow/internal/syncbuf"
)

// TestBenchDeviceWithoutGPU: `pdmflow bench --device cuda:0` in a binary
// built without CUDA (the default build) fails at once, before any
// workload, with an error that names the missing CUDA build and how to
// get one; in a pdmcuda build on a host without a GPU, with the driver's
// reason. (It does not fall back to the CPU: a GPU benchmark that measured
// the CPU would be mislabelled.)
func TestBenchDeviceWithoutGPU(t *testing.T) {
	n, err := gpu.Count()
	if err == nil && n > 0 {
		t.Skipf("this host has %d GPUs", n)
	}
	t.Setenv(envBenchChild, "1")
	var stdout, stderr syncbuf.Buffer
	code := run(t.Context(), []string{"bench", "--device", "cuda:0", "--quick", "--iters", "1", "--no-torch"}, &stdout, &stderr)
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailure, stdout.String(), stderr.String())
	}
	msg := stderr.String()
	t.Logf("stderr:\n%s", msg)
	want := []string{"--device cuda:0", "no usable NVIDIA GPU"}
	if errors.Is(err, gpu.ErrNotBuilt) {
		want = append(want, "this binary was built without CUDA support (make build-cuda builds one)")
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("no %q in the error", w)
		}
	}
	if strings.Contains(msg, "child process") || stdout.String() != "" {
		t.Errorf("a workload ran before the device was checked:\n%s", msg)
	}
}
