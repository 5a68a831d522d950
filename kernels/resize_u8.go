package kernels

// ResizeBicubicU8 resizes planes images of h x w 8-bit pixels in src to
// oh x ow floats in dst: dst gets exactly the bits of Unit8 into a float32
// buffer followed by ResizeBicubic[float32](planes, h, w, oh, ow, dst, buf),
// that is the pixels scaled to [0, 1] and resized like MATLAB's
// imresize(A, [oh ow], 'bicubic').
//
// Unlike ResizeBicubic it runs entirely on the calling goroutine and
// converts one plane at a time into a small pooled scratch buffer, so the
// working set of one 128x128 plane stays in the L2 cache. It is meant to
// be called for one image at a time from several goroutines at once, and
// is safe for that.
func ResizeBicubicU8(planes, h, w, oh, ow int, dst []float32, src []uint8) {
	checkResize("ResizeBicubicU8", planes, h, w, oh, ow, len(dst), len(src))
	if planes == 0 {
		return
	}
	th := resizeTableFor[float32](h, oh)
	tw := resizeTableFor[float32](w, ow)
	order := resizeOrder(h, w, oh, ow, th, tw)
	if order == resizeCopy {
		Unit8(dst, src)
		return
	}
	// Scratch: the converted plane, the plane between the two passes, and
	// the transposed planes of resizePlaneWT.
	hw, mid := h, 0 // rows of the width pass, elements between the passes
	switch order {
	case resizeHThenW:
		hw, mid = oh, oh*w
	case resizeWThenH:
		mid = h * ow
	}
	wt := 0
	if order != resizeHOnly && useWT[float32](hw) {
		wt = (w + ow) * hw
	}
	buf := getBuf[float32](h*w + mid + wt)
	defer putBuf(buf)
	in, m, scr := (*buf)[:h*w], (*buf)[h*w:][:mid], (*buf)[h*w+mid:]
	for p := range planes {
		Unit8(in, src[p*h*w:][:h*w])
		out := dst[p*oh*ow:][:oh*ow]
		switch order {
		case resizeWOnly:
			resizePlaneW(h, w, ow, out, in, scr, tw)
		case resizeHOnly:
			resizeRowsH(0, oh, h, oh, w, out, in, th)
		case resizeHThenW:
			resizeRowsH(0, oh, h, oh, w, m, in, th)
			resizePlaneW(oh, w, ow, out, m, scr, tw)
		default:
			resizePlaneW(h, w, ow, m, in, scr, tw)
			resizeRowsH(0, oh, h, oh, ow, out, m, th)
		}
	}
}

// resizePlaneW is resizeAlongW of one float32 plane on the calling
// goroutine; scratch holds (w+ow)*h elements where useWT(h).
func resizePlaneW(h, w, ow int, dst, src, scratch []float32, t resizeTable[float32]) {
	if useWT[float32](h) {
		resizePlaneWT(h, w, ow, dst, src, scratch, t)
		return
	}
	resizeRowsW(0, h, w, ow, dst, src, t)
}
