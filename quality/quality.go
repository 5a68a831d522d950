// Package quality scores a super-resolved image against its ground truth as
// SR papers do: PSNR and SSIM in RGB or on the ITU-R BT.601 luma (Y) channel,
// after cropping a border, and optionally the NTIRE 2018 scorer for
// misaligned ground truth: the largest PSNR and the largest SSIM over
// integer shifts of the reference.
//
// Images are planar RGB, 3 x h x w uint8 slices (the layout of pdmflow's
// image files). PSNR is 20 log10(255 / RMSE) and SSIM is MATLAB's ssim
// (Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, 'valid' filtering),
// both as package kernels computes them; the Y channel stays unrounded, on
// the [0, 255] scale.
//
// The shift search (Options.Shift = N > 0): the reference's region is its
// border-cropped image, or the Patch x Patch patch at its centre; for each
// shift (dy, dx) with |dy|, |dx| <= N, reference pixel (y, x) is compared
// with SR pixel (y+dy, x+dx), over the part of the region whose shifted
// pixels lie inside the SR image's border-cropped area (both images are
// cropped to that overlap). PSNR and SSIM are each maximised over all
// (2N+1)^2 shifts, and the maximising shifts are reported (the first in
// the order dy, then dx, ascending, on a tie). The official PDM code
// searched with a 60x60 patch and a 10-pixel border but, through an
// indexing bug, only 3361 of the 6561 shifts of N = 40, and SSIM only at
// even shifts; docs/decisions.md has the details.
package quality

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/pdmflow/pdmflow/kernels"
)

// BT.601 luma of R, G, B in [0, 1], on the [0, 255] scale (16 to 235): what
// MATLAB's rgb2ycbcr and most SR evaluation code compute.
const (
	yOffset = 16
	yR      = 65.481
	yG      = 128.553
	yB      = 24.966
)

// Y returns the ITU-R BT.601 luma of a planar RGB image (3 x h x w) on the
// [0, 255] scale: 16 + (65.481 R + 128.553 G + 24.966 B) / 255 with R, G, B
// the 8-bit values. It is not rounded (MATLAB's rgb2ycbcr of a uint8 image
// rounds it; the difference in PSNR is a few hundredths of a dB).
func Y(rgb []uint8, h, w int) []float64 {
	n := h * w
	y := make([]float64, n)
	r, g, b := rgb[:n], rgb[n:2*n], rgb[2*n:3*n]
	for i := range y {
		y[i] = yOffset + (yR*float64(r[i])+yG*float64(g[i])+yB*float64(b[i]))/255
	}
	return y
}

// Options choose what Compare measures.
type Options struct {
	// Y compares the BT.601 luma instead of the three RGB channels.
	Y bool
	// Border pixels are cropped from every side of both images.
	Border int
	// Shift > 0 maximises PSNR and SSIM over shifts of the reference
	// within +-Shift pixels (the NTIRE 2018 scorer).
	Shift int
	// Patch, with Shift > 0, is the side of the centre patch of the
	// reference compared at each shift; 0 compares the whole cropped
	// image. The official protocol is Shift 40, Patch 60, Border 10.
	Patch int
}

// Score is what Compare measured.
type Score struct {
	PSNR float64 `json:"psnr"`
	SSIM float64 `json:"ssim"`
	// The shifts (dy, dx) at which PSNR and SSIM were largest: reference
	// pixel (y, x) against SR pixel (y+dy, x+dx). Zero without a search.
	PSNRShift [2]int `json:"psnr_shift"`
	SSIMShift [2]int `json:"ssim_shift"`
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	if o.Border < 0 || o.Shift < 0 || o.Patch < 0 {
		return fmt.Errorf("quality: negative border %d, shift %d or patch %d", o.Border, o.Shift, o.Patch)
	}
	if o.Patch > 0 && o.Patch < 11 {
		return fmt.Errorf("quality: patch %d is smaller than SSIM's 11x11 window", o.Patch)
	}
	return nil
}

// Compare scores sr against ref, both planar RGB images of h x w.
func Compare(sr, ref []uint8, h, w int, o Options) (Score, error) {
	if err := o.Validate(); err != nil {
		return Score{}, err
	}
	if h < 1 || w < 1 || len(sr) != 3*h*w || len(ref) != 3*h*w {
		return Score{}, fmt.Errorf("quality: images of %d and %d values, %dx%d RGB needs %d", len(sr), len(ref), w, h, 3*h*w)
	}
	if h <= 2*o.Border || w <= 2*o.Border {
		return Score{}, fmt.Errorf("quality: a %dx%d image has nothing left after cropping %d pixels per side", w, h, o.Border)
	}
	if o.Shift == 0 {
		if !o.Y {
			return Score{PSNR: kernels.PSNR(sr, ref, 3, h, w, o.Border), SSIM: kernels.SSIM(sr, ref, 3, h, w, o.Border)}, nil
		}
		a, b := Y(sr, h, w), Y(ref, h, w)
		return Score{PSNR: kernels.PSNRFloat(a, b, 1, h, w, o.Border), SSIM: kernels.SSIMFloat(a, b, 1, h, w, o.Border)}, nil
	}
	a, b, c := planes(sr, ref, h, w, o.Y)
	return searchShifts(a, b, c, h, w, o), nil
}

