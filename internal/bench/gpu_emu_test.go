//go:build pdmcudaemu

package bench

import (
	"testing"

	"github.com/pdmflow/pdmflow/gpu"
)

// TestW1AndW3OnEmulatedGPU runs the GPU paths of W1 (batches 2 and 4) and
// W3 (a PDM producer generating on the device) end to end in the quick
// shapes on package gpu's host emulation (go test -tags pdmcudaemu): the
// measurement code of a GPU run, not its speed.
func TestW1AndW3OnEmulatedGPU(t *testing.T) {
	for _, prec := range []gpu.Precision{gpu.FP32, gpu.BF16} {
		t.Run(string(prec), func(t *testing.T) {
			devs, err := gpu.Open("cuda:0", prec, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer devs[0].Close()
			if tag := devs[0].Tag(); tag != "cudaemu/"+string(prec) {
				t.Fatalf("device tag %q: not the emulation", tag)
			}
			checkDeviceWorkloads(t, devs[0], Quick())
		})
	}
}
