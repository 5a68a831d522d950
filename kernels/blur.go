package kernels

import "fmt"

// BlurShape describes PDM's blur + downsample (pdm-spec §2.2) of an
// N x C x H x W high-resolution batch with KS x KS kernels (KS odd) and
// scale factor Scale. With Spatial false there is one kernel per sample,
// shared by every channel and pixel, stored N x KS*KS. With Spatial true
// there is one kernel per sample and output pixel, stored
// N x KS*KS x OutH x OutW (the layout of the kernel network's output).
type BlurShape struct {
	N, C, H, W int
	KS         int
	Scale      int
	Spatial    bool
}

// OutH is the output height, floor((H-1)/Scale)+1 (H/Scale when Scale
// divides H).
func (s BlurShape) OutH() int { return (s.H-1)/s.Scale + 1 }

// OutW is the output width.
func (s BlurShape) OutW() int { return (s.W-1)/s.Scale + 1 }

// Sizes returns the element counts of x, the kernels and y.
func (s BlurShape) Sizes() (x, k, y int) {
	x = s.N * s.C * s.H * s.W
	y = s.N * s.C * s.OutH() * s.OutW()
	k = s.N * s.KS * s.KS
	if s.Spatial {
		k *= s.OutH() * s.OutW()
	}
	return
}

// Validate reports shapes the operation is not defined for. Reflection
// padding by KS/2 needs H and W larger than KS/2.
func (s BlurShape) Validate() error {
	switch {
	case s.N < 1 || s.C < 1 || s.H < 1 || s.W < 1:
		return fmt.Errorf("kernels: blur input %dx%dx%dx%d has a non-positive size", s.N, s.C, s.H, s.W)
	case s.KS < 1 || s.KS%2 == 0:
		return fmt.Errorf("kernels: blur kernel size %d is not a positive odd number", s.KS)
	case s.Scale < 1:
		return fmt.Errorf("kernels: blur scale %d is not positive", s.Scale)
	case s.H <= s.KS/2 || s.W <= s.KS/2:
		return fmt.Errorf("kernels: a %dx%d image is too small for reflection padding by %d (kernel %d): need more than %d pixels per side", s.H, s.W, s.KS/2, s.KS, s.KS/2)
	}
	return nil
}

func (s BlurShape) check(name string, lx, lk, ly int) {
	if err := s.Validate(); err != nil {
		panic(err)
	}
	x, k, y := s.Sizes()
	if lx != x || lk != k || ly != y {
		panic(fmt.Sprintf("kernels: %s: operands have %d, %d, %d elements; shape %+v needs %d, %d, %d", name, lx, lk, ly, s, x, k, y))
	}
}

// reflect maps an index of the padded axis back into [0, n) the way numpy's
// "reflect" (PyTorch's ReflectionPad2d) does: the edge pixel is not repeated.
func reflect(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}

// kernelAt returns the index in k of tap (u, v) for output pixel (i, j) of
// sample n.
func (s BlurShape) kernelAt(n, u, v, i, j int) int {
	t := u*s.KS + v
	if !s.Spatial {
		return n*s.KS*s.KS + t
	}
	oh, ow := s.OutH(), s.OutW()
	return ((n*s.KS*s.KS+t)*oh+i)*ow + j
}

// BlurDownRef is the reference blur + downsample:
//
//	y[n,c,i,j] = sum_{u,v} k[n,u,v(,i,j)] * x[n,c, refl(S*i+u-P), refl(S*j+v-P)]
//
// with P = KS/2 and refl the reflection of pdm-spec §2.2: a correlation (no
// kernel flip) whose output pixel (i,j) sits on HR pixel (S*i, S*j).
func BlurDownRef[T Float](s BlurShape, y, x, k []T) {
	s.check("BlurDownRef", len(x), len(k), len(y))
	oh, ow, p := s.OutH(), s.OutW(), s.KS/2
	for n := 0; n < s.N; n++ {
		for c := 0; c < s.C; c++ {
			plane := x[(n*s.C+c)*s.H*s.W:][:s.H*s.W]
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var acc T
					for u := 0; u < s.KS; u++ {
						r := reflect(s.Scale*i+u-p, s.H)
						for v := 0; v < s.KS; v++ {
							q := reflect(s.Scale*j+v-p, s.W)
							// The conversion rounds the product on its own (no
							// fused multiply-add), as BlurDown's float32 path does.
							acc += T(k[s.kernelAt(n, u, v, i, j)] * plane[r*s.W+q])
						}
					}
					y[((n*s.C+c)*oh+i)*ow+j] = acc
				}
			}
		}
	}
}

