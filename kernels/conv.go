package kernels

import (
	"fmt"
	"math"
)

// ConvShape describes a 2-D convolution (PyTorch's conv2d: a
// cross-correlation with zero padding) of an N x C x H x W input with K
// filters of C x KH x KW, stride Stride and padding Pad on every side.
type ConvShape struct {
	N, C, H, W int
	K, KH, KW  int
	Stride     int
	Pad        int
}

// OutH is the output height, (H + 2*Pad - KH)/Stride + 1.
func (s ConvShape) OutH() int { return (s.H+2*s.Pad-s.KH)/s.Stride + 1 }

// OutW is the output width.
func (s ConvShape) OutW() int { return (s.W+2*s.Pad-s.KW)/s.Stride + 1 }

// Sizes returns the element counts of x, w and y.
func (s ConvShape) Sizes() (x, w, y int) {
	return s.N * s.C * s.H * s.W, s.K * s.C * s.KH * s.KW, s.N * s.K * s.OutH() * s.OutW()
}

// FLOPs counts the multiply-adds of the forward pass, twice.
func (s ConvShape) FLOPs() int64 {
	return 2 * int64(s.N) * int64(s.K) * int64(s.OutH()*s.OutW()) * int64(s.C*s.KH*s.KW)
}

// Validate reports a shape that no convolution can have.
func (s ConvShape) Validate() error {
	if s.N < 1 || s.C < 1 || s.H < 1 || s.W < 1 || s.K < 1 || s.KH < 1 || s.KW < 1 || s.Stride < 1 || s.Pad < 0 {
		return fmt.Errorf("kernels: conv shape %+v has a non-positive size", s)
	}
	if s.H+2*s.Pad < s.KH || s.W+2*s.Pad < s.KW {
		return fmt.Errorf("kernels: conv input %dx%d (pad %d) is smaller than the %dx%d filter", s.H, s.W, s.Pad, s.KH, s.KW)
	}
	return nil
}

func (s ConvShape) check(name string, lens ...int) {
	if err := s.Validate(); err != nil {
		panic(err)
	}
	x, w, y := s.Sizes()
	want := []int{x, w, y}
	for i, l := range lens {
		if i < len(want) && l != want[i] {
			panic(fmt.Sprintf("kernels: %s: operand %d has %d elements, shape %+v needs %d", name, i, l, s, want[i]))
		}
	}
}

// Conv2DRef is the reference convolution:
//
//	y[n,k,i,j] = act(b[k] + sum_{c,u,v} w[k,c,u,v] * x[n,c,i*S-P+u, j*S-P+v])
//
// with x taken as zero outside the image. bias may be nil.
func Conv2DRef[T Float](s ConvShape, y, x, w, bias []T, act Act) {
	s.check("Conv2DRef", len(x), len(w), len(y))
	oh, ow := s.OutH(), s.OutW()
	for n := 0; n < s.N; n++ {
		for k := 0; k < s.K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var acc T
					if bias != nil {
						acc = bias[k]
					}
					for c := 0; c < s.C; c++ {
						for u := 0; u < s.KH; u++ {
							for v := 0; v < s.KW; v++ {
								r, q := i*s.Stride-s.Pad+u, j*s.Stride-s.Pad+v
								if r < 0 || r >= s.H || q < 0 || q >= s.W {
									continue
								}
								acc += w[((k*s.C+c)*s.KH+u)*s.KW+v] * x[((n*s.C+c)*s.H+r)*s.W+q]
							}
						}
					}
					y[((n*s.K+k)*oh+i)*ow+j] = acc
				}
			}
		}
	}
	ActInPlace(act, y)
}

// Conv2DBackwardRef is the reference gradient of Conv2DRef without
// activation: given dy it writes dx, dw and db (any may be nil to skip it).
func Conv2DBackwardRef[T Float](s ConvShape, dx, dw, db, x, w, dy []T) {
	s.check("Conv2DBackwardRef", len(x), len(w), len(dy))
	oh, ow := s.OutH(), s.OutW()
	if dx != nil {
		clear(dx)
	}
	if dw != nil {
		clear(dw)
	}
	if db != nil {
		clear(db)
	}
	for n := 0; n < s.N; n++ {
		for k := 0; k < s.K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					g := dy[((n*s.K+k)*oh+i)*ow+j]
					if db != nil {
						db[k] += g
					}
					for c := 0; c < s.C; c++ {
						for u := 0; u < s.KH; u++ {
							for v := 0; v < s.KW; v++ {
								r, q := i*s.Stride-s.Pad+u, j*s.Stride-s.Pad+v
								if r < 0 || r >= s.H || q < 0 || q >= s.W {
									continue
								}
								wi := ((k*s.C+c)*s.KH+u)*s.KW + v
								xi := ((n*s.C+c)*s.H+r)*s.W + q
								if dx != nil {
									dx[xi] += w[wi] * g
								}
								if dw != nil {
									dw[wi] += x[xi] * g
								}
							}
						}
					}
				}
			}
		}
	}
}

