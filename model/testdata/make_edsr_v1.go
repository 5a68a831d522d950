//go:build ignore

// make_edsr_v1 wrote edsr_v1_*.safetensors with pdmflow at commit 180f3dd,
// before SR networks moved behind model.SR: EDSR weights files (kind "sr")
// as pdmflow wrote them then, and edsr_v1_io.safetensors, an LR image and
// what each network made of it (EDSR.Upscale, whole image). It is kept as
// the record of how the fixtures were made: it uses the API of that commit
// (model.NewEDSR, model.SaveEDSR) and no longer compiles.
//
//	go run model/testdata/make_edsr_v1.go   (at commit 180f3dd, from the repository root)
package main

import (
	"log"
	"math/rand/v2"

	"gorgonia.org/tensor"

	"bytes"
	"github.com/pdmflow/pdmflow/internal/safetensors"
	"github.com/pdmflow/pdmflow/model"
	"os"
)

func main() {
	r := rand.New(rand.NewPCG(17, 1))
	const h, w = 7, 9
	lr := make([]float32, 3*h*w)
	for i := range lr {
		lr[i] = r.Float32()
	}
	ts := []safetensors.Tensor{safetensors.FromFloat32s("lr", []int{3, h, w}, lr)}
	for _, c := range []struct {
		name string
		cfg  model.SRConfig
	}{
		{"light", model.SRConfig{Arch: "edsr", Scale: 4, NF: 4, NB: 2, ResScale: 1, RGBRange: 255, Residual: true, Upsampler: "light"}},
		{"pixelshuffle", model.SRConfig{Arch: "edsr", Scale: 3, NF: 4, NB: 1, ResScale: 0.5, RGBRange: 255, Upsampler: "pixelshuffle"}},
	} {
		e, err := model.NewEDSR(c.cfg, tensor.Float32, 5)
		if err != nil {
			log.Fatal(err)
		}
		// Move the weights off PyTorch's init so that every layer matters.
		for _, p := range e.M.Params() {
			for i, v := range p.Value.Data().([]float32) {
				p.Value.Data().([]float32)[i] = v + 0.05*float32(r.NormFloat64())
			}
		}
		if err := model.SaveEDSR("model/testdata/edsr_v1_"+c.name+".safetensors", e); err != nil {
			log.Fatal(err)
		}
		sr, err := e.Upscale(lr, h, w, 0)
		if err != nil {
			log.Fatal(err)
		}
		s := c.cfg.Scale
		ts = append(ts, safetensors.FromFloat32s("sr_"+c.name, []int{3, h * s, w * s}, sr))
	}
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, nil, ts); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("model/testdata/edsr_v1_io.safetensors", buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
