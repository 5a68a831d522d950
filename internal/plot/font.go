// Package plot draws the few pictures pdmflow writes besides image crops:
// text in a small bitmap font, and histograms of two samples side by side
// (learned against true distributions). It has no dependencies beyond
// internal/imageio and draws into its planar RGB images.
package plot

import (
	"strings"

	"github.com/pdmflow/pdmflow/internal/imageio"
)

// glyphs is a 5x7 bitmap font: seven rows of five columns per character,
// '#' set. Lower-case letters are drawn as upper case; characters not here
// as '?'.
var glyphs = map[rune][7]string{
	'A':  {" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"},
	'B':  {"#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "},
	'C':  {" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "},
	'D':  {"#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "},
	'E':  {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"},
	'F':  {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "},
	'G':  {" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"},
	'H':  {"#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"},
	'I':  {" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "},
	'J':  {"  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "},
	'K':  {"#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"},
	'L':  {"#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"},
	'M':  {"#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"},
	'N':  {"#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"},
	'O':  {" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "},
	'P':  {"#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "},
	'Q':  {" ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #"},
	'R':  {"#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"},
	'S':  {" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "},
	'T':  {"#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "},
	'U':  {"#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "},
	'V':  {"#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "},
	'W':  {"#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # "},
	'X':  {"#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"},
	'Y':  {"#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "},
	'Z':  {"#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"},
	'0':  {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "},
	'1':  {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "},
	'2':  {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"},
	'3':  {"#### ", "    #", "    #", " ### ", "    #", "    #", "#### "},
	'4':  {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "},
	'5':  {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "},
	'6':  {" ### ", "#    ", "#    ", "#### ", "#   #", "#   #", " ### "},
	'7':  {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "},
	'8':  {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "},
	'9':  {" ### ", "#   #", "#   #", " ####", "    #", "    #", " ### "},
	' ':  {"     ", "     ", "     ", "     ", "     ", "     ", "     "},
	'.':  {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "},
	',':  {"     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   "},
	':':  {"     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "},
	'-':  {"     ", "     ", "     ", "#####", "     ", "     ", "     "},
	'+':  {"     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "},
	'/':  {"    #", "    #", "   # ", "  #  ", " #   ", "#    ", "#    "},
	'(':  {"   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "},
	')':  {" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "},
	'%':  {"##  #", "##  #", "   # ", "  #  ", " #   ", "#  ##", "#  ##"},
	'=':  {"     ", "     ", "#####", "     ", "#####", "     ", "     "},
	'_':  {"     ", "     ", "     ", "     ", "     ", "     ", "#####"},
	'|':  {"  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "},
	'<':  {"   # ", "  #  ", " #   ", "#    ", " #   ", "  #  ", "   # "},
	'>':  {" #   ", "  #  ", "   # ", "    #", "   # ", "  #  ", " #   "},
	'\'': {"  #  ", "  #  ", "     ", "     ", "     ", "     ", "     "},
	'!':  {"  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "     ", "  #  "},
	'?':  {" ### ", "#   #", "    #", "   # ", "  #  ", "     ", "  #  "},
	'[':  {" ### ", " #   ", " #   ", " #   ", " #   ", " #   ", " ### "},
	']':  {" ### ", "   # ", "   # ", "   # ", "   # ", "   # ", " ### "},
}

// CharW and CharH are a character cell's size at scale 1 (the glyph and a
// one-pixel gap).
const (
	CharW = 6
	CharH = 8
)

// TextWidth is the width of s drawn at scale.
func TextWidth(s string, scale int) int { return len([]rune(s)) * CharW * scale }

// Text draws s with its top-left corner at (x, y), each font pixel a
// scale x scale square of colour rgb, clipped to the image.
func Text(im *imageio.Image, x, y int, s string, scale int, rgb [3]uint8) {
	for i, r := range []rune(strings.ToUpper(s)) {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['?']
		}
		x0 := x + i*CharW*scale
		for gy, row := range g {
			for gx, c := range row {
				if c != '#' {
					continue
				}
				Fill(im, x0+gx*scale, y+gy*scale, scale, scale, rgb)
			}
		}
	}
}

// Fill paints the rectangle (x, y, w, h), clipped to the image.
func Fill(im *imageio.Image, x, y, w, h int, rgb [3]uint8) {
	x0, y0, x1, y1 := max(0, x), max(0, y), min(im.W, x+w), min(im.H, y+h)
	plane := im.W * im.H
	for c := 0; c < 3; c++ {
		for yy := y0; yy < y1; yy++ {
			row := im.Pix[c*plane+yy*im.W:]
			for xx := x0; xx < x1; xx++ {
				row[xx] = rgb[c]
			}
		}
	}
}

// New returns a w x h image filled with rgb.
func New(w, h int, rgb [3]uint8) *imageio.Image {
	im := &imageio.Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	Fill(im, 0, 0, w, h, rgb)
	return im
}