// convGeom is the image side of a convolution: input planes C x H x W,
// filters KH x KW, stride S, zero padding PH rows and PW columns on each
// side, output planes OH x OW. Its patch matrix (im2col) has C*KH*KW rows,
// (c, u, v) with v fastest, and OH*OW columns; the convolution kernels
// never write it out but read its panels from a zero-padded copy of the
// image (Hp x Wp planes).
type convGeom struct {
	C, H, W, KH, KW, S, PH, PW, OH, OW int
}

func (s ConvShape) geom() convGeom {
	return convGeom{C: s.C, H: s.H, W: s.W, KH: s.KH, KW: s.KW, S: s.Stride, PH: s.Pad, PW: s.Pad, OH: s.OutH(), OW: s.OutW()}
}

// padded returns the height and width of the zero-padded planes.
func (g *convGeom) padded() (hp, wp int) { return g.H + 2*g.PH, g.W + 2*g.PW }

// checkOffsets panics where a padded image has too many elements for the
// 32-bit offsets of the micro-kernels (2^31: images of 8 GiB).
func checkOffsets(n int) {
	if n > math.MaxInt32 {
		panic(fmt.Sprintf("kernels: convolution image of %d elements is too large", n))
	}
}

// patchOffsets returns, for every row (c, u, v) of the patch matrix, the
// offset of its output pixel (0, 0) in the padded image, and the largest.
func (g *convGeom) patchOffsets() ([]int32, int) {
	hp, wp := g.padded()
	checkOffsets(g.C * hp * wp)
	offs := make([]int32, 0, g.C*g.KH*g.KW)
	for c := 0; c < g.C; c++ {
		for u := 0; u < g.KH; u++ {
			for v := 0; v < g.KW; v++ {
				offs = append(offs, int32((c*hp+u)*wp+v))
			}
		}
	}
	return offs, int(offs[len(offs)-1])
}

// padImage writes the rows [ra, rb) of the zero-padded planes of image x
// into xp (C x Hp x Wp).
func padImage[T Float](g *convGeom, xp, x []T, ra, rb int) {
	hp, wp := g.padded()
	for c := 0; c < g.C; c++ {
		for r := ra; r < rb; r++ {
			d := xp[(c*hp+r)*wp : (c*hp+r+1)*wp]
			sr := r - g.PH
			if sr < 0 || sr >= g.H {
				clear(d)
				continue
			}
			// The side borders are a few elements: a loop, not a call.
			for q := range g.PW {
				d[q] = 0
				d[g.PW+g.W+q] = 0
			}
			copy(d[g.PW:g.PW+g.W], x[(c*g.H+sr)*g.W:(c*g.H+sr+1)*g.W])
		}
	}
}

// rowRun is a run of n output pixels of output row i from column j, at
// column q of a panel.
type rowRun struct{ i, j, n, q int }

// runs splits the output pixels [j0, j0+n) into runs within output rows.
func (g *convGeom) runs(j0, n int, out []rowRun) []rowRun {
	out = out[:0]
	for q := 0; q < n; {
		pix := j0 + q
		i, j := pix/g.OW, pix%g.OW
		l := min(g.OW-j, n-q)
		out = append(out, rowRun{i: i, j: j, n: l, q: q})
		q += l
	}
	return out
}

