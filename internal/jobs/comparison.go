package jobs

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/internal/plot"
	"github.com/pdmflow/pdmflow/kernels"
)

// Layout of the comparison picture.
const (
	cmpCrop   = 48  // HR pixels of a crop
	cmpZoom   = 3   // nearest-neighbour magnification of the crops
	cmpThumb  = 144 // side of the whole-image thumbnail, at most
	cmpGap    = 6
	cmpLabelH = 2 * plot.CharH
	cmpStride = 8 // candidate crop positions, HR pixels apart
	cmpBorder = 4 // pixels cropped from each side when scoring, as eval
	cmpRows   = 4 // validation images shown at most
)

var cmpMark = [3]uint8{230, 30, 30}

// comparison writes a picture of the cmpRows validation images where the
// methods disagree most (of all of them): per row,
// the whole ground truth small with the crop marked, then the crop of the
// LR image, of each method's SR and of the ground truth, magnified with
// nearest neighbours, each labelled with its method and its PSNR on the
// whole image. The crop of each image is where the methods differ most
// (the largest variance across their outputs, summed over the crop), which
// is where a reader can see what they do; flat sky, where every method
// agrees, is never chosen.
func comparison(valLR, valHR string, outs, labels []string, scale int, path string) error {
	gts, err := imageio.List(valHR)
	if err != nil {
		return err
	}
	// Every image's crop and how much the methods disagree there; the rows
	// are the images of the largest disagreement.
	type pick struct {
		gt, lr *imageio.Image
		srs    []*imageio.Image
		x, y   int
		score  float64
		name   string
	}
	var picks []pick
	for _, g := range gts {
		gt, err := imageio.Load(g)
		if err != nil {
			return err
		}
		lr, err := imageio.Load(filepath.Join(valLR, filepath.Base(g)))
		if err != nil {
			return err
		}
		if gt.W < cmpCrop || gt.H < cmpCrop {
			continue
		}
		p := pick{gt: gt, lr: lr, srs: make([]*imageio.Image, len(outs)), name: stem(g)}
		for j, o := range outs {
			if p.srs[j], err = imageio.Load(filepath.Join(o, stem(g)+".png")); err != nil {
				return err
			}
		}
		p.x, p.y, p.score = disagreement(p.srs, gt.W, gt.H)
		picks = append(picks, p)
	}
	sort.SliceStable(picks, func(i, j int) bool { return picks[i].score > picks[j].score })
	n := min(cmpRows, len(picks))
	cell := cmpCrop * cmpZoom
	cols := len(outs) + 2
	w := cmpThumb + cmpGap + cols*(cell+cmpGap) + cmpGap
	rowH := max(cell, cmpThumb) + cmpLabelH + cmpGap
	im := plot.New(w, cmpLabelH+n*rowH+cmpGap, plot.ColorBack)
	heads := append(append([]string{"LR"}, labels...), "ground truth")
	for j, h := range heads {
		plot.Text(im, cmpThumb+cmpGap+j*(cell+cmpGap), 4, clip(h, cell), 1, plot.ColorText)
	}
	for i, p := range picks[:n] {
		gt, lr, srs, x0, y0 := p.gt, p.lr, p.srs, p.x, p.y
		y := cmpLabelH + i*rowH
		thumb := thumbnail(gt, cmpThumb)
		paste(im, thumb, 0, y)
		f := float64(thumb.W) / float64(gt.W)
		rect(im, int(float64(x0)*f), y+int(float64(y0)*f), max(2, int(cmpCrop*f)), max(2, int(cmpCrop*f)), cmpMark)
		tiles := []*imageio.Image{upNearest(lr, scale).Crop(x0, y0, cmpCrop, cmpCrop)}
		notes := []string{fmt.Sprintf("%dx%d", lr.W, lr.H)}
		for _, sr := range srs {
			tiles = append(tiles, sr.Crop(x0, y0, cmpCrop, cmpCrop))
			notes = append(notes, fmt.Sprintf("%.2f dB", imagePSNR(sr, gt)))
		}
		tiles = append(tiles, gt.Crop(x0, y0, cmpCrop, cmpCrop))
		notes = append(notes, p.name)
		for j, t := range tiles {
			x := cmpThumb + cmpGap + j*(cell+cmpGap)
			paste(im, upNearest(t, cmpZoom), x, y)
			plot.Text(im, x, y+cell+3, clip(notes[j], cell), 1, plot.ColorText)
		}
	}
	return im.Save(path)
}

