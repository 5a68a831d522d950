package model_test

import (
	"fmt"
	"math/rand/v2"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/model"
)

// A PDM degrades an HR image into one LR sample: the kernel it drew, the
// noise it added and the result, for the latents r draws.
func ExamplePDM_Degrade() {
	cfg := model.PDMConfig{
		Scale:  4,
		Kernel: model.KernelConfig{Size: 11, NC: 8, NF: 8, NB: 1, Conv: 1, Init: "box"},
		Noise:  model.NoiseConfig{Mode: model.NoiseMixed, NC: 3, NF: 8, NB: 1, Conv: 3},
	}
	pdm, err := model.NewPDM(cfg, tensor.Float32, 1)
	if err != nil {
		panic(err)
	}
	hr := make([]float32, 3*32*32) // a mid-grey 32x32 image, CHW in [0, 1]
	for i := range hr {
		hr[i] = 0.5
	}
	d, err := pdm.Degrade(hr, 32, 32, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		panic(err)
	}
	var sum float32
	for _, v := range d.Kernel {
		sum += v
	}
	fmt.Printf("LR %dx%d, %d kernel taps summing to %.3f, noise: %v\n", d.W, d.H, len(d.Kernel), sum, d.Noise != nil)
	// Output: LR 8x8, 121 kernel taps summing to 1.000, noise: true
}
