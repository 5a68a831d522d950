package producer

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pdmflow/pdmflow/internal/dataset"
)

// BenchmarkGenerate is one W3-sized message of the bicubic and gaussian
// degradations: 34 crops of 128x128 from 256x256 images into a reused
// message buffer, as a producer makes them between publishes.
func BenchmarkGenerate(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	images := &dataset.Dataset{Dir: "memory"}
	for i := 0; i < 4; i++ {
		pix := make([]uint8, 3*256*256)
		for j := range pix {
			pix[j] = uint8(r.IntN(256))
		}
		images.Items = append(images.Items, dataset.Item{Path: fmt.Sprintf("bench%d.png", i), W: 256, H: 256, Pix: pix})
	}
	for _, deg := range []string{DegradeBicubic, DegradeGaussian} {
		b.Run(deg, func(b *testing.B) {
			g := &generator{degradation: deg, hrSize: 128, scale: 4, kernelSize: 21}
			defer g.close()
			var buf []byte
			for i := 0; b.Loop(); i++ {
				_, data, err := g.generate(images, 34, batchMeta{run: "bench", producer: "p", batchSeq: uint64(i)}, buf)
				if err != nil {
					b.Fatal(err)
				}
				buf = data
				b.SetBytes(int64(len(data)))
			}
		})
	}
}