// BlurDownBackwardRef is the reference gradient of BlurDownRef: given dy it
// writes dk and dx (either may be nil to skip it); both are overwritten.
func BlurDownBackwardRef[T Float](s BlurShape, dx, dk, x, k, dy []T) {
	s.check("BlurDownBackwardRef", len(x), len(k), len(dy))
	oh, ow, p := s.OutH(), s.OutW(), s.KS/2
	if dx != nil {
		clear(dx)
	}
	if dk != nil {
		clear(dk)
	}
	for n := 0; n < s.N; n++ {
		for c := 0; c < s.C; c++ {
			base := (n*s.C + c) * s.H * s.W
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					g := dy[((n*s.C+c)*oh+i)*ow+j]
					for u := 0; u < s.KS; u++ {
						r := reflect(s.Scale*i+u-p, s.H)
						for v := 0; v < s.KS; v++ {
							q := reflect(s.Scale*j+v-p, s.W)
							ki := s.kernelAt(n, u, v, i, j)
							if dk != nil {
								dk[ki] += g * x[base+r*s.W+q]
							}
							if dx != nil {
								dx[base+r*s.W+q] += g * k[ki]
							}
						}
					}
				}
			}
		}
	}
}

// padReflect writes the plane x (h x w) reflection-padded by p on every
// side into dst ((h+2p) x (w+2p)).
func padReflect[T Float](dst, x []T, h, w, p int) {
	wp := w + 2*p
	for r := 0; r < h+2*p; r++ {
		src := x[reflect(r-p, h)*w:][:w]
		row := dst[r*wp : (r+1)*wp]
		copy(row[p:p+w], src)
		for q := 0; q < p; q++ {
			row[q] = src[reflect(q-p, w)]
			row[p+w+q] = src[reflect(w+q, w)]
		}
	}
}

// unpadReflectAdd adds the gradient of a padded plane back onto its source
// plane: the adjoint of padReflect.
func unpadReflectAdd[T Float](dx, dp []T, h, w, p int) {
	wp := w + 2*p
	for r := 0; r < h+2*p; r++ {
		dst := dx[reflect(r-p, h)*w:][:w]
		row := dp[r*wp : (r+1)*wp]
		for q, g := range row {
			dst[reflect(q-p, w)] += g
		}
	}
}