// planes returns both images as float64 planes and their channel count.
func planes(sr, ref []uint8, h, w int, y bool) (a, b []float64, c int) {
	if y {
		return Y(sr, h, w), Y(ref, h, w), 1
	}
	a, b = make([]float64, len(sr)), make([]float64, len(ref))
	for i := range sr {
		a[i], b[i] = float64(sr[i]), float64(ref[i])
	}
	return a, b, 3
}

// rect is [y0, y1) x [x0, x1).
type rect struct{ y0, y1, x0, x1 int }

// regions returns the reference's region and the SR image's area.
func regions(h, w int, o Options) (refR, srR rect) {
	b := o.Border
	srR = rect{b, h - b, b, w - b}
	refR = srR
	if o.Patch > 0 {
		if ph := min(o.Patch, h-2*b); ph < h-2*b {
			refR.y0 = b + (h-2*b-ph)/2
			refR.y1 = refR.y0 + ph
		}
		if pw := min(o.Patch, w-2*b); pw < w-2*b {
			refR.x0 = b + (w-2*b-pw)/2
			refR.x1 = refR.x0 + pw
		}
	}
	return refR, srR
}

// overlap is the part of refR whose pixels shifted by (dy, dx) lie in srR.
func overlap(refR, srR rect, dy, dx int) rect {
	return rect{max(refR.y0, srR.y0-dy), min(refR.y1, srR.y1-dy), max(refR.x0, srR.x0-dx), min(refR.x1, srR.x1-dx)}
}

// CompareShiftRef is the reference of the shift search: for every shift,
// both images cropped to the overlap and scored by kernels.PSNRFloat and
// kernels.SSIMFloat. It is the oracle Compare is tested against.
func CompareShiftRef(sr, ref []uint8, h, w int, o Options) Score {
	a, b, c := planes(sr, ref, h, w, o.Y)
	refR, srR := regions(h, w, o)
	best := Score{PSNR: math.Inf(-1), SSIM: math.Inf(-1)}
	for dy := -o.Shift; dy <= o.Shift; dy++ {
		for dx := -o.Shift; dx <= o.Shift; dx++ {
			r := overlap(refR, srR, dy, dx)
			rh, rw := r.y1-r.y0, r.x1-r.x0
			if rh < 1 || rw < 1 {
				continue
			}
			ca, cb := make([]float64, c*rh*rw), make([]float64, c*rh*rw)
			for ch := range c {
				for y := range rh {
					for x := range rw {
						cb[(ch*rh+y)*rw+x] = b[(ch*h+r.y0+y)*w+r.x0+x]
						ca[(ch*rh+y)*rw+x] = a[(ch*h+r.y0+y+dy)*w+r.x0+x+dx]
					}
				}
			}
			if p := kernels.PSNRFloat(ca, cb, c, rh, rw, 0); p > best.PSNR {
				best.PSNR, best.PSNRShift = p, [2]int{dy, dx}
			}
			if s := kernels.SSIMFloat(ca, cb, c, rh, rw, 0); s > best.SSIM {
				best.SSIM, best.SSIMShift = s, [2]int{dy, dx}
			}
		}
	}
	if math.IsInf(best.SSIM, -1) {
		best.SSIM = math.NaN()
	}
	return best
}

const (
	win   = 11
	sigma = 1.5
	c1    = (0.01 * 255) * (0.01 * 255)
	c2    = (0.03 * 255) * (0.03 * 255)
)

func gauss() [win]float64 {
	var g [win]float64
	var s float64
	for i := range g {
		d := float64(i - win/2)
		g[i] = math.Exp(-d * d / (2 * sigma * sigma))
		s += g[i]
	}
	for i := range g {
		g[i] /= s
	}
	return g
}

// windowMeans returns the Gaussian-weighted window means of v and v^2 for
// every 11x11 window inside r of a h x w plane (top-left corners r.y0 ..
// r.y1-11, row-major, (r.y1-r.y0-10) x (r.x1-r.x0-10)).
func windowMeans(v []float64, w int, r rect, g [win]float64) (m, m2 []float64) {
	rh, rw := r.y1-r.y0, r.x1-r.x0
	mh, mw := rh-win+1, rw-win+1
	if mh < 1 || mw < 1 {
		return nil, nil
	}
	hs, hs2 := make([]float64, rh*mw), make([]float64, rh*mw)
	for y := range rh {
		row := v[(r.y0+y)*w+r.x0:][:rw]
		for x := range mw {
			var s, s2 float64
			for k, gk := range g {
				p := row[x+k]
				s += gk * p
				s2 += gk * p * p
			}
			hs[y*mw+x], hs2[y*mw+x] = s, s2
		}
	}
	m, m2 = make([]float64, mh*mw), make([]float64, mh*mw)
	for y := range mh {
		for k, gk := range g {
			o := (y + k) * mw
			for x := range mw {
				m[y*mw+x] += gk * hs[o+x]
				m2[y*mw+x] += gk * hs2[o+x]
			}
		}
	}
	return m, m2
}

