package jobs

import (
	"testing"

	"github.com/pdmflow/pdmflow/internal/imageio"
)

// TestDisagreement finds the crop where the images differ, not a flat
// region where they agree.
func TestDisagreement(t *testing.T) {
	const w, h = 160, 120
	mk := func(v uint8) *imageio.Image {
		im := &imageio.Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
		for i := range im.Pix {
			im.Pix[i] = 128
		}
		// A patch where this image differs from the others.
		for c := 0; c < 3; c++ {
			for y := 64; y < 100; y++ {
				for x := 96; x < 140; x++ {
					im.Pix[(c*h+y)*w+x] = v
				}
			}
		}
		return im
	}
	x, y, score := disagreement([]*imageio.Image{mk(10), mk(128), mk(250)}, w, h)
	if score <= 0 || x < 96-cmpCrop || x > 140 || y < 64-cmpCrop || y > 100 {
		t.Errorf("crop at (%d,%d), score %g: want one over the patch (96-140, 64-100)", x, y, score)
	}
	if _, _, s := disagreement([]*imageio.Image{mk(128), mk(128)}, w, h); s != 0 {
		t.Errorf("identical images disagree by %g", s)
	}
}