// BlurDown computes BlurDownRef over reflection-padded copies of each plane,
// with the planes spread over the cores.
func BlurDown[T Float](s BlurShape, y, x, k []T) {
	s.check("BlurDown", len(x), len(k), len(y))
	oh, ow, p := s.OutH(), s.OutW(), s.KS/2
	hp, wp := s.H+2*p, s.W+2*p
	ks2 := s.KS * s.KS
	bufs := make([]*[]T, Workers())
	// float32 with one kernel per sample: each output row is one taps call
	// over the plane, reflection-padded and split into its Scale column
	// phases in one pass; the other cases go through a padded copy.
	_, useTaps := any(y).([]float32)
	useTaps = useTaps && !s.Spatial
	bufLen := hp*wp + ow
	var idx, cols []int
	if useTaps {
		bufLen = hp * s.Scale * blurPhaseW(s)
		idx = blurTapOffsets(s)
		cols = make([]int, wp)
		for c := range cols {
			cols[c] = reflect(c-p, s.W)
		}
	}
	parallelTasks(s.N*s.C, func(worker, nc int) {
		if bufs[worker] == nil {
			bufs[worker] = getBuf[T](bufLen)
		}
		buf := *bufs[worker]
		n := nc / s.C
		plane := x[nc*s.H*s.W:][:s.H*s.W]
		out := y[nc*oh*ow:][:oh*ow]
		if useTaps {
			kn := k[n*ks2:][:ks2]
			blurRowsTaps(s, any(out).([]float32), any(plane).([]float32), any(kn).([]float32), any(buf).([]float32), idx, cols)
			return
		}
		pad, acc := buf[:hp*wp], buf[hp*wp:]
		padReflect(pad, plane, s.H, s.W, p)
		if !s.Spatial {
			kn := k[n*ks2:][:ks2]
			for i := 0; i < oh; i++ {
				clear(acc)
				for u := 0; u < s.KS; u++ {
					row := pad[(s.Scale*i+u)*wp:][:wp]
					kr := kn[u*s.KS:][:s.KS]
					for v, kv := range kr {
						accumulateStrided(acc, row[v:], s.Scale, kv)
					}
				}
				copy(out[i*ow:(i+1)*ow], acc)
			}
			return
		}
		kn := k[n*ks2*oh*ow:][:ks2*oh*ow]
		for i := 0; i < oh; i++ {
			o := out[i*ow : (i+1)*ow]
			clear(o)
			for u := 0; u < s.KS; u++ {
				row := pad[(s.Scale*i+u)*wp:][:wp]
				for v := 0; v < s.KS; v++ {
					kp := kn[((u*s.KS+v)*oh+i)*ow:][:ow]
					for j := range o {
						o[j] += kp[j] * row[s.Scale*j+v]
					}
				}
			}
		}
	})
	for _, b := range bufs {
		if b != nil {
			putBuf(b)
		}
	}
}

// blurPhaseW is the length of one column phase of a padded row: the
// padded columns c with c%Scale == phase, at c/Scale.
func blurPhaseW(s BlurShape) int {
	wp := s.W + 2*(s.KS/2)
	return (wp + s.Scale - 1) / s.Scale
}

// blurTapOffsets returns, for every kernel tap (u, v) in row-major order,
// the offset in a phase-split padded plane (row r, phase f at
// (r*Scale+f)*blurPhaseW) of the value output pixel (0, 0) reads: padded
// row u, column v. Output (i, j) reads that offset plus i*Scale rows plus j:
// column Scale*j+v is in phase v%Scale at v/Scale+j.
func blurTapOffsets(s BlurShape) []int {
	pw := blurPhaseW(s)
	idx := make([]int, 0, s.KS*s.KS)
	for u := 0; u < s.KS; u++ {
		for v := 0; v < s.KS; v++ {
			idx = append(idx, (u*s.Scale+v%s.Scale)*pw+v/s.Scale)
		}
	}
	return idx
}

// blurRowsTaps is BlurDown's loop over one plane's output rows for float32
// and one kernel per sample. The plane is reflection-padded and split into
// column phases in split (row r, phase f at (r*Scale+f)*blurPhaseW; cols
// maps a padded column to the plane's), and each output row sums its KS*KS
// taps in the order BlurDownRef does (from +0, each product and sum rounded
// on its own), in vector registers.
func blurRowsTaps(s BlurShape, out, plane, kn, split []float32, idx, cols []int) {
	p := s.KS / 2
	hp, wp, pw := s.H+2*p, s.W+2*p, blurPhaseW(s)
	oh, ow := s.OutH(), s.OutW()
	split = split[:hp*s.Scale*pw]
	for r := 0; r < hp; r++ {
		row := plane[reflect(r-p, s.H)*s.W:][:s.W]
		for f := 0; f < s.Scale; f++ {
			ph := split[(r*s.Scale+f)*pw:][:pw]
			m := 0
			for c := f; c < wp; c += s.Scale {
				ph[m] = row[cols[c]]
				m++
			}
			clear(ph[m:]) // never read: the last output reads column wp-1
		}
	}
	rowStep := s.Scale * s.Scale * pw
	for i := 0; i < oh; i++ {
		taps(out[i*ow:][:ow], split[i*rowStep:], idx, 1, kn, true)
	}
}

