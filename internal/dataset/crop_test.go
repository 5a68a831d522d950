package dataset

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// extractU8Ref is ExtractU8 done per pixel with extractRow, the reference
// the fast paths must match byte for byte.
func extractU8Ref(d *Dataset, c Crop, dst []uint8) {
	s := c.Size
	for ch := 0; ch < 3; ch++ {
		for i := 0; i < s; i++ {
			d.extractRow(c, ch, i, dst[(ch*s+i)*s:(ch*s+i+1)*s])
		}
	}
}

// randomImage makes an image of random bytes of odd width and height at
// least size.
func randomImage(r *rand.Rand, size int) Item {
	w := size + r.IntN(24)
	h := size + r.IntN(24)
	w |= 1
	h |= 1
	pix := make([]uint8, 3*w*h)
	for i := range pix {
		pix[i] = uint8(r.Uint32())
	}
	return Item{Path: "r.png", W: w, H: h, Pix: pix}
}

// cropPositions gives the four corners and a few random positions.
func cropPositions(r *rand.Rand, it Item, s int) [][2]int {
	mx, my := it.W-s, it.H-s
	pos := [][2]int{{0, 0}, {mx, 0}, {0, my}, {mx, my}}
	for range 4 {
		pos = append(pos, [2]int{r.IntN(mx + 1), r.IntN(my + 1)})
	}
	return pos
}

// TestExtractU8AllTransforms checks the word-wise ExtractU8 against the
// per-pixel reference (extractRow) and the plain transform (extractRef)
// for all eight transforms, sizes around multiples of 8 and crops at the
// corners and at random places of odd-sized images, and that it writes
// nothing past 3*size*size.
func TestExtractU8AllTransforms(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const guard = 16
	for _, s := range []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 31, 64, 100, 128, 129} {
		it := randomImage(r, s)
		d := &Dataset{Items: []Item{it}}
		n := 3 * s * s
		got := make([]uint8, n+guard)
		want := make([]uint8, n)
		for _, p := range cropPositions(r, it, s) {
			for tr := uint8(0); tr < 8; tr++ {
				c := Crop{Image: 0, X: p[0], Y: p[1], Size: s, Dihedral: tr}
				for k := range got {
					got[k] = 0xa5
				}
				d.ExtractU8(c, got)
				extractU8Ref(d, c, want)
				for k := range want {
					if got[k] != want[k] {
						ch, i, j := k/(s*s), k/s%s, k%s
						t.Fatalf("%dx%d image, crop %+v: (%d,%d,%d) = %d, want %d (extractRow)", it.W, it.H, c, ch, i, j, got[k], want[k])
					}
					ch, i, j := k/(s*s), k/s%s, k%s
					if ref := extractRef(it, c, ch, i, j); want[k] != ref {
						t.Fatalf("%dx%d image, crop %+v: extractRow (%d,%d,%d) = %d, plain transform %d", it.W, it.H, c, ch, i, j, want[k], ref)
					}
				}
				for k := n; k < len(got); k++ {
					if got[k] != 0xa5 {
						t.Fatalf("%dx%d image, crop %+v: wrote dst[%d] past 3*size*size = %d", it.W, it.H, c, k, n)
					}
				}
			}
		}
	}
}

// TestExtractFloatMatchesU8: Extract gives ExtractU8's bytes / 255 for
// every transform, at sizes off and on multiples of 8.
func TestExtractFloatMatchesU8(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range []int{1, 9, 16, 33} {
		it := randomImage(r, s)
		d := &Dataset{Items: []Item{it}}
		u8 := make([]uint8, 3*s*s)
		f := make([]float32, 3*s*s)
		for tr := uint8(0); tr < 8; tr++ {
			c := Crop{Image: 0, X: r.IntN(it.W - s + 1), Y: r.IntN(it.H - s + 1), Size: s, Dihedral: tr}
			d.ExtractU8(c, u8)
			d.Extract(c, f)
			for k := range u8 {
				if f[k] != float32(u8[k])/255 {
					t.Fatalf("size %d crop %+v: float[%d] = %g, want %d/255", s, c, k, f[k], u8[k])
				}
			}
		}
	}
}

// TestReverseBytes checks the word-wise reversal at every length up to 80.
func TestReverseBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for n := 0; n <= 80; n++ {
		src := make([]uint8, n)
		for i := range src {
			src[i] = uint8(r.Uint32())
		}
		dst := make([]uint8, n)
		reverseBytes(dst, src)
		for j := range dst {
			if dst[j] != src[n-1-j] {
				t.Fatalf("length %d: dst[%d] = %d, want src[%d] = %d", n, j, dst[j], n-1-j, src[n-1-j])
			}
		}
	}
}

// BenchmarkExtractU8 extracts a 128x128 crop from a 256x256 image with
// each dihedral transform (d0..d7 = Crop.Dihedral).
func BenchmarkExtractU8(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	w, h, s := 256, 256, 128
	pix := make([]uint8, 3*w*h)
	for i := range pix {
		pix[i] = uint8(r.Uint32())
	}
	d := &Dataset{Items: []Item{{Path: "a.png", W: w, H: h, Pix: pix}}}
	dst := make([]uint8, 3*s*s)
	for tr := uint8(0); tr < 8; tr++ {
		c := Crop{Image: 0, X: 37, Y: 61, Size: s, Dihedral: tr}
		b.Run(fmt.Sprintf("d%d", tr), func(b *testing.B) {
			b.SetBytes(int64(len(dst)))
			for b.Loop() {
				d.ExtractU8(c, dst)
			}
		})
	}
}
