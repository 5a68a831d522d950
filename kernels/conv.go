package kernels

import (
	"fmt"
	"sync"
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

// isPointwise reports whether the convolution is a plain matrix product per
// image (1x1 filter, stride 1, no padding), which needs no im2col.
func (s ConvShape) isPointwise() bool {
	return s.KH == 1 && s.KW == 1 && s.Stride == 1 && s.Pad == 0
}

// im2col writes the (C*KH*KW) x (OH*OW) patch matrix of one image.
func im2col[T Float](s ConvShape, col, x []T) {
	oh, ow := s.OutH(), s.OutW()
	for c := 0; c < s.C; c++ {
		plane := x[c*s.H*s.W : (c+1)*s.H*s.W]
		for u := 0; u < s.KH; u++ {
			for v := 0; v < s.KW; v++ {
				row := col[((c*s.KH+u)*s.KW+v)*oh*ow:][:oh*ow]
				for i := 0; i < oh; i++ {
					r := i*s.Stride - s.Pad + u
					dst := row[i*ow : (i+1)*ow]
					if r < 0 || r >= s.H {
						clear(dst)
						continue
					}
					src := plane[r*s.W : (r+1)*s.W]
					if s.Stride == 1 {
						// Columns j with 0 <= j-P+v < W are a contiguous run.
						j0 := max(0, s.Pad-v)
						j1 := min(ow, s.W+s.Pad-v)
						clear(dst[:min(j0, ow)])
						if j1 > j0 {
							copy(dst[j0:j1], src[j0-s.Pad+v:j1-s.Pad+v])
						}
						if j1 < ow {
							clear(dst[max(j1, 0):])
						}
						continue
					}
					for j := range dst {
						q := j*s.Stride - s.Pad + v
						if q < 0 || q >= s.W {
							dst[j] = 0
						} else {
							dst[j] = src[q]
						}
					}
				}
			}
		}
	}
}

// col2im adds the patch matrix col back into one image dx (which the caller
// has zeroed): the adjoint of im2col.
func col2im[T Float](s ConvShape, dx, col []T) {
	oh, ow := s.OutH(), s.OutW()
	for c := 0; c < s.C; c++ {
		plane := dx[c*s.H*s.W : (c+1)*s.H*s.W]
		for u := 0; u < s.KH; u++ {
			for v := 0; v < s.KW; v++ {
				row := col[((c*s.KH+u)*s.KW+v)*oh*ow:][:oh*ow]
				for i := 0; i < oh; i++ {
					r := i*s.Stride - s.Pad + u
					if r < 0 || r >= s.H {
						continue
					}
					dst := plane[r*s.W : (r+1)*s.W]
					src := row[i*ow : (i+1)*ow]
					if s.Stride == 1 {
						j0 := max(0, s.Pad-v)
						j1 := min(ow, s.W+s.Pad-v)
						if j1 > j0 {
							d := dst[j0-s.Pad+v : j1-s.Pad+v]
							for t, g := range src[j0:j1] {
								d[t] += g
							}
						}
						continue
					}
					for j, g := range src {
						q := j*s.Stride - s.Pad + v
						if q >= 0 && q < s.W {
							dst[q] += g
						}
					}
				}
			}
		}
	}
}

// perImage runs fn once per image. With at least as many images as workers
// the images are spread over the workers and fn must stay on its goroutine
// (serial is true); otherwise images run one after another and fn may use
// every core itself.
func perImage(n int, fn func(worker, img int, serial bool)) int {
	if n >= Workers() {
		return parallelTasks(n, func(worker, img int) { fn(worker, img, true) })
	}
	for img := 0; img < n; img++ {
		fn(0, img, false)
	}
	return 1
}

func gemmAuto[T Float](serial, transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if serial {
		gemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	} else {
		Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
}

// Conv2D computes Conv2DRef (bias and activation fused) as im2col + GEMM
// per image, images spread over the cores. bias may be nil.
func Conv2D[T Float](s ConvShape, y, x, w, bias []T, act Act) {
	s.check("Conv2D", len(x), len(w), len(y))
	if bias != nil && len(bias) != s.K {
		panic(fmt.Sprintf("kernels: Conv2D: bias has %d elements, want %d", len(bias), s.K))
	}
	oh, ow := s.OutH(), s.OutW()
	ohw, ckk, chw := oh*ow, s.C*s.KH*s.KW, s.C*s.H*s.W
	cols := make([]*[]T, Workers())
	perImage(s.N, func(worker, n int, serial bool) {
		xn := x[n*chw : (n+1)*chw]
		yn := y[n*s.K*ohw : (n+1)*s.K*ohw]
		b := xn
		if !s.isPointwise() {
			if cols[worker] == nil {
				cols[worker] = getBuf[T](ckk * ohw)
			}
			b = *cols[worker]
			im2col(s, b, xn)
		}
		gemmAuto(serial, false, false, s.K, ohw, ckk, 1, w, ckk, b, ohw, 0, yn, ohw)
		for k := 0; k < s.K; k++ {
			row := yn[k*ohw : (k+1)*ohw]
			if bias != nil {
				bk := bias[k]
				for i := range row {
					row[i] += bk
				}
			}
			ActInPlace(act, row)
		}
	})
	for _, c := range cols {
		if c != nil {
			putBuf(c)
		}
	}
}

// Conv2DBackwardData writes dx, the gradient of the convolution (without
// activation) with respect to its input, given dy: per image
// dcol = W^T * dy followed by col2im. dx is overwritten.
func Conv2DBackwardData[T Float](s ConvShape, dx, w, dy []T) {
	s.check("Conv2DBackwardData", len(dx), len(w), len(dy))
	oh, ow := s.OutH(), s.OutW()
	ohw, ckk, chw := oh*ow, s.C*s.KH*s.KW, s.C*s.H*s.W
	cols := make([]*[]T, Workers())
	perImage(s.N, func(worker, n int, serial bool) {
		dxn := dx[n*chw : (n+1)*chw]
		dyn := dy[n*s.K*ohw : (n+1)*s.K*ohw]
		if s.isPointwise() {
			gemmAuto(serial, true, false, ckk, ohw, s.K, 1, w, ckk, dyn, ohw, 0, dxn, ohw)
			return
		}
		if cols[worker] == nil {
			cols[worker] = getBuf[T](ckk * ohw)
		}
		col := *cols[worker]
		gemmAuto(serial, true, false, ckk, ohw, s.K, 1, w, ckk, dyn, ohw, 0, col, ohw)
		clear(dxn)
		col2im(s, dxn, col)
	})
	for _, c := range cols {
		if c != nil {
			putBuf(c)
		}
	}
}

// Conv2DBackwardFilter writes dw, the gradient of the convolution with
// respect to its filters, given the input x and dy: the sum over images of
// dy * col^T. dw is overwritten.
func Conv2DBackwardFilter[T Float](s ConvShape, dw, x, dy []T) {
	s.check("Conv2DBackwardFilter", len(x), len(dw), len(dy))
	oh, ow := s.OutH(), s.OutW()
	ohw, ckk, chw := oh*ow, s.C*s.KH*s.KW, s.C*s.H*s.W
	colFor := func(buf **[]T, xn []T) []T {
		if s.isPointwise() {
			return xn
		}
		if *buf == nil {
			*buf = getBuf[T](ckk * ohw)
		}
		im2col(s, **buf, xn)
		return **buf
	}
	if s.N < Workers() {
		// Few images: one after another, each GEMM on every core,
		// accumulating straight into dw.
		var col *[]T
		clear(dw)
		for n := 0; n < s.N; n++ {
			b := colFor(&col, x[n*chw:(n+1)*chw])
			Gemm(false, true, s.K, ckk, ohw, 1, dy[n*s.K*ohw:(n+1)*s.K*ohw], ohw, b, ohw, 1, dw, ckk)
		}
		if col != nil {
			putBuf(col)
		}
		return
	}
	// Many images: each worker sums a fixed contiguous range of images into
	// a partial dw, and the partials are added in order, so the result does
	// not depend on scheduling (it does depend on the worker count).
	nw := Workers()
	chunk := (s.N + nw - 1) / nw
	parts := make([]*[]T, nw)
	var wg sync.WaitGroup
	for k := 0; k*chunk < s.N; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var col *[]T
			part := getBuf[T](len(dw))
			clear(*part)
			for n := k * chunk; n < min(s.N, (k+1)*chunk); n++ {
				b := colFor(&col, x[n*chw:(n+1)*chw])
				gemmSerial(false, true, s.K, ckk, ohw, 1, dy[n*s.K*ohw:(n+1)*s.K*ohw], ohw, b, ohw, 1, *part, ckk)
			}
			if col != nil {
				putBuf(col)
			}
			parts[k] = part
		}()
	}
	wg.Wait()
	clear(dw)
	for _, p := range parts {
		if p == nil {
			continue
		}
		for i, v := range *p {
			dw[i] += v
		}
		putBuf(p)
	}
}

// BiasGrad writes db[k] = sum over n and the plane of dy[n,k,:] for dy of
// shape n x k x plane. db is overwritten.
func BiasGrad[T Float](n, k, plane int, db, dy []T) {
	if len(db) != k || len(dy) != n*k*plane {
		panic(fmt.Sprintf("kernels: BiasGrad: %d and %d elements for n=%d k=%d plane=%d", len(db), len(dy), n, k, plane))
	}
	clear(db)
	for i := 0; i < n; i++ {
		for c := 0; c < k; c++ {
			var s T
			for _, v := range dy[(i*k+c)*plane : (i*k+c+1)*plane] {
				s += v
			}
			db[c] += s
		}
	}
}
