package dataset

import (
	"math"
	"math/rand/v2"
	"testing"
)

// extractRef is the crop transform written plainly: output pixel (i, j)
// comes from crop pixel (y, x) = (i, j), transposed (bit 2), then x
// mirrored (bit 0), then y mirrored (bit 1).
func extractRef(it Item, c Crop, ch, i, j int) uint8 {
	s := c.Size
	y, x := i, j
	if c.Dihedral&4 != 0 {
		y, x = x, y
	}
	if c.Dihedral&1 != 0 {
		x = s - 1 - x
	}
	if c.Dihedral&2 != 0 {
		y = s - 1 - y
	}
	return it.Pix[(ch*it.H+c.Y+y)*it.W+c.X+x]
}

// TestExtractMatchesReference checks both extractions against the plain
// transform for all eight dihedral transforms, odd sizes and positions.
func TestExtractMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	w, h := 37, 29
	pix := make([]uint8, 3*w*h)
	for i := range pix {
		pix[i] = uint8(r.IntN(256))
	}
	d := &Dataset{Items: []Item{{Path: "a.png", W: w, H: h, Pix: pix}}}
	for _, s := range []int{1, 7, 16, 29} {
		for tr := uint8(0); tr < 8; tr++ {
			c := Crop{Image: 0, X: r.IntN(w - s + 1), Y: r.IntN(h - s + 1), Size: s, Dihedral: tr}
			u8 := make([]uint8, 3*s*s)
			f := make([]float32, 3*s*s)
			d.ExtractU8(c, u8)
			d.Extract(c, f)
			for ch := 0; ch < 3; ch++ {
				for i := 0; i < s; i++ {
					for j := 0; j < s; j++ {
						want := extractRef(d.Items[0], c, ch, i, j)
						k := (ch*s+i)*s + j
						if u8[k] != want {
							t.Fatalf("size %d transform %d: u8 (%d,%d,%d) = %d, want %d", s, tr, ch, i, j, u8[k], want)
						}
						if f[k] != float32(want)/255 {
							t.Fatalf("size %d transform %d: float (%d,%d,%d) = %g, want %g", s, tr, ch, i, j, f[k], float32(want)/255)
						}
					}
				}
			}
		}
	}
}

// TestEightBitRoundTrip: every 8-bit value survives v/255 in float32 and
// back (round(f*255)), so x_ref taken from the 8-bit crop is what earlier
// producers wrote by rounding the float crop.
func TestEightBitRoundTrip(t *testing.T) {
	for v := 0; v < 256; v++ {
		f := float32(v) / 255
		if got := uint8(math.Round(float64(f) * 255)); int(got) != v {
			t.Fatalf("%d -> %g -> %d", v, f, got)
		}
	}
}