// disagreement returns the top-left corner of the cmpCrop x cmpCrop crop
// where the images (of w x h at least) differ most from each other, and
// how much: the largest sum over a crop's pixels of the variance across
// the images.
func disagreement(ims []*imageio.Image, w, h int) (int, int, float64) {
	for _, im := range ims {
		w, h = min(w, im.W), min(h, im.H)
	}
	if len(ims) < 2 || w < cmpCrop || h < cmpCrop {
		return max(0, w/2-cmpCrop/2), max(0, h/2-cmpCrop/2), 0
	}
	// The per-pixel variance across the images, then its box sums by an
	// integral image.
	v := make([]float64, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var s float64
			for c := 0; c < 3; c++ {
				var m, m2 float64
				for _, im := range ims {
					p := float64(im.Pix[(c*im.H+y)*im.W+x])
					m += p
					m2 += p * p
				}
				m /= float64(len(ims))
				s += m2/float64(len(ims)) - m*m
			}
			v[y*w+x] = s
		}
	}
	ii := make([]float64, (w+1)*(h+1))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			ii[(y+1)*(w+1)+x+1] = v[y*w+x] + ii[y*(w+1)+x+1] + ii[(y+1)*(w+1)+x] - ii[y*(w+1)+x]
		}
	}
	best, bx, by := -1.0, 0, 0
	for y := 0; y+cmpCrop <= h; y += cmpStride {
		for x := 0; x+cmpCrop <= w; x += cmpStride {
			s := ii[(y+cmpCrop)*(w+1)+x+cmpCrop] - ii[y*(w+1)+x+cmpCrop] - ii[(y+cmpCrop)*(w+1)+x] + ii[y*(w+1)+x]
			if s > best {
				best, bx, by = s, x, y
			}
		}
	}
	return bx, by, best
}

// imagePSNR is the RGB PSNR of a against b with eval's border, over the
// part both cover.
func imagePSNR(a, b *imageio.Image) float64 {
	w, h := min(a.W, b.W), min(a.H, b.H)
	return kernels.PSNR(a.Crop(0, 0, w, h).Pix, b.Crop(0, 0, w, h).Pix, 3, h, w, cmpBorder)
}

// thumbnail shrinks im to at most side pixels on its longer side (MATLAB
// bicubic), or returns it as it is when it is smaller.
func thumbnail(im *imageio.Image, side int) *imageio.Image {
	if im.W <= side && im.H <= side {
		return im
	}
	w, h := side, max(1, im.H*side/im.W)
	if im.H > im.W {
		w, h = max(1, im.W*side/im.H), side
	}
	out := make([]float32, 3*w*h)
	kernels.ResizeBicubic(3, im.H, im.W, h, w, out, im.Float32())
	kernels.Quantize8(out, out)
	return imageio.FromPlanarFloat(w, h, out)
}

// rect draws the outline of a rectangle, 2 pixels wide.
func rect(im *imageio.Image, x, y, w, h int, rgb [3]uint8) {
	plot.Fill(im, x, y, w, 2, rgb)
	plot.Fill(im, x, y+h-2, w, 2, rgb)
	plot.Fill(im, x, y, 2, h, rgb)
	plot.Fill(im, x+w-2, y, 2, h, rgb)
}

// clip shortens s to what fits in px pixels of text at scale 1.
func clip(s string, px int) string {
	r := []rune(s)
	if n := px / plot.CharW; len(r) > n {
		return string(r[:max(0, n)])
	}
	return s
}