// packPatches packs rows [p0, p0+kc) and columns [j0, j0+cols) of the
// patch matrix of the padded image xp into one kc x nr panel (columns past
// cols zero): the forward convolution's B operand where it cannot be read
// in place (strides above 1, panels across output rows).
func packPatches[T Float](g *convGeom, xp []T, offs []int32, p0, kc, j0, cols, nr int, dst []T) {
	_, wp := g.padded()
	var buf [33]rowRun
	runs := g.runs(j0, cols, buf[:0])
	for p := 0; p < kc; p++ {
		row := dst[p*nr : p*nr+nr]
		o := int(offs[p0+p])
		for _, rr := range runs {
			src := xp[o+(rr.i*wp+rr.j)*g.S:]
			d := row[rr.q : rr.q+rr.n]
			if g.S == 1 {
				copy(d, src[:rr.n])
				continue
			}
			for t := range d {
				d[t] = src[t*g.S]
			}
		}
		clear(row[cols:])
	}
}

// convTasks spreads the output pixels of n images over the workers in
// tasks of whole column panels, fewer per task when there are few images,
// and calls fn for each task; every output element belongs to one task,
// so the result does not depend on scheduling.
func convTasks[T Float](mk *microKernel[T], n, pixels, kcb int, fn func(w *workspace[T], img, j0, j1 int)) {
	panels := (pixels + mk.nr - 1) / mk.nr
	nw := Workers()
	groups := min(panels, max(1, (4*nw+n-1)/n))
	per := (panels + groups - 1) / groups
	groups = (panels + per - 1) / per
	ws := newWorkspaces[T](min(nw, n*groups))
	defer ws.free()
	parallelTasks(n*groups, func(worker, t int) {
		img, g := t/groups, t%groups
		fn(ws.get(worker, mk, kcb), img, g*per*mk.nr, min(pixels, (g+1)*per*mk.nr))
	})
}

// convForward computes y = act(A * patches(x) + bias) per image for the
// packed filters pa (k x C*KH*KW) and the geometry g: Conv2D, and the data
// gradient as a convolution of dy. With stride 1 a full panel of output
// pixels within one row reads its rows of the patch matrix straight from
// the padded image (offsets into it, no packing); other panels are packed.
func convForward[T Float](mk *microKernel[T], g *convGeom, k, n int, y, x []T, pa *aPacked[T], bias []T, act Act) {
	ohw, chw, ckk := g.OH*g.OW, g.C*g.H*g.W, g.C*g.KH*g.KW
	hp, wp := g.padded()
	offs, maxOff := g.patchOffsets()
	nr := mk.nr
	seq := seqOffsets[nr]
	noPad := g.PH == 0 && g.PW == 0
	// The bias and the activation are applied by the kernels as they store
	// the last depth block (an activation they cannot do, afterwards).
	e, fused := epiFor(bias, act)
	convTasks(mk, n, ohw, pa.kcb, func(w *workspace[T], img, j0, j1 int) {
		xn := x[img*chw : (img+1)*chw]
		yn := y[img*k*ohw : (img+1)*k*ohw]
		xp := xn
		if !noPad {
			xp = w.scratch1(g.C * hp * wp)
			padImage(g, xp, xn, j0/g.OW*g.S, min(hp, (j1-1)/g.OW*g.S+g.KH))
		}
		for j := j0; j < j1; j += nr {
			cols := min(nr, j1-j)
			i, jj := j/g.OW, j%g.OW
			direct := g.S == 1 && cols == nr && jj+nr <= g.OW
			for p0 := 0; p0 < ckk; p0 += pa.kcb {
				kc := min(pa.kcb, ckk-p0)
				var ep epi[T]
				if p0+kc == ckk {
					ep = e
				}
				if direct {
					gemmPanel(mk, k, kc, pa.block(p0), 0, xp[i*wp+jj:], offs[p0:p0+kc], maxOff+nr, nr, yn[j:], ohw, 1, p0 > 0, ep, w.edge)
					continue
				}
				pb := w.pb[:nr*kc]
				packPatches(g, xp, offs, p0, kc, j, cols, nr, pb)
				gemmPanel(mk, k, kc, pa.block(p0), 0, pb, seq, len(pb), cols, yn[j:], ohw, 1, p0 > 0, ep, w.edge)
			}
			if !fused {
				for kk := 0; kk < k; kk++ {
					ActInPlace(act, yn[kk*ohw+j:kk*ohw+j+cols])
				}
			}
		}
	})
}

