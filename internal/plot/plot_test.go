package plot

import (
	"testing"
)

func nonBackground(pix []uint8, w, h int, bg [3]uint8) int {
	n := 0
	for i := 0; i < w*h; i++ {
		if pix[i] != bg[0] || pix[w*h+i] != bg[1] || pix[2*w*h+i] != bg[2] {
			n++
		}
	}
	return n
}

func TestFont(t *testing.T) {
	for r, g := range glyphs {
		for i, row := range g {
			if len(row) != 5 {
				t.Errorf("glyph %q row %d is %d wide", r, i, len(row))
			}
		}
	}
	im := New(40, 10, ColorBack)
	Text(im, 1, 1, " ", 1, ColorText)
	if n := nonBackground(im.Pix, im.W, im.H, ColorBack); n != 0 {
		t.Errorf("a space drew %d pixels", n)
	}
	Text(im, 1, 1, "a1", 1, ColorText)
	// 'A' has 18 set pixels, '1' 10.
	if n := nonBackground(im.Pix, im.W, im.H, ColorBack); n != 28 {
		t.Errorf("\"a1\" drew %d pixels, want 28", n)
	}
	big := New(40, 20, ColorBack)
	Text(big, 0, 0, "a", 2, ColorText)
	if n := nonBackground(big.Pix, big.W, big.H, ColorBack); n != 4*18 {
		t.Errorf("\"a\" at scale 2 drew %d pixels, want %d", n, 4*18)
	}
	Text(big, 38, 18, "W", 3, ColorText) // clipped, no panic
}

func TestHistograms(t *testing.T) {
	a := []float64{1, 1, 2, 3}
	b := []float64{2, 2, 2, 5}
	im := Histograms([]Panel{{Title: "width", A: a, B: b, LabelA: "learned", LabelB: "true"}, {Title: "empty"}})
	if im.W != panelW || im.H != 2*panelH {
		t.Fatalf("size %dx%d", im.W, im.H)
	}
	has := func(c [3]uint8) bool {
		for i := 0; i < im.W*im.H; i++ {
			if im.Pix[i] == c[0] && im.Pix[im.W*im.H+i] == c[1] && im.Pix[2*im.W*im.H+i] == c[2] {
				return true
			}
		}
		return false
	}
	if !has(ColorA) || !has(ColorB) {
		t.Error("the bars of one sample are missing")
	}
	h := histogram(b, 1, 5)
	if h[bins/4] != 0.75 || h[bins-1] != 0.25 {
		t.Errorf("histogram of %v over [1,5]: %v", b, h)
	}
}
