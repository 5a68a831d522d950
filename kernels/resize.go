package kernels

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// Bicubic resizing as MATLAB's imresize(A, [oh ow], 'bicubic') computes it
// (antialiasing on, the default), which is how super-resolution data sets
// and the PDM evaluation make their low-resolution images.
//
// Per axis MATLAB's contributions() does, with 1-based output coordinate x,
// scale = out/in and the cubic kernel of a = -0.5 (width 4):
//
//	kernel_width = 4,       h(t) = cubic(t)                if scale >= 1
//	kernel_width = 4/scale, h(t) = scale*cubic(scale*t)    if scale < 1 (antialiasing)
//	u    = x/scale + 0.5*(1 - 1/scale)                     (input coordinate, 1-based)
//	left = floor(u - kernel_width/2)
//	P    = ceil(kernel_width) + 2                          (taps left .. left+P-1)
//	w_k  = h(u - (left+k)) / sum_k h(u - (left+k))         (k = 0 .. P-1)
//
// Tap indices outside [1, in] are mirrored with the edge pixel repeated
// (MATLAB's aux = [1:in, in:-1:1] modulo trick: 0 maps to 1, -1 to 2, in+1 to
// in), and tap columns whose weight is zero for every output are dropped.
// MATLAB then resizes the dimension with the smaller scale first (height
// first on a tie); ResizeBicubic does the same so that it rounds like MATLAB
// up to the order of additions inside one pass.
//
// The functions work on floats of any range and neither round nor clamp:
// MATLAB's uint8 path is this computation followed by rounding to the
// nearest integer and saturation to [0, 255], which callers do themselves.

// bicubicKernel is MATLAB's bicubic kernel (Keys, a = -0.5).
func bicubicKernel(x float64) float64 {
	ax := math.Abs(x)
	ax2 := ax * ax
	ax3 := ax2 * ax
	switch {
	case ax <= 1:
		return 1.5*ax3 - 2.5*ax2 + 1
	case ax <= 2:
		return -0.5*ax3 + 2.5*ax2 - 4*ax + 2
	}
	return 0
}

// mirrorRepeat maps a 0-based tap index into [0, n) as MATLAB's
// aux(mod(i-1, 2n) + 1) with aux = [1:n, n:-1:1] does for 1-based indices:
// the edge pixel is repeated (-1 -> 0, n -> n-1).
func mirrorRepeat(i, n int) int {
	m := i % (2 * n)
	if m < 0 {
		m += 2 * n
	}
	if m >= n {
		m = 2*n - 1 - m
	}
	return m
}

// bicubicTaps returns the P taps of output pixel o (0-based) of an axis
// resized from in to out pixels: 0-based mirrored input indices and
// normalised weights, zero weights included.
func bicubicTaps(o, in, out int) (idx []int, w []float64) {
	p := bicubicP(in, out)
	idx, w = make([]int, p), make([]float64, p)
	bicubicTapsInto(idx, w, o, in, out)
	return idx, w
}

// bicubicP is the number of taps P of every output of an axis resized from
// in to out pixels.
func bicubicP(in, out int) int {
	scale := float64(out) / float64(in)
	kw := 4.0
	if scale < 1 {
		kw /= scale
	}
	return int(math.Ceil(kw)) + 2
}

// bicubicTapsInto is bicubicTaps into idx and w of length bicubicP(in, out).
func bicubicTapsInto(idx []int, w []float64, o, in, out int) {
	scale := float64(out) / float64(in)
	kw := 4.0
	h := bicubicKernel
	if scale < 1 {
		kw /= scale
		h = func(t float64) float64 { return scale * bicubicKernel(scale*t) }
	}
	u := float64(o+1)/scale + 0.5*(1-1/scale)
	left := int(math.Floor(u - kw/2))
	p := bicubicP(in, out)
	idx, w = idx[:p], w[:p]
	var sum float64
	for k := range p {
		j := left + k // 1-based index left + k, k = 0 .. P-1 as in MATLAB
		w[k] = h(u - float64(j))
		sum += w[k]
		idx[k] = mirrorRepeat(j-1, in)
	}
	for k := range w {
		w[k] /= sum
	}
}

// resizeTable holds the taps of every output pixel of one axis: taps
// [o*k, (o+1)*k) of idx and w belong to output o.
type resizeTable[T Float] struct {
	k        int
	idx      []int
	w        []T
	identity bool // out == in and every output copies its input pixel
}

