package kernels

import (
	"fmt"
	"math"
)

// Image-quality metrics as the PDM evaluation computes them on RGB images
// with 8-bit values (taken as float64 in [0, 255]). Images are planar
// C x H x W uint8 slices; border pixels are cropped from every side first.
// PSNRFloat and SSIMFloat compute the same on float64 planes whose values
// are on the same [0, 255] scale (a Y channel, say), and give the uint8
// functions' results for integer values.

// Pixel is the element type of the metrics' planes.
type Pixel interface{ ~uint8 | ~float64 }

func checkMetric[T Pixel](name string, a, b []T, c, h, w, border int) {
	if c < 1 || h < 1 || w < 1 || border < 0 {
		panic(fmt.Sprintf("kernels: %s: bad image shape %dx%dx%d or border %d", name, c, h, w, border))
	}
	if len(a) != c*h*w || len(b) != c*h*w {
		panic(fmt.Sprintf("kernels: %s: images have %d and %d values, %dx%dx%d needs %d", name, len(a), len(b), c, h, w, c*h*w))
	}
}

// PSNRFloat is PSNR of float64 planes with values on the [0, 255] scale.
func PSNRFloat(a, b []float64, c, h, w, border int) float64 {
	checkMetric("PSNRFloat", a, b, c, h, w, border)
	hc, wc := h-2*border, w-2*border
	if hc < 1 || wc < 1 {
		return math.NaN()
	}
	var sse float64
	for ch := range c {
		for y := border; y < h-border; y++ {
			off := (ch*h+y)*w + border
			ra, rb := a[off:][:wc], b[off:][:wc]
			for x, va := range ra {
				d := va - rb[x]
				sse += d * d
			}
		}
	}
	if sse == 0 {
		return math.Inf(1)
	}
	mse := sse / float64(c*hc*wc)
	return 20 * math.Log10(255/math.Sqrt(mse))
}

// PSNR is 20*log10(255/sqrt(MSE)) with the mean squared error taken over
// every channel of the two images cropped by border pixels on each side.
// Identical images give +Inf; a crop that leaves nothing gives NaN.
func PSNR(a, b []uint8, c, h, w, border int) float64 {
	checkMetric("PSNR", a, b, c, h, w, border)
	hc, wc := h-2*border, w-2*border
	if hc < 1 || wc < 1 {
		return math.NaN()
	}
	var sse int64
	for ch := range c {
		for y := border; y < h-border; y++ {
			off := (ch*h+y)*w + border
			ra, rb := a[off:][:wc], b[off:][:wc]
			for x, va := range ra {
				d := int64(va) - int64(rb[x])
				sse += d * d
			}
		}
	}
	if sse == 0 {
		return math.Inf(1)
	}
	mse := float64(sse) / float64(c*hc*wc)
	return 20 * math.Log10(255/math.Sqrt(mse))
}

const (
	ssimWin   = 11
	ssimSigma = 1.5
	ssimC1    = (0.01 * 255) * (0.01 * 255)
	ssimC2    = (0.03 * 255) * (0.03 * 255)
)

// ssimWindow1D is the normalised 1-D Gaussian whose outer product with
// itself is MATLAB's fspecial('gaussian', 11, 1.5).
func ssimWindow1D() [ssimWin]float64 {
	var g [ssimWin]float64
	var sum float64
	for i := range g {
		d := float64(i - ssimWin/2)
		g[i] = math.Exp(-d * d / (2 * ssimSigma * ssimSigma))
		sum += g[i]
	}
	for i := range g {
		g[i] /= sum
	}
	return g
}

// ssimValue is one entry of the SSIM map from the window means of x, y,
// x^2, y^2 and xy.
func ssimValue(mx, my, mxx, myy, mxy float64) float64 {
	sx := mxx - mx*mx
	sy := myy - my*my
	sxy := mxy - mx*my
	return ((2*mx*my + ssimC1) * (2*sxy + ssimC2)) / ((mx*mx + my*my + ssimC1) * (sx + sy + ssimC2))
}

// ssimRef is the reference SSIM: every entry of the map from direct 2-D
// window sums with the 2-D Gaussian of fspecial.
func ssimRef[T Pixel](a, b []T, c, h, w, border int) float64 {
	checkMetric("ssimRef", a, b, c, h, w, border)
	hc, wc := h-2*border, w-2*border
	if hc < ssimWin || wc < ssimWin {
		return math.NaN()
	}
	var win [ssimWin][ssimWin]float64
	var wsum float64
	for u := range ssimWin {
		for v := range ssimWin {
			du, dv := float64(u-ssimWin/2), float64(v-ssimWin/2)
			win[u][v] = math.Exp(-(du*du + dv*dv) / (2 * ssimSigma * ssimSigma))
			wsum += win[u][v]
		}
	}
	var total float64
	for ch := range c {
		var sum float64
		for y := border; y+ssimWin <= h-border; y++ {
			for x := border; x+ssimWin <= w-border; x++ {
				var mx, my, mxx, myy, mxy float64
				for u := range ssimWin {
					for v := range ssimWin {
						i := (ch*h+y+u)*w + x + v
						g := win[u][v] / wsum
						p, q := float64(a[i]), float64(b[i])
						mx += g * p
						my += g * q
						mxx += g * (p * p)
						myy += g * (q * q)
						mxy += g * (p * q)
					}
				}
				sum += ssimValue(mx, my, mxx, myy, mxy)
			}
		}
		total += sum / float64((hc-ssimWin+1)*(wc-ssimWin+1))
	}
	return total / float64(c)
}

