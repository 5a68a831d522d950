package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

// TestDegradeTiledMatchesDegrade: the tiled degradation gives the
// whole-image degradation's LR image, kernel and noise RMS bit for bit, for
// every kernel and noise mode, with tiles much smaller than the image (so
// that every margin matters) and one tile.
func TestDegradeTiledMatchesDegrade(t *testing.T) {
	for _, tc := range []struct {
		name              string
		spatial, zeroMean bool
		mode              string
		scale             int
	}{
		{"invariant-mixed-zeromean", false, true, NoiseMixed, 4},
		{"invariant-mixed", false, false, NoiseMixed, 2},
		{"spatial-zonly", true, false, NoiseZOnly, 3},
		{"invariant-content", false, true, NoiseContentOnly, 4},
		{"spatial-off", true, false, NoiseOff, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallPDMConfig(tc.spatial, tc.mode)
			cfg.Scale = tc.scale
			cfg.Noise.ZeroMean = tc.zeroMean
			cfg.Kernel.NB, cfg.Noise.NB = 2, 2
			p, err := NewPDM(cfg, tensor.Float32, 7)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			for _, m := range p.Modules() {
				for _, q := range m.Params() {
					d := q.Value.Data().([]float32)
					for i := range d {
						d[i] += float32(0.2 * (r.Float64() - 0.5))
					}
				}
			}
			const h, w = 53, 61
			hr := make([]float32, 3*h*w)
			for i := range hr {
				hr[i] = float32(0.5 + 0.4*math.Sin(float64(i)*0.37) + 0.05*r.Float64())
			}
			src := func(x0, y0, tw, th int, dst []float32) error {
				for c := 0; c < 3; c++ {
					for y := 0; y < th; y++ {
						copy(dst[(c*th+y)*tw:(c*th+y+1)*tw], hr[(c*h+y0+y)*w+x0:])
					}
				}
				return nil
			}
			want, err := p.Degrade(append([]float32(nil), hr...), h, w, rand.New(rand.NewPCG(9, 9)))
			if err != nil {
				t.Fatal(err)
			}
			for _, tile := range []int{3, 5, 1000} {
				got, err := p.DegradeTiled(src, h, w, tile, rand.New(rand.NewPCG(9, 9)))
				if err != nil {
					t.Fatal(err)
				}
				if got.H != want.H || got.W != want.W {
					t.Fatalf("tile %d: LR %dx%d, want %dx%d", tile, got.H, got.W, want.H, want.W)
				}
				for i := range want.LR {
					if got.LR[i] != want.LR[i] {
						t.Fatalf("tile %d: LR[%d] = %v, want %v (pixel %d of %dx%d)", tile, i, got.LR[i], want.LR[i], i%(want.H*want.W), want.H, want.W)
					}
				}
				if !tc.spatial {
					for i := range want.Kernel {
						if got.Kernel[i] != want.Kernel[i] {
							t.Fatalf("tile %d: kernel[%d] = %v, want %v", tile, i, got.Kernel[i], want.Kernel[i])
						}
					}
				}
				var rms float64
				if want.Noise != nil {
					var s float64
					for _, v := range want.Noise {
						s += float64(v) * float64(v)
					}
					rms = math.Sqrt(s / float64(len(want.Noise)))
				}
				if got.NoiseRMS != rms {
					t.Fatalf("tile %d: noise RMS %v, want %v", tile, got.NoiseRMS, rms)
				}
			}
		})
	}
}