// accumulateStrided adds kv * src[stride*j] to acc[j] for every j.
func accumulateStrided[T Float](acc, src []T, stride int, kv T) {
	if len(acc) == 0 {
		return
	}
	_ = src[stride*(len(acc)-1)]
	for j := range acc {
		acc[j] += kv * src[stride*j]
	}
}

// BlurDownBackward computes BlurDownBackwardRef: dk and dx (either may be
// nil) from dy, both overwritten.
func BlurDownBackward[T Float](s BlurShape, dx, dk, x, k, dy []T) {
	s.check("BlurDownBackward", len(x), len(k), len(dy))
	oh, ow, p := s.OutH(), s.OutW(), s.KS/2
	hp, wp := s.H+2*p, s.W+2*p
	ks2 := s.KS * s.KS
	kPer := ks2
	if s.Spatial {
		kPer = ks2 * oh * ow
	}
	// Per (sample, channel) task: the kernel gradient of one sample sums over
	// its channels, so each task writes a private partial that is reduced
	// below in a fixed order (the result does not depend on scheduling).
	var parts []T
	if dk != nil {
		parts = make([]T, s.N*s.C*kPer)
	}
	bufs := make([]*[]T, Workers())
	parallelTasks(s.N*s.C, func(worker, nc int) {
		if bufs[worker] == nil {
			bufs[worker] = getBuf[T](2 * hp * wp)
		}
		buf := *bufs[worker]
		pad, dpad := buf[:hp*wp], buf[hp*wp:]
		n := nc / s.C
		padReflect(pad, x[nc*s.H*s.W:][:s.H*s.W], s.H, s.W, p)
		g := dy[nc*oh*ow:][:oh*ow]
		kn := k[n*kPer:][:kPer]
		if dk != nil {
			part := parts[nc*kPer:][:kPer]
			for i := 0; i < oh; i++ {
				gr := g[i*ow : (i+1)*ow]
				for u := 0; u < s.KS; u++ {
					row := pad[(s.Scale*i+u)*wp:][:wp]
					for v := 0; v < s.KS; v++ {
						if s.Spatial {
							dp := part[((u*s.KS+v)*oh+i)*ow:][:ow]
							for j, gv := range gr {
								dp[j] += gv * row[s.Scale*j+v]
							}
							continue
						}
						var acc T
						for j, gv := range gr {
							acc += gv * row[s.Scale*j+v]
						}
						part[u*s.KS+v] += acc
					}
				}
			}
		}
		if dx != nil {
			clear(dpad)
			for i := 0; i < oh; i++ {
				gr := g[i*ow : (i+1)*ow]
				for u := 0; u < s.KS; u++ {
					row := dpad[(s.Scale*i+u)*wp:][:wp]
					for v := 0; v < s.KS; v++ {
						if s.Spatial {
							kp := kn[((u*s.KS+v)*oh+i)*ow:][:ow]
							for j, gv := range gr {
								row[s.Scale*j+v] += gv * kp[j]
							}
							continue
						}
						kv := kn[u*s.KS+v]
						for j, gv := range gr {
							row[s.Scale*j+v] += gv * kv
						}
					}
				}
			}
			d := dx[nc*s.H*s.W:][:s.H*s.W]
			clear(d)
			unpadReflectAdd(d, dpad, s.H, s.W, p)
		}
	})
	for _, b := range bufs {
		if b != nil {
			putBuf(b)
		}
	}
	if dk != nil {
		clear(dk)
		for nc := 0; nc < s.N*s.C; nc++ {
			n := nc / s.C
			d := dk[n*kPer:][:kPer]
			for i, v := range parts[nc*kPer:][:kPer] {
				d[i] += v
			}
		}
	}
}
