//go:build pdmcudaemu

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/internal/syncbuf"
)

// TestBenchOnEmulatedGPU runs `pdmflow bench --device cuda:0 --quick` end
// to end on package gpu's host emulation (go test -tags pdmcudaemu): w1
// and w3 by default, each in a child process, w1 at the doubling batches,
// w3's producer on the device, and the GPU reference asked for without a
// CUDA PyTorch (a note, no ratios).
func TestBenchOnEmulatedGPU(t *testing.T) {
	t.Setenv(envBenchChild, "1")
	var stdout, stderr syncbuf.Buffer
	code := run(t.Context(), []string{"bench", "--device", "cuda:0", "--quick", "--iters", "1", "--json", "--torch", "--python", "/nonexistent/python3",
		"--torch-script", "../../bench/pdm_ref.py"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	t.Logf("stderr:\n%s", stderr.String())
	var rep benchReport
	dec := json.NewDecoder(strings.NewReader(stdout.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, stdout.String())
	}
	if rep.DeviceSpec != "cuda:0" || rep.Precision != "fp32" || !strings.Contains(rep.Device, "host emulation") || len(rep.Workloads) != 2 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Torch != nil || !strings.Contains(rep.TorchNote, "PyTorch reference not available") {
		t.Errorf("torch %+v, note %q", rep.Torch, rep.TorchNote)
	}
	w1, w3 := rep.Workloads[0], rep.Workloads[1]
	if w1.Workload != "w1" || w3.Workload != "w3" {
		t.Fatalf("workloads %s, %s", w1.Workload, w3.Workload)
	}
	// The quick doubling search: batch 2, then 4 and 8 while each gains 5%.
	if n := len(w1.DeviceBatches); n < 2 || n > 3 || w1.DeviceBatches[0].Batch != 2 || w1.DeviceBatches[1].Batch != 4 {
		t.Errorf("w1 batches %+v", w1.DeviceBatches)
	}
	if w1.PeakRSSMiB <= 0 || w1.SaturatingBatch == 0 || w1.DeviceTag != "cudaemu/fp32" {
		t.Errorf("w1 %+v", w1.Result)
	}
	if st := w3.Stages; st == nil || st.ProducerPairsPerSec <= 0 || st.GenerationPairsPerSec <= 0 || st.PublishPairsPerSec <= 0 || w3.Raw == nil || w3.PeakRSSMiB <= 0 {
		t.Errorf("w3 %+v, stages %+v", w3.Result, w3.Stages)
	}

	// The table, w1 alone at given batches in bf16.
	var tableOut, tableErr syncbuf.Buffer
	code = run(t.Context(), []string{"bench", "--device", "cuda:0", "--precision", "bf16", "--gpu-batches", "2,3", "--workloads", "w1", "--quick", "--iters", "1", "--no-torch"}, &tableOut, &tableErr)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, tableOut.String(), tableErr.String())
	}
	out := tableOut.String()
	t.Logf("stdout:\n%s", out)
	for _, want := range []string{"device cuda:0: host emulation 0", "bf16", "w1 producer", "run TFLOP/s", "saturates at batch", "PyTorch reference not run (--no-torch)"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the table", want)
		}
	}
}