// ssimBlock is how many rows of the SSIM map one task computes.
const ssimBlock = 64

// SSIM is MATLAB's ssim (Wang et al. 2004, as in the PDM evaluation) averaged
// over the channels of the two images cropped by border pixels on each side:
// per channel, 11x11 Gaussian window of sigma 1.5, 'valid' filtering (the
// map is 10 pixels smaller than the cropped image in each dimension),
// C1 = (0.01*255)^2, C2 = (0.03*255)^2, the mean of the map. A cropped image
// smaller than 11x11 gives NaN. The Gaussian filtering is separable and the
// rows of the map are spread over the cores; the result does not depend on
// the number of workers.
func SSIM(a, b []uint8, c, h, w, border int) float64 {
	return ssim("SSIM", a, b, c, h, w, border)
}

// SSIMFloat is SSIM of float64 planes with values on the [0, 255] scale
// (the constants C1 and C2 are those of 8-bit images).
func SSIMFloat(a, b []float64, c, h, w, border int) float64 {
	return ssim("SSIMFloat", a, b, c, h, w, border)
}

func ssim[T Pixel](name string, a, b []T, c, h, w, border int) float64 {
	checkMetric(name, a, b, c, h, w, border)
	hc, wc := h-2*border, w-2*border
	if hc < ssimWin || wc < ssimWin {
		return math.NaN()
	}
	g := ssimWindow1D()
	mh, mw := hc-ssimWin+1, wc-ssimWin+1
	blocks := (mh + ssimBlock - 1) / ssimBlock
	rowSums := make([]float64, c*mh)
	bufs := make([]*[]float64, Workers())
	parallelTasks(c*blocks, func(worker, task int) {
		ch, y0 := task/blocks, task%blocks*ssimBlock
		y1 := min(y0+ssimBlock, mh)
		rows := y1 - y0 + ssimWin - 1
		if bufs[worker] == nil {
			bufs[worker] = getBuf[float64](5 * (ssimBlock + ssimWin) * mw)
		}
		buf := *bufs[worker]
		n := rows * mw
		hx, hy, hxx, hyy, hxy := buf[:n], buf[n:2*n], buf[2*n:3*n], buf[3*n:4*n], buf[4*n:5*n]
		// Horizontal pass over the input rows the block needs.
		for r := range rows {
			off := (ch*h+border+y0+r)*w + border
			ra, rb := a[off:][:wc], b[off:][:wc]
			o := r * mw
			for x := range mw {
				var sx, sy, sxx, syy, sxy float64
				for k, gk := range g {
					p, q := float64(ra[x+k]), float64(rb[x+k])
					sx += gk * p
					sy += gk * q
					sxx += gk * (p * p)
					syy += gk * (q * q)
					sxy += gk * (p * q)
				}
				hx[o+x], hy[o+x], hxx[o+x], hyy[o+x], hxy[o+x] = sx, sy, sxx, syy, sxy
			}
		}
		// Vertical pass and the map, one row at a time.
		acc := buf[5*n:][:5*mw]
		vx, vy, vxx, vyy, vxy := acc[:mw], acc[mw:2*mw], acc[2*mw:3*mw], acc[3*mw:4*mw], acc[4*mw:]
		for y := y0; y < y1; y++ {
			clear(acc)
			for k, gk := range g {
				r := (y - y0 + k) * mw
				ssimAxpy(vx, hx[r:][:mw], gk)
				ssimAxpy(vy, hy[r:][:mw], gk)
				ssimAxpy(vxx, hxx[r:][:mw], gk)
				ssimAxpy(vyy, hyy[r:][:mw], gk)
				ssimAxpy(vxy, hxy[r:][:mw], gk)
			}
			var sum float64
			for x := range mw {
				sum += ssimValue(vx[x], vy[x], vxx[x], vyy[x], vxy[x])
			}
			rowSums[ch*mh+y] = sum
		}
	})
	for _, b := range bufs {
		if b != nil {
			putBuf(b)
		}
	}
	var total float64
	for ch := range c {
		var sum float64
		for _, s := range rowSums[ch*mh:][:mh] {
			sum += s
		}
		total += sum / float64(mh*mw)
	}
	return total / float64(c)
}

// ssimAxpy adds g*x to y element-wise.
func ssimAxpy(y, x []float64, g float64) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] += g * v
	}
}