// newResizeTable builds the taps of an axis resized from in to out pixels and
// drops the tap columns that are zero for every output, as MATLAB does.
func newResizeTable[T Float](in, out int) resizeTable[T] {
	p := bicubicP(in, out)
	idx := make([]int, out*p) // the taps of output o at [o*p, (o+1)*p)
	w := make([]float64, out*p)
	for o := range out {
		bicubicTapsInto(idx[o*p:][:p], w[o*p:][:p], o, in, out)
	}
	var keep []int
	for k := range p {
		for o := range out {
			if w[o*p+k] != 0 {
				keep = append(keep, k)
				break
			}
		}
	}
	t := resizeTable[T]{k: len(keep), idx: make([]int, out*len(keep)), w: make([]T, out*len(keep))}
	t.identity = in == out && t.k == 1
	for o := range out {
		for n, k := range keep {
			t.idx[o*t.k+n] = idx[o*p+k]
			t.w[o*t.k+n] = T(w[o*p+k])
			if t.idx[o*t.k+n] != o || w[o*p+k] != 1 {
				t.identity = false
			}
		}
	}
	return t
}

// Resize tables are cached: the producer and the trainer resize the same
// few shapes over and over, and building a table costs a few allocations
// per output pixel. A table is immutable once built, so callers share it
// (and its slices) freely. The cache is bounded in entries and in bytes;
// a table that does not fit empties it first, so a process that goes
// through many shapes keeps the ones it uses now rather than the first
// ones it saw.
const (
	resizeCacheEntries = 256
	resizeCacheBytes   = 16 << 20
)

type resizeKey struct {
	in, out int
	elem    any // T(0): its dynamic type is the T of the *resizeTable[T] stored
}

var resizeCache struct {
	tables sync.Map // resizeKey -> *resizeTable[T]
	mu     sync.Mutex
	n      int // entries in tables (under mu)
	bytes  int // their idx and w (under mu)
}

// resizeTableFor returns newResizeTable[T](in, out), from the cache when it
// is there. Safe for concurrent use.
func resizeTableFor[T Float](in, out int) resizeTable[T] {
	key := resizeKey{in, out, any(T(0))}
	if v, ok := resizeCache.tables.Load(key); ok {
		return *v.(*resizeTable[T])
	}
	t := newResizeTable[T](in, out)
	size := len(t.idx)*int(unsafe.Sizeof(int(0))) + len(t.w)*int(unsafe.Sizeof(T(0)))
	if size > resizeCacheBytes {
		return t
	}
	c := &resizeCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.tables.Load(key); ok { // another goroutine built it meanwhile
		return *v.(*resizeTable[T])
	}
	if c.n+1 > resizeCacheEntries || c.bytes+size > resizeCacheBytes {
		c.tables.Clear()
		c.n, c.bytes = 0, 0
	}
	c.tables.Store(key, &t)
	c.n++
	c.bytes += size
	return t
}

func checkResize(name string, planes, h, w, oh, ow, ldst, lsrc int) {
	if planes < 0 || h < 1 || w < 1 || oh < 1 || ow < 1 {
		panic(fmt.Sprintf("kernels: %s: cannot resize %d planes of %dx%d to %dx%d", name, planes, h, w, oh, ow))
	}
	if lsrc != planes*h*w || ldst != planes*oh*ow {
		panic(fmt.Sprintf("kernels: %s: src and dst have %d and %d elements; %d planes of %dx%d -> %dx%d need %d and %d",
			name, lsrc, ldst, planes, h, w, oh, ow, planes*h*w, planes*oh*ow))
	}
}

// ResizeBicubicRef is the reference of ResizeBicubic: every output pixel is
// the direct 2-D sum over its separable taps,
//
//	dst[p,i,j] = sum_a sum_b wh[i,a] * ww[j,b] * src[p, ih[i,a], iw[j,b]]
//
// accumulated in float64.
func ResizeBicubicRef[T Float](planes, h, w, oh, ow int, dst, src []T) {
	checkResize("ResizeBicubicRef", planes, h, w, oh, ow, len(dst), len(src))
	for p := range planes {
		plane := src[p*h*w:][:h*w]
		for i := range oh {
			ih, wh := bicubicTaps(i, h, oh)
			for j := range ow {
				iw, ww := bicubicTaps(j, w, ow)
				var acc float64
				for a := range ih {
					for b := range iw {
						acc += wh[a] * ww[b] * float64(plane[ih[a]*w+iw[b]])
					}
				}
				dst[(p*oh+i)*ow+j] = T(acc)
			}
		}
	}
}