// Conv2D computes Conv2DRef (bias and activation fused) as a GEMM per
// image of the filters, packed once per call and shared by the workers,
// and the patch matrix, read from a zero-padded copy of the image (no
// im2col buffer); the images' column panels are spread over the cores.
// bias may be nil.
func Conv2D[T Float](s ConvShape, y, x, w, bias []T, act Act) {
	s.check("Conv2D", len(x), len(w), len(y))
	if bias != nil && len(bias) != s.K {
		panic(fmt.Sprintf("kernels: Conv2D: bias has %d elements, want %d", len(bias), s.K))
	}
	mk := kernelFor[T]()
	g := s.geom()
	ckk := s.C * s.KH * s.KW
	pa := packMatrixA(mk, false, w, ckk, s.K, ckk)
	defer pa.free()
	convForward(mk, &g, s.K, s.N, y, x, pa, bias, act)
}

// Conv2DBackwardData writes dx, the gradient of the convolution (without
// activation) with respect to its input, given dy. dx is overwritten.
//
// With stride 1 (and Pad < KH, KW) this is itself a convolution of dy,
// with the filters transposed and flipped and padding KH-1-Pad, KW-1-Pad,
// and runs as Conv2D does. Otherwise each image's column panels of
// W^T * dy are computed into a small tile and added into dx (col2im) at
// once.
func Conv2DBackwardData[T Float](s ConvShape, dx, w, dy []T) {
	s.check("Conv2DBackwardData", len(dx), len(w), len(dy))
	mk := kernelFor[T]()
	oh, ow := s.OutH(), s.OutW()
	ohw, ckk, chw, kkk := oh*ow, s.C*s.KH*s.KW, s.C*s.H*s.W, s.KH*s.KW
	if s.Stride == 1 && s.Pad < s.KH && s.Pad < s.KW {
		// wt[c][k][u][v] = w[k][c][KH-1-u][KW-1-v]: C x K*KH*KW.
		wtBuf := getBuf[T](len(w))
		defer putBuf(wtBuf)
		wt := *wtBuf
		for k := 0; k < s.K; k++ {
			for c := 0; c < s.C; c++ {
				src := w[(k*s.C+c)*kkk : (k*s.C+c+1)*kkk]
				dst := wt[(c*s.K+k)*kkk : (c*s.K+k+1)*kkk]
				for i, v := range src {
					dst[kkk-1-i] = v
				}
			}
		}
		g := convGeom{C: s.K, H: oh, W: ow, KH: s.KH, KW: s.KW, S: 1, PH: s.KH - 1 - s.Pad, PW: s.KW - 1 - s.Pad, OH: s.H, OW: s.W}
		pa := packMatrixA(mk, false, wt, s.K*kkk, s.C, s.K*kkk)
		defer pa.free()
		convForward(mk, &g, s.C, s.N, dx, dy, pa, nil, Act{})
		return
	}
	g := s.geom()
	pa := packMatrixA(mk, true, w, ckk, ckk, s.K)
	defer pa.free()
	nw := min(Workers(), s.N)
	ws := newWorkspaces[T](nw)
	defer ws.free()
	nr := mk.nr
	seq := seqOffsets[nr]
	parallelTasksN(nw, s.N, func(worker, n int) {
		wk := ws.get(worker, mk, pa.kcb)
		tile := wk.scratch1(ckk * nr)
		dxn := dx[n*chw : (n+1)*chw]
		dyn := dy[n*s.K*ohw : (n+1)*s.K*ohw]
		clear(dxn)
		for j := 0; j < ohw; j += nr {
			cols := min(nr, ohw-j)
			for p0 := 0; p0 < s.K; p0 += pa.kcb {
				kc := min(pa.kcb, s.K-p0)
				pb := wk.pb[:nr*kc]
				packB(false, dyn, ohw, p0, kc, j, cols, nr, pb)
				gemmPanel(mk, ckk, kc, pa.block(p0), 0, pb, seq, len(pb), cols, tile, nr, 1, p0 > 0, epi[T]{}, wk.edge)
			}
			col2imPanel(&g, dxn, tile, nr, j, cols)
		}
	})
}