// searchShifts is the shift search with each image's window statistics
// computed once: per shift only the squared differences and the window
// means of the product of the two images are new. Shifts are spread over
// the cores; the result does not depend on how.
func searchShifts(a, b []float64, c, h, w int, o Options) Score {
	refR, srR := regions(h, w, o)
	g := gauss()
	type stats struct{ m, m2 []float64 }
	srS, refS := make([]stats, c), make([]stats, c)
	srMW := srR.x1 - srR.x0 - win + 1
	refMW := refR.x1 - refR.x0 - win + 1
	for ch := range c {
		srS[ch].m, srS[ch].m2 = windowMeans(a[ch*h*w:][:h*w], w, srR, g)
		refS[ch].m, refS[ch].m2 = windowMeans(b[ch*h*w:][:h*w], w, refR, g)
	}
	n := 2*o.Shift + 1
	psnr, ssim := make([]float64, n*n), make([]float64, n*n)
	workers := min(runtime.GOMAXPROCS(0), n*n)
	var wg sync.WaitGroup
	for wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var prod, hs []float64
			for i := wk; i < n*n; i += workers {
				dy, dx := i/n-o.Shift, i%n-o.Shift
				psnr[i], ssim[i] = math.Inf(-1), math.Inf(-1)
				r := overlap(refR, srR, dy, dx)
				rh, rw := r.y1-r.y0, r.x1-r.x0
				if rh < 1 || rw < 1 {
					continue
				}
				var sse float64
				for ch := range c {
					for y := r.y0; y < r.y1; y++ {
						ra := a[(ch*h+y+dy)*w+r.x0+dx:][:rw]
						rb := b[(ch*h+y)*w+r.x0:][:rw]
						for x, va := range ra {
							d := va - rb[x]
							sse += d * d
						}
					}
				}
				psnr[i] = math.Inf(1)
				if sse > 0 {
					psnr[i] = 20 * math.Log10(255/math.Sqrt(sse/float64(c*rh*rw)))
				}
				mh, mw := rh-win+1, rw-win+1
				if mh < 1 || mw < 1 {
					continue
				}
				if cap(prod) < rh*rw {
					prod = make([]float64, rh*rw)
				}
				if cap(hs) < rh*mw {
					hs = make([]float64, rh*mw)
				}
				prod, hs = prod[:rh*rw], hs[:rh*mw]
				var total float64
				for ch := range c {
					for y := range rh {
						ra := a[(ch*h+r.y0+y+dy)*w+r.x0+dx:][:rw]
						rb := b[(ch*h+r.y0+y)*w+r.x0:][:rw]
						for x := range rw {
							prod[y*rw+x] = ra[x] * rb[x]
						}
					}
					for y := range rh {
						for x := range mw {
							var s float64
							for k, gk := range g {
								s += gk * prod[y*rw+x+k]
							}
							hs[y*mw+x] = s
						}
					}
					var sum float64
					for y := range mh {
						// Window (r.y0+y, r.x0+x) of the reference and
						// (r.y0+y+dy, r.x0+x+dx) of the SR image.
						ro := (r.y0+y-refR.y0)*refMW + r.x0 - refR.x0
						so := (r.y0+y+dy-srR.y0)*srMW + r.x0 + dx - srR.x0
						for x := range mw {
							var mxy float64
							for k, gk := range g {
								mxy += gk * hs[(y+k)*mw+x]
							}
							mx, mxx := srS[ch].m[so+x], srS[ch].m2[so+x]
							my, myy := refS[ch].m[ro+x], refS[ch].m2[ro+x]
							sx, sy, sxy := mxx-mx*mx, myy-my*my, mxy-mx*my
							sum += ((2*mx*my + c1) * (2*sxy + c2)) / ((mx*mx + my*my + c1) * (sx + sy + c2))
						}
					}
					total += sum / float64(mh*mw)
				}
				ssim[i] = total / float64(c)
			}
		}()
	}
	wg.Wait()
	best := Score{PSNR: math.Inf(-1), SSIM: math.Inf(-1)}
	for i := range psnr {
		d := [2]int{i/n - o.Shift, i%n - o.Shift}
		if psnr[i] > best.PSNR {
			best.PSNR, best.PSNRShift = psnr[i], d
		}
		if ssim[i] > best.SSIM {
			best.SSIM, best.SSIMShift = ssim[i], d
		}
	}
	if math.IsInf(best.SSIM, -1) {
		best.SSIM = math.NaN()
	}
	return best
}