// ResizeBicubic resizes planes (N*C for NCHW data) images of h x w in src to
// oh x ow in dst like MATLAB's imresize(A, [oh ow], 'bicubic') (see the
// comment at the top of this file): two 1-D passes with precomputed tap
// tables, the axis with the smaller scale first, the rows of every plane
// spread over the cores. Any sizes of at least one pixel work, up or down,
// with independent ratios per axis.
func ResizeBicubic[T Float](planes, h, w, oh, ow int, dst, src []T) {
	checkResize("ResizeBicubic", planes, h, w, oh, ow, len(dst), len(src))
	if planes == 0 {
		return
	}
	th := resizeTableFor[T](h, oh)
	tw := resizeTableFor[T](w, ow)
	switch resizeOrder(h, w, oh, ow, th, tw) {
	case resizeCopy:
		copy(dst, src)
	case resizeWOnly:
		resizeAlongW(planes, h, w, ow, dst, src, tw)
	case resizeHOnly:
		resizeAlongH(planes, h, oh, w, dst, src, th)
	case resizeHThenW:
		buf := getBuf[T](planes * oh * w)
		resizeAlongH(planes, h, oh, w, *buf, src, th)
		resizeAlongW(planes, oh, w, ow, dst, *buf, tw)
		putBuf(buf)
	default:
		buf := getBuf[T](planes * h * ow)
		resizeAlongW(planes, h, w, ow, *buf, src, tw)
		resizeAlongH(planes, h, oh, ow, dst, *buf, th)
		putBuf(buf)
	}
}

// The passes ResizeBicubic and ResizeBicubicU8 run, in the order MATLAB
// runs them: an axis whose table is the identity is skipped, and of two
// real passes the one along the axis with the smaller scale goes first
// (height on a tie).
const (
	resizeCopy = iota
	resizeWOnly
	resizeHOnly
	resizeHThenW
	resizeWThenH
)

func resizeOrder[T Float](h, w, oh, ow int, th, tw resizeTable[T]) int {
	switch {
	case th.identity && tw.identity:
		return resizeCopy
	case th.identity:
		return resizeWOnly
	case tw.identity:
		return resizeHOnly
	case float64(oh)/float64(h) <= float64(ow)/float64(w):
		return resizeHThenW
	}
	return resizeWThenH
}

// Each pass below is a parallel driver (resizeAlongH, resizeAlongW,
// resizeAlongWT, resizeAlongWRows) that splits the rows or planes over the
// cores with parallelFor, and a serial body (resizeRowsH, resizeRowsW,
// resizePlaneWT) that does an explicit range of them on the calling
// goroutine. ResizeBicubic uses the drivers, ResizeBicubicU8 the bodies
// directly, so both compute every output row with the same code.

// resizeAlongH resizes the columns of planes images of h x w to oh x w:
// every output row is a weighted sum of whole input rows, accumulated tap
// by tap in order (four taps per pass over the row, with the additions in
// the same order as one tap per pass, so the result is the same bits).
func resizeAlongH[T Float](planes, h, oh, w int, dst, src []T, t resizeTable[T]) {
	parallelFor(planes*oh, max(1, 32768/(w*t.k)), func(lo, hi int) {
		resizeRowsH(lo, hi, h, oh, w, dst, src, t)
	})
}

// resizeRowsH computes output rows [lo, hi) of resizeAlongH, row r being
// row r%oh of plane r/oh.
func resizeRowsH[T Float](lo, hi, h, oh, w int, dst, src []T, t resizeTable[T]) {
	for r := lo; r < hi; r++ {
		p, i := r/oh, r%oh
		plane := src[p*h*w:][:h*w]
		out := dst[r*w:][:w]
		idx, wt := t.idx[i*t.k:][:t.k], t.w[i*t.k:][:t.k]
		if o32, ok := any(out).([]float32); ok {
			// float32: the same arithmetic, all taps at once in vector
			// registers.
			taps(o32, any(plane).([]float32), idx, w, any(wt).([]float32), false)
			continue
		}
		in := plane[idx[0]*w:][:w]
		c := wt[0]
		for j, v := range in {
			out[j] = c * v
		}
		k := 1
		for ; k+4 <= t.k; k += 4 {
			in0, in1 := plane[idx[k]*w:][:len(out)], plane[idx[k+1]*w:][:len(out)]
			in2, in3 := plane[idx[k+2]*w:][:len(out)], plane[idx[k+3]*w:][:len(out)]
			c0, c1, c2, c3 := wt[k], wt[k+1], wt[k+2], wt[k+3]
			for j := range out {
				a := out[j] + c0*in0[j]
				a += c1 * in1[j]
				a += c2 * in2[j]
				out[j] = a + c3*in3[j]
			}
		}
		for ; k < t.k; k++ {
			in := plane[idx[k]*w:][:len(out)]
			c := wt[k]
			for j, v := range in {
				out[j] += c * v
			}
		}
	}
}