// col2imPanel adds the columns [j0, j0+cols) of the patch matrix, held in
// tile with row stride ld, into the image dx: the adjoint of packing them.
func col2imPanel[T Float](g *convGeom, dx, tile []T, ld, j0, cols int) {
	var buf [33]rowRun
	runs := g.runs(j0, cols, buf[:0])
	hw := g.H * g.W
	q := 0
	for c := 0; c < g.C; c++ {
		plane := dx[c*hw : (c+1)*hw]
		for u := 0; u < g.KH; u++ {
			for v := 0; v < g.KW; v++ {
				row := tile[q*ld : q*ld+cols]
				q++
				for _, rr := range runs {
					r := rr.i*g.S - g.PH + u
					if r < 0 || r >= g.H {
						continue
					}
					dst := plane[r*g.W : (r+1)*g.W]
					src := row[rr.q : rr.q+rr.n]
					col0 := rr.j*g.S - g.PW + v
					for t, val := range src {
						if cc := col0 + t*g.S; cc >= 0 && cc < g.W {
							dst[cc] += val
						}
					}
				}
			}
		}
	}
}

// Conv2DBackwardFilter writes dw, the gradient of the convolution with
// respect to its filters, given the input x and dy: the sum over images of
// dy * patches^T, a GEMM whose depth runs over the pixels. Both operands
// are read pixel-major, from transposed copies of each image (zero-padded,
// Hp x Wp x C) and of its dy (OH*OW x K): dy's rows in place, and the
// patch matrix, with its rows ordered (u, v, c), by offsets into the
// transposed image (in place wherever a panel's columns are channels of
// one (u, v), packed otherwise). dw is overwritten.
//
// The images are summed in at most filterParts contiguous parts fixed by
// the batch size, each into a partial dw, and the partials are added in
// order: the result depends neither on scheduling nor on the worker count.
func Conv2DBackwardFilter[T Float](s ConvShape, dw, x, dy []T) {
	s.check("Conv2DBackwardFilter", len(x), len(dw), len(dy))
	mk := kernelFor[T]()
	fg := newFilterGrad(mk, s)
	nw := Workers()
	q := fg.q
	// dwt is dw with its columns in (u, v, c) order.
	dwtBuf := getBuf[T](len(dw))
	defer putBuf(dwtBuf)
	dwt := *dwtBuf
	// The images are cut into at most filterParts parts, fixed by N alone;
	// each part's gradient is one GEMM over its pixels, and the parts are
	// added in order. When there are fewer parts than workers, the column
	// panels of each part are split over tasks too, which does not change
	// how any element is summed. So the result depends neither on
	// scheduling nor on the worker count (a replay on another --threads is
	// bit-identical).
	chunk := (s.N + filterParts - 1) / filterParts
	parts := (s.N + chunk - 1) / chunk
	qPanels := (q + mk.nr - 1) / mk.nr
	slices := 1
	if parts < nw {
		slices = min(qPanels, (nw+parts-1)/parts)
	}
	per := (qPanels + slices - 1) / slices
	slices = (qPanels + per - 1) / per
	tasks := parts * slices
	partBufs := make([]*[]T, parts)
	for t := 1; t < parts; t++ {
		partBufs[t] = getBuf[T](len(dw))
	}
	ws := newWorkspaces[T](min(nw, tasks))
	defer ws.free()
	parallelTasksN(nw, tasks, func(worker, t int) {
		p, sl := t/slices, t%slices
		out := dwt
		if p > 0 {
			out = *partBufs[p]
		}
		fg.run(ws.get(worker, mk, fg.kcb), out, sl*per*mk.nr, min(q, (sl+1)*per*mk.nr), x, dy, p*chunk, min(s.N, (p+1)*chunk))
	})
	for _, p := range partBufs[1:] {
		for i, v := range *p {
			dwt[i] += v
		}
		putBuf(p)
	}
	// dw[k][c][u][v] = dwt[k][(u*KW+v)*C+c].
	kk := s.KH * s.KW
	for k := 0; k < s.K; k++ {
		transposeRows(dw[k*q:(k+1)*q], kk, dwt[k*q:(k+1)*q], s.C, kk, s.C)
	}
}

// filterParts bounds the partial filter gradients of a batch: enough parts
// to keep any likely core count busy, few enough that adding them costs
// nothing next to the GEMM.
const filterParts = 8

// filterGrad is the plan of a filter gradient: images are transposed in
// groups, whose pixels make one stretch of GEMM depth.
type filterGrad[T Float] struct {
	mk       *microKernel[T]
	g        convGeom
	k, q     int
	imgT     int     // elements of one transposed padded image
	group    int     // images per group
	kcb      int     // depth block
	pixOffs  []int32 // per depth step of a group: offset of its pixel in the transposed images
	maxOff   int
	channels bool // every panel of nr columns lies within one (u, v)
}

