//go:build pdmcuda || pdmcudaemu

package gpu

/*
#include "kernels.h"
*/
import "C"

import (
	"errors"
	"fmt"

	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
)

// fixedSampler runs a degradation without weights on a GPU: the gaussian
// degradation's blur + downsample with per-sample kernels, or the bicubic
// degradation's resize.
type fixedSampler struct {
	d          *Device
	n, h, w    int
	oh, ow     int
	ks, scale  int                  // blur
	passes     []kernels.ResizePass // bicubic
	idx, wt    []dptr               // bicubic: each pass's taps
	mem        devMem
	in, out    dptr // staged crops (and kernels); the LR images
	inK        int  // byte offset of the kernels in in
	hr, mid    dptr // the crops as floats; between two resize passes
	pinIn      []byte
	pinOut     []byte
	blur, bicu bool
}

func (d *Device) NewBlurSampler(n, h, w, ks, scale int) (model.BatchSampler, error) {
	bs := kernels.BlurShape{N: n, C: 3, H: h, W: w, KS: ks, Scale: scale}
	if err := bs.Validate(); err != nil {
		return nil, fmt.Errorf("gpu: blur sampler: %w", err)
	}
	s := &fixedSampler{d: d, n: n, h: h, w: w, oh: bs.OutH(), ow: bs.OutW(), ks: ks, scale: scale, blur: true, mem: devMem{e: d.e}}
	s.inK = align(n * 3 * h * w)
	if err := s.alloc(s.inK+align(4*n*ks*ks), 0); err != nil {
		s.mem.free()
		return nil, err
	}
	return s, nil
}

func (d *Device) NewBicubicSampler(n, h, w, scale int) (model.BatchSampler, error) {
	if n < 1 || h < 1 || w < 1 || scale < 1 {
		return nil, fmt.Errorf("gpu: bicubic sampler: batch %d of %dx%d at x%d", n, h, w, scale)
	}
	oh, ow := (h-1)/scale+1, (w-1)/scale+1
	s := &fixedSampler{d: d, n: n, h: h, w: w, oh: oh, ow: ow, scale: scale, bicu: true, mem: devMem{e: d.e}}
	s.passes = kernels.BicubicPasses(h, w, oh, ow)
	mid := 0
	if len(s.passes) == 2 {
		p := s.passes[0]
		mid = 4 * n * 3 * h * w / p.In * p.Out
	}
	if err := s.alloc(align(n*3*h*w), mid); err != nil {
		s.mem.free()
		return nil, err
	}
	for _, p := range s.passes {
		var idx, wt dptr
		if err := s.mem.allocs([]int{4 * len(p.Idx), 4 * len(p.W)}, &idx, &wt); err != nil {
			s.mem.free()
			return nil, err
		}
		if err := errors.Join(d.e.h2d(idx, i32Bytes(p.Idx)), d.e.h2d(wt, f32Bytes(p.W))); err != nil {
			s.mem.free()
			return nil, err
		}
		s.idx, s.wt = append(s.idx, idx), append(s.wt, wt)
	}
	if err := d.e.sync(); err != nil {
		s.mem.free()
		return nil, err
	}
	return s, nil
}

func (s *fixedSampler) alloc(inBytes, midBytes int) error {
	lrBytes := 4 * s.n * 3 * s.oh * s.ow
	var err error
	if s.pinIn, err = s.mem.pinned(inBytes); err != nil {
		return err
	}
	if s.pinOut, err = s.mem.pinned(lrBytes); err != nil {
		return err
	}
	if err := s.mem.allocs([]int{inBytes, lrBytes, 4 * s.n * 3 * s.h * s.w}, &s.in, &s.out, &s.hr); err != nil {
		return err
	}
	if midBytes > 0 {
		if s.mid, err = s.mem.alloc(midBytes); err != nil {
			return err
		}
	}
	return nil
}

func (s *fixedSampler) Reload(*model.PDM) error {
	return errors.New("gpu: a blur or bicubic sampler has no weights")
}

func (s *fixedSampler) Close() { s.mem.free() }

func (s *fixedSampler) Run(b *model.SampleBatch) error {
	var err error
	if s.blur {
		err = model.CheckBlurBatch(b, kernels.BlurShape{N: s.n, C: 3, H: s.h, W: s.w, KS: s.ks, Scale: s.scale})
	} else {
		err = model.CheckBicubicBatch(b, s.n, s.h, s.w, s.oh, s.ow)
	}
	if err != nil {
		return err
	}
	e, n := s.d.e, s.n
	hrN, kk := 3*s.h*s.w, s.ks*s.ks
	kernels.ParallelFor(n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(s.pinIn[i*hrN:(i+1)*hrN], b.X[i])
			if s.blur {
				copy(floatsAt(s.pinIn, s.inK+4*i*kk, kk), b.Kernels[i])
			}
		}
	})
	if err := e.h2d(s.in, s.pinIn); err != nil {
		return err
	}
	total := int64(n * hrN)
	if err := run(e, kU8ToF32, total, &C.U8ToF32Args{out: C.dptr(s.hr), in: C.dptr(s.in), total: C.i64(total)}); err != nil {
		return err
	}
	lrTotal := int64(n * 3 * s.oh * s.ow)
	result := s.out
	switch {
	case s.blur:
		err = run(e, kBlurDown, lrTotal, &C.BlurArgs{y: C.dptr(s.out), x: C.dptr(s.hr), k: C.dptr(s.in + dptr(s.inK)),
			n: C.int(n), c: 3, h: C.int(s.h), w: C.int(s.w), ks: C.int(s.ks), s: C.int(s.scale),
			oh: C.int(s.oh), ow: C.int(s.ow), total: C.i64(lrTotal)})
	case len(s.passes) == 0: // the same size: the crops as floats
		result = s.hr
	default:
		src, h, w := s.hr, s.h, s.w
		for i, p := range s.passes {
			dst := s.out
			if i < len(s.passes)-1 {
				dst = s.mid
			}
			oh, ow, axis := h, w, 1
			if p.AlongH {
				oh, axis = p.Out, 0
			} else {
				ow = p.Out
			}
			t := int64(n * 3 * oh * ow)
			if err = run(e, kResizeAxis, t, &C.ResizeArgs{dst: C.dptr(dst), src: C.dptr(src), idx: C.dptr(s.idx[i]), wt: C.dptr(s.wt[i]),
				planes: C.int(n * 3), h: C.int(h), w: C.int(w), oh: C.int(oh), ow: C.int(ow), taps: C.int(p.Taps), axis: C.int(axis), total: C.i64(t)}); err != nil {
				break
			}
			src, h, w = dst, oh, ow
		}
	}
	if err != nil {
		return err
	}
	if err := e.d2h(s.pinOut, result); err != nil {
		return err
	}
	if err := e.sync(); err != nil {
		return err
	}
	lrN := 3 * s.oh * s.ow
	y := floatsAt(s.pinOut, 0, n*lrN)
	kernels.ParallelFor(n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(b.Y[i], y[i*lrN:(i+1)*lrN])
		}
	})
	return nil
}