// useWT reports whether the pass along the width of images of h rows goes
// through transposed planes (resizeAlongWT) rather than row by row.
func useWT[T Float](h int) bool {
	var zero T
	_, ok := any(zero).(float32)
	return ok && haveAVX2 && h >= 8
}

// resizeAlongW resizes the rows of planes images of h x w to h x ow.
func resizeAlongW[T Float](planes, h, w, ow int, dst, src []T, t resizeTable[T]) {
	if useWT[T](h) {
		resizeAlongWT(planes, h, w, ow, any(dst).([]float32), any(src).([]float32), any(t).(resizeTable[float32]))
		return
	}
	resizeAlongWRows(planes, h, w, ow, dst, src, t)
}

// resizeAlongWT is resizeAlongW for float32 through transposed planes:
// each output column is then a weighted sum of whole (transposed) input
// columns, accumulated from zero tap by tap as resizeAlongWRows does, in
// vector registers. The same bits.
func resizeAlongWT(planes, h, w, ow int, dst, src []float32, t resizeTable[float32]) {
	parallelFor(planes, max(1, 32768/(h*ow*t.k)), func(lo, hi int) {
		buf := getBuf[float32](w*h + ow*h)
		defer putBuf(buf)
		for p := lo; p < hi; p++ {
			resizePlaneWT(h, w, ow, dst[p*h*ow:(p+1)*h*ow], src[p*h*w:(p+1)*h*w], *buf, t)
		}
	})
}

// resizePlaneWT is resizeAlongWT of one plane; scratch holds at least
// w*h + ow*h elements.
func resizePlaneWT(h, w, ow int, dst, src, scratch []float32, t resizeTable[float32]) {
	tin, tout := scratch[:w*h], scratch[w*h:][:ow*h]
	transpose(tin, src, h, w)
	for j := 0; j < ow; j++ {
		out := tout[j*h : (j+1)*h]
		idx, wt := t.idx[j*t.k:][:t.k], t.w[j*t.k:][:t.k]
		taps(out, tin, idx, h, wt, true)
	}
	transpose(dst, tout, ow, h)
}

// resizeAlongWRows is resizeAlongW one output pixel at a time.
func resizeAlongWRows[T Float](planes, h, w, ow int, dst, src []T, t resizeTable[T]) {
	parallelFor(planes*h, max(1, 32768/(ow*t.k)), func(lo, hi int) {
		resizeRowsW(lo, hi, w, ow, dst, src, t)
	})
}

// resizeRowsW computes rows [lo, hi) of resizeAlongWRows.
func resizeRowsW[T Float](lo, hi, w, ow int, dst, src []T, t resizeTable[T]) {
	for r := lo; r < hi; r++ {
		in := src[r*w:][:w]
		out := dst[r*ow:][:ow]
		for j := range out {
			idx, wt := t.idx[j*t.k:][:t.k], t.w[j*t.k:][:t.k]
			var acc T
			for k, c := range wt {
				acc += c * in[idx[k]]
			}
			out[j] = acc
		}
	}
}

// ResizePass is one 1-D pass of ResizeBicubic, for implementations on
// other devices: along the height (AlongH) or the width, from In to Out
// pixels; output o of the axis is sum_t W[o*Taps+t] * input[Idx[o*Taps+t]],
// accumulated tap by tap in order from the first product (as
// resizeRowsH and resizeRowsW do in float32).
type ResizePass struct {
	AlongH  bool
	In, Out int
	Taps    int
	Idx     []int32
	W       []float32
}

// BicubicPasses returns ResizeBicubic's passes for an h x w to oh x ow
// resize, in the order it runs them (none when it copies).
func BicubicPasses(h, w, oh, ow int) []ResizePass {
	th := resizeTableFor[float32](h, oh)
	tw := resizeTableFor[float32](w, ow)
	pass := func(alongH bool, in, out int, t resizeTable[float32]) ResizePass {
		p := ResizePass{AlongH: alongH, In: in, Out: out, Taps: t.k, Idx: make([]int32, len(t.idx)), W: append([]float32(nil), t.w...)}
		for i, v := range t.idx {
			p.Idx[i] = int32(v)
		}
		return p
	}
	ph, pw := pass(true, h, oh, th), pass(false, w, ow, tw)
	switch resizeOrder(h, w, oh, ow, th, tw) {
	case resizeCopy:
		return nil
	case resizeWOnly:
		return []ResizePass{pw}
	case resizeHOnly:
		return []ResizePass{ph}
	case resizeHThenW:
		return []ResizePass{ph, pw}
	}
	return []ResizePass{pw, ph}
}