func newFilterGrad[T Float](mk *microKernel[T], s ConvShape) *filterGrad[T] {
	g := s.geom()
	hp, wp := g.padded()
	ohw := g.OH * g.OW
	group := max(1, min(s.N, (256+ohw-1)/ohw))
	checkOffsets(group * hp * wp * g.C)
	fg := &filterGrad[T]{mk: mk, g: g, k: s.K, q: s.C * s.KH * s.KW, imgT: hp * wp * g.C, group: group,
		kcb: blockDepth(group * ohw), channels: g.C%mk.nr == 0}
	fg.pixOffs = make([]int32, 0, group*ohw)
	for b := 0; b < group; b++ {
		for i := 0; i < g.OH; i++ {
			for j := 0; j < g.OW; j++ {
				fg.pixOffs = append(fg.pixOffs, int32(b*fg.imgT+(i*g.S*wp+j*g.S)*g.C))
			}
		}
	}
	fg.maxOff = int(fg.pixOffs[len(fg.pixOffs)-1])
	return fg
}

// run writes columns [q0, q1) of out (k x q, columns in (u, v, c) order)
// as the sum over the images [n0, n1) of dy * patches^T.
func (fg *filterGrad[T]) run(w *workspace[T], out []T, q0, q1 int, x, dy []T, n0, n1 int) {
	mk, g := fg.mk, &fg.g
	nr := mk.nr
	seq := seqOffsets[nr]
	ohw, chw := g.OH*g.OW, g.C*g.H*g.W
	_, wp := g.padded()
	xt := w.scratch1(fg.group * fg.imgT)
	dyt := w.scratch2(fg.group * ohw * fg.k)
	first := true
	for n := n0; n < n1; n += fg.group {
		gn := min(fg.group, n1-n)
		for b := 0; b < gn; b++ {
			transposePad(g, xt[b*fg.imgT:(b+1)*fg.imgT], x[(n+b)*chw:(n+b+1)*chw])
			transpose(dyt[b*ohw*fg.k:(b+1)*ohw*fg.k], dy[(n+b)*fg.k*ohw:(n+b+1)*fg.k*ohw], fg.k, ohw)
		}
		depth := gn * ohw
		for d0 := 0; d0 < depth; d0 += fg.kcb {
			kc := min(fg.kcb, depth-d0)
			a := dyt[d0*fg.k:]
			offs := fg.pixOffs[d0 : d0+kc]
			for q := q0; q < q1; q += nr {
				cols := min(nr, q1-q)
				uv, c0 := q/g.C, q%g.C
				base := (uv/g.KW*wp+uv%g.KW)*g.C + c0
				if fg.channels && cols == nr {
					gemmPanel(mk, fg.k, kc, a, fg.k, xt[base:], offs, fg.maxOff+nr, nr, out[q:], fg.q, 1, !first, epi[T]{}, w.edge)
					continue
				}
				pb := w.pb[:nr*kc]
				fg.pack(xt, offs, q, cols, pb)
				gemmPanel(mk, fg.k, kc, a, fg.k, pb, seq, len(pb), cols, out[q:], fg.q, 1, !first, epi[T]{}, w.edge)
			}
			first = false
		}
	}
}

// pack packs the columns [q, q+cols) (in (u, v, c) order) of the
// transposed patch matrix for the depth steps offs into a panel.
func (fg *filterGrad[T]) pack(xt []T, offs []int32, q, cols int, dst []T) {
	g := &fg.g
	nr := fg.mk.nr
	_, wp := g.padded()
	for p, o := range offs {
		row := dst[p*nr : p*nr+nr]
		for t := 0; t < cols; {
			uv, c := (q+t)/g.C, (q+t)%g.C
			l := min(g.C-c, cols-t)
			src := int(o) + (uv/g.KW*wp+uv%g.KW)*g.C + c
			copy(row[t:t+l], xt[src:src+l])
			t += l
		}
		clear(row[cols:])
	}
}

// transposePad writes the image x (C x H x W) zero-padded and transposed
// to pixel-major order: xt[(r*Wp+col)*C+c].
func transposePad[T Float](g *convGeom, xt, x []T) {
	hp, wp := g.padded()
	C := g.C
	for r := 0; r < hp; r++ {
		row := xt[r*wp*C : (r+1)*wp*C]
		sr := r - g.PH
		if sr < 0 || sr >= g.H {
			clear(row)
			continue
		}
		clear(row[:g.PW*C])
		clear(row[(g.PW+g.W)*C:])
		transposeRows(row[g.PW*C:(g.PW+g.W)*C], C, x[sr*g.W:], g.H*g.W, C, g.W)
	}
}

// transpose writes the transpose of the rows x cols matrix a into t
// (cols x rows).
func transpose[T Float](t, a []T, rows, cols int) {
	const blk = 64 // columns per pass: the block of t written stays in L1
	for j0 := 0; j0 < cols; j0 += blk {
		j1 := min(cols, j0+blk)
		transposeRows(t[j0*rows:], rows, a[j0:], cols, rows, j1-j0)
	}
}

// transposeBlocks transposes rows [i, rows) of transposeRows, b at a time
// while b remain, in b x b register blocks (blk) for the columns that make
// whole blocks and by transposeRows for the others; it returns the first
// row it left.
func transposeBlocks[T Float](dst []T, ds int, src []T, ss, i, rows, n, b int, blk func(dst []T, ds int, src []T, ss int)) int {
	if rows-i < b || n < b {
		return i
	}
	nb := n / b * b
	i0 := i
	for ; i+b <= rows; i += b {
		for j := 0; j < nb; j += b {
			blk(dst[j*ds+i:], ds, src[i*ss+j:], ss)
		}
	}
	if nb < n {
		transposeRows(dst[nb*ds+i0:], ds, src[i0*ss+nb:], ss, i-i0, n-nb)
	}
	return i
}

// transposeRows writes dst[j*ds+i] = src[i*ss+j] for i < rows, j < n,
// eight source rows at a time so that each destination row gets eight
// contiguous values per visit.
func transposeRows[T Float](dst []T, ds int, src []T, ss, rows, n int) {
	i := 0
	if canTranspose16[T]() {
		i = transposeBlocks(dst, ds, src, ss, i, rows, n, 16, transpose16[T])
	}
	if canTranspose8[T]() {
		i = transposeBlocks(dst, ds, src, ss, i, rows, n, 8, transpose8[T])
	}
	for ; i+8 <= rows; i += 8 {
		s0 := src[i*ss : i*ss+n]
		s1 := src[(i+1)*ss:][:len(s0)]
		s2 := src[(i+2)*ss:][:len(s0)]
		s3 := src[(i+3)*ss:][:len(s0)]
		s4 := src[(i+4)*ss:][:len(s0)]
		s5 := src[(i+5)*ss:][:len(s0)]
		s6 := src[(i+6)*ss:][:len(s0)]
		s7 := src[(i+7)*ss:][:len(s0)]
		for j, v := range s0 {
			d := dst[j*ds+i : j*ds+i+8 : j*ds+i+8]
			d[0], d[1], d[2], d[3] = v, s1[j], s2[j], s3[j]
			d[4], d[5], d[6], d[7] = s4[j], s5[j], s6[j], s7[j]
		}
	}
	for ; i < rows; i++ {
		out := dst[i:]
		for j, v := range src[i*ss : i*ss+n] {
			out[j*ds] = v
		}
	}
}

// BiasGrad writes db[k] = sum over n and the plane of dy[n,k,:] for dy of
// shape n x k x plane, the channels spread over the cores. db is
// overwritten.
func BiasGrad[T Float](n, k, plane int, db, dy []T) {
	if len(db) != k || len(dy) != n*k*plane {
		panic(fmt.Sprintf("kernels: BiasGrad: %d and %d elements for n=%d k=%d plane=%d", len(db), len(dy), n, k, plane))
	}
	parallelFor(k, max(1, 4096/max(1, n*plane)), func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var s T
			for i := 0; i < n; i++ {
				s += sumRun(dy[(i*k+c)*plane : (i*k+c+1)*plane])
			}
			db[c] = s
		}
	})
}

// sumRun returns the sum of v in eight interleaved partial sums.
func sumRun[T Float](v []T) T {
	var s [8]T
	i := 0
	for ; i+8 <= len(v); i += 8 {
		w := v[i : i+8 : i+8]
		s[0] += w[0]
		s[1] += w[1]
		s[2] += w[2]
		s[3] += w[3]
		s[4] += w[4]
		s[5] += w[5]
		s[6] += w[6]
		s[7] += w[7]
	}
	for ; i < len(v); i++ {
		s[0] += v[i]
	}
	return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
}
