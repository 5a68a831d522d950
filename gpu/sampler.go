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

// colBudget bounds the im2col buffer: a convolution over more samples
// than fit runs as several GEMMs over consecutive samples.
const colBudget = 256 << 20

// layer is one model.ConvStep on the device.
type layer struct {
	in, out, k         int
	skip, relu         bool
	prec               Precision // of its GEMM
	w, b, scale, shift dptr      // scale and shift 0 when no BatchNorm
}

// pdmSampler runs a PDM's inference on a GPU for batches of n crops of
// h x w (model.Device.NewPDMSampler).
type pdmSampler struct {
	d               *Device
	cfg             model.PDMConfig
	n, h, w, lh, lw int
	kh, kw          int // the kernel network's grid: 1x1, or lh x lw when spatially variant
	kk              int // taps per kernel
	kLayers         []layer
	nLayers         []layer
	mem             devMem

	// Uploaded each run (one copy): the crops, then z_k, then z_n.
	in                  dptr
	inZK, inZN, inBytes int // byte offsets of z_k, z_n; total
	// Downloaded each run (one copy): y, the kernels (spatially invariant
	// only), the noise means and deviations.
	out                                   dptr
	outKern, outMean, outStd, outBytes    int
	pinIn, pinOut                         []byte
	hr, kin, logits, kmap, clean, nin, nz dptr
	kact, nact                            [3]dptr
	col                                   dptr
}

func (d *Device) NewPDMSampler(p *model.PDM, n, h, w int) (model.BatchSampler, error) {
	if p.Cfg.Kernel.Mix {
		return nil, errors.New("gpu: pdm sampler: kernel.mix (a content-dependent kernel network, whose input is the HR image with z_k) is not supported on the GPU; produce on the CPU (--device cpu)")
	}
	bs := kernels.BlurShape{N: n, C: 3, H: h, W: w, KS: p.Cfg.Kernel.Size, Scale: p.Cfg.Scale}
	if err := bs.Validate(); err != nil {
		return nil, fmt.Errorf("gpu: pdm sampler: %w", err)
	}
	s := &pdmSampler{d: d, cfg: p.Cfg, n: n, h: h, w: w, lh: bs.OutH(), lw: bs.OutW(), kh: 1, kw: 1,
		kk: p.Cfg.Kernel.Size * p.Cfg.Kernel.Size, mem: devMem{e: d.e}}
	if p.Cfg.Kernel.Spatial {
		s.kh, s.kw = s.lh, s.lw
	}
	if err := s.alloc(p); err != nil {
		s.mem.free()
		return nil, err
	}
	if err := s.upload(p); err != nil {
		s.mem.free()
		return nil, err
	}
	return s, nil
}

// netLayers allocates the device weights of steps, whose GEMMs run in
// prec (the weights are stored in bfloat16 for BF16).
func (s *pdmSampler) netLayers(steps []model.ConvStep, prec Precision) ([]layer, error) {
	ls := make([]layer, len(steps))
	for i, st := range steps {
		l := layer{in: st.In, out: st.Out, k: st.K, skip: st.Skip, relu: st.ReLU, prec: prec}
		wBytes := 4 * len(st.W)
		if prec == BF16 {
			wBytes = 2 * len(st.W)
		}
		if err := s.mem.allocs([]int{wBytes, 4 * st.Out}, &l.w, &l.b); err != nil {
			return nil, err
		}
		if st.Scale != nil {
			if err := s.mem.allocs([]int{8 * st.Out, 8 * st.Out}, &l.scale, &l.shift); err != nil {
				return nil, err
			}
		}
		ls[i] = l
	}
	return ls, nil
}

// colRow says what layer l's im2col buffer holds per pixel: rows (one per
// input channel and tap) of elem bytes, and whether the layer needs one
// at all (a 1x1 convolution in fp32 or TF32 reads its input as is).
func colRow(l layer) (rows, elem int, needed bool) {
	elem = 4
	if l.prec == BF16 {
		elem = 2
	}
	return l.in * l.k * l.k, elem, l.k > 1 || l.prec == BF16
}

// chunk is how many samples of hw pixels one im2col of layer l covers.
func chunk(l layer, n, hw int) int {
	rows, elem, _ := colRow(l)
	return max(1, min(n, colBudget/(rows*elem*hw)))
}

func (s *pdmSampler) alloc(p *model.PDM) error {
	n := s.n
	var err error
	if s.kLayers, err = s.netLayers(p.KernelSteps(), FP32); err != nil {
		return err
	}
	if s.nLayers, err = s.netLayers(p.NoiseSteps(), s.d.prec); err != nil {
		return err
	}
	zk, zn := p.LatentShapes(n, s.lh, s.lw)
	zkN, znN := prod(zk), prod(zn)
	s.inZK = align(n * 3 * s.h * s.w)
	s.inZN = s.inZK + align(4*zkN)
	s.inBytes = s.inZN + align(4*znN)
	lrN := n * 3 * s.lh * s.lw
	s.outKern = align(4 * lrN)
	s.outMean = s.outKern
	if !p.Cfg.Kernel.Spatial {
		s.outMean += align(4 * n * s.kk)
	}
	s.outStd = s.outMean + align(4*n)
	s.outBytes = s.outStd + align(4*n)
	if s.pinIn, err = s.mem.pinned(s.inBytes); err != nil {
		return err
	}
	if s.pinOut, err = s.mem.pinned(s.outBytes); err != nil {
		return err
	}
	kP := n * s.kh * s.kw // kernel network columns
	nP := n * s.lh * s.lw // noise network columns
	kf, nf := p.Cfg.Kernel.NF, p.Cfg.Noise.NF
	sizes := []int{s.inBytes, s.outBytes, 4 * n * 3 * s.h * s.w, 4 * p.Cfg.Kernel.NC * kP, 4 * s.kk * kP, 4 * lrN}
	if err := s.mem.allocs(sizes, &s.in, &s.out, &s.hr, &s.kin, &s.logits, &s.clean); err != nil {
		return err
	}
	for i := range s.kact {
		if s.kact[i], err = s.mem.alloc(4 * kf * kP); err != nil {
			return err
		}
	}
	if p.Cfg.Kernel.Spatial {
		if s.kmap, err = s.mem.alloc(4 * s.kk * kP); err != nil {
			return err
		}
	}
	if len(s.nLayers) > 0 {
		if err := s.mem.allocs([]int{4 * s.nLayers[0].in * nP, 4 * 3 * nP}, &s.nin, &s.nz); err != nil {
			return err
		}
		for i := range s.nact {
			if s.nact[i], err = s.mem.alloc(4 * nf * nP); err != nil {
				return err
			}
		}
	}
	colBytes := 0
	for _, ls := range []struct {
		layers []layer
		hw     int
	}{{s.kLayers, s.kh * s.kw}, {s.nLayers, s.lh * s.lw}} {
		for _, l := range ls.layers {
			if rows, elem, needed := colRow(l); needed {
				colBytes = max(colBytes, rows*elem*ls.hw*chunk(l, n, ls.hw))
			}
		}
	}
	if colBytes > 0 {
		if s.col, err = s.mem.alloc(colBytes); err != nil {
			return err
		}
	}
	return nil
}

// upload copies p's weights into the layers' buffers.
func (s *pdmSampler) upload(p *model.PDM) error {
	for _, net := range []struct {
		layers []layer
		steps  []model.ConvStep
	}{{s.kLayers, p.KernelSteps()}, {s.nLayers, p.NoiseSteps()}} {
		if len(net.layers) != len(net.steps) {
			return fmt.Errorf("gpu: pdm sampler: %d layers for %d steps", len(net.layers), len(net.steps))
		}
		for i, st := range net.steps {
			l := net.layers[i]
			w := f32Bytes(st.W)
			if l.prec == BF16 {
				w = u16Bytes(toBF16(st.W))
			}
			errs := []error{s.d.e.h2d(l.w, w), s.d.e.h2d(l.b, f32Bytes(st.B))}
			if st.Scale != nil {
				errs = append(errs, s.d.e.h2d(l.scale, f64Bytes(st.Scale)), s.d.e.h2d(l.shift, f64Bytes(st.Shift)))
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
		}
	}
	return s.d.e.sync()
}

func (s *pdmSampler) Reload(p *model.PDM) error {
	if p.Cfg != s.cfg {
		return fmt.Errorf("gpu: pdm sampler: reload with another config (%+v, was %+v)", p.Cfg, s.cfg)
	}
	return s.upload(p)
}

func (s *pdmSampler) Close() { s.mem.free() }

func (s *pdmSampler) Run(b *model.SampleBatch) error {
	p := &model.PDM{Cfg: s.cfg}
	if err := p.CheckBatch(b, s.n, s.h, s.w); err != nil {
		return err
	}
	n, e := s.n, s.d.e
	// Stage the batch in pinned memory and send it in one copy.
	hrN := 3 * s.h * s.w
	kernels.ParallelFor(n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(s.pinIn[i*hrN:(i+1)*hrN], b.X[i])
		}
	})
	copy(floatsAt(s.pinIn, s.inZK, len(b.ZK)), b.ZK)
	copy(floatsAt(s.pinIn, s.inZN, len(b.ZN)), b.ZN)
	if err := e.h2d(s.in, s.pinIn); err != nil {
		return err
	}
	if err := s.forward(len(b.ZN) > 0); err != nil {
		return err
	}
	if err := e.d2h(s.pinOut, s.out); err != nil {
		return err
	}
	if err := e.sync(); err != nil {
		return err
	}
	lrN := 3 * s.lh * s.lw
	y := floatsAt(s.pinOut, 0, n*lrN)
	kern := floatsAt(s.pinOut, s.outKern, n*s.kk)
	kernels.ParallelFor(n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(b.Y[i], y[i*lrN:(i+1)*lrN])
			if b.Kernels != nil {
				copy(b.Kernels[i], kern[i*s.kk:(i+1)*s.kk])
			}
		}
	})
	if b.NoiseMean != nil && len(s.nLayers) > 0 {
		copy(b.NoiseMean, floatsAt(s.pinOut, s.outMean, n))
		copy(b.NoiseStd, floatsAt(s.pinOut, s.outStd, n))
	}
	return nil
}

// forward queues the whole batch on the device's stream: the crops to
// floats, the kernel network and its softmax, the blur, the noise network
// (or the smooth quantisation) and the noise statistics.
func (s *pdmSampler) forward(hasZN bool) error {
	e, n := s.d.e, s.n
	in := dptr(uint64(s.in))
	hrN := int64(n * 3 * s.h * s.w)
	if err := run(e, kU8ToF32, hrN, &C.U8ToF32Args{out: C.dptr(s.hr), in: C.dptr(in), total: C.i64(hrN)}); err != nil {
		return err
	}
	// z_k (NCHW) into the kernel network's channel-major input.
	khw := int64(s.kh * s.kw)
	zkTotal := int64(n*s.cfg.Kernel.NC) * khw
	if err := run(e, kToCNHW, zkTotal, &C.ToCNHWArgs{dst: C.dptr(s.kin), src: C.dptr(in + dptr(s.inZK)), n: C.int(n),
		c_src: C.int(s.cfg.Kernel.NC), hw: C.i64(khw), total: C.i64(zkTotal)}); err != nil {
		return err
	}
	if err := s.runNet(s.kLayers, s.kin, s.logits, s.kact, s.kh, s.kw); err != nil {
		return err
	}
	kP := int64(n) * khw
	kern, layout := s.out+dptr(s.outKern), 0
	if s.cfg.Kernel.Spatial {
		kern, layout = s.kmap, 1
	}
	if err := run(e, kSoftmaxCols, kP, &C.SoftmaxArgs{out: C.dptr(kern), in: C.dptr(s.logits), d: C.int(s.kk),
		transposed: C.int(1 - layout), m: C.i64(kP), total: C.i64(kP)}); err != nil {
		return err
	}
	lhw := int64(s.lh * s.lw)
	lrTotal := int64(n*3) * lhw
	if err := run(e, kBlurDown, lrTotal, &C.BlurArgs{y: C.dptr(s.clean), x: C.dptr(s.hr), k: C.dptr(kern),
		n: C.int(n), c: 3, h: C.int(s.h), w: C.int(s.w), ks: C.int(s.cfg.Kernel.Size), s: C.int(s.cfg.Scale),
		oh: C.int(s.lh), ow: C.int(s.lw), klayout: C.int(layout), total: C.i64(lrTotal)}); err != nil {
		return err
	}
	fake := s.out
	if len(s.nLayers) == 0 {
		return run(e, kFourierQuant, lrTotal, &C.QuantArgs{y: C.dptr(fake), x: C.dptr(s.clean), total: C.i64(lrTotal)})
	}
	// The noise network's input, by mode: cat(y_clean, z_n), z_n or y_clean.
	coff := 0
	if s.cfg.Noise.Mode != model.NoiseZOnly {
		if err := run(e, kToCNHW, lrTotal, &C.ToCNHWArgs{dst: C.dptr(s.nin), src: C.dptr(s.clean), n: C.int(n),
			c_src: 3, hw: C.i64(lhw), total: C.i64(lrTotal)}); err != nil {
			return err
		}
		coff = 3
	}
	if hasZN {
		nc := s.cfg.Noise.NC
		t := int64(n*nc) * lhw
		if err := run(e, kToCNHW, t, &C.ToCNHWArgs{dst: C.dptr(s.nin), src: C.dptr(in + dptr(s.inZN)), n: C.int(n),
			c_src: C.int(nc), coff: C.int(coff), hw: C.i64(lhw), total: C.i64(t)}); err != nil {
			return err
		}
	}
	if err := s.runNet(s.nLayers, s.nin, s.nz, s.nact, s.lh, s.lw); err != nil {
		return err
	}
	if s.cfg.Noise.ZeroMean {
		planes := int64(3 * n)
		if err := run(e, kCenterPlanes, planes, &C.CenterArgs{x: C.dptr(s.nz), c: 3, n: C.int(n), hw: C.i64(lhw), total: C.i64(planes)}); err != nil {
			return err
		}
	}
	if err := run(e, kAddNoise, lrTotal, &C.AddNoiseArgs{y: C.dptr(fake), clean: C.dptr(s.clean), noise: C.dptr(s.nz),
		n: C.int(n), c: 3, hw: C.i64(lhw), total: C.i64(lrTotal)}); err != nil {
		return err
	}
	return run(e, kNoiseStats, int64(n), &C.NoiseStatsArgs{mean: C.dptr(s.out + dptr(s.outMean)), std: C.dptr(s.out + dptr(s.outStd)),
		noise: C.dptr(s.nz), n: C.int(n), c: 3, hw: C.i64(lhw), total: C.i64(n)})
}

// runNet runs layers on x (channel-major, layers[0].in x n*hw) into out
// (layers[len-1].out x n*hw), through the three activation buffers acts,
// on a grid of h x w = hw pixels per sample.
func (s *pdmSampler) runNet(layers []layer, x, out dptr, acts [3]dptr, h, w int) error {
	var prevIn dptr
	cur := x
	for i, l := range layers {
		dst := out
		if i < len(layers)-1 {
			for _, a := range acts {
				if a != cur && a != prevIn {
					dst = a
					break
				}
			}
		}
		res := dptr(0)
		if l.skip {
			res = prevIn
		}
		if err := s.conv(l, cur, dst, res, h, w); err != nil {
			return err
		}
		prevIn, cur = cur, dst
	}
	return nil
}

// conv runs layer l from x into y (both channel-major over the batch):
// im2col and the GEMM in chunks of samples (or the GEMM straight on x for
// a 1x1 convolution in fp32 or TF32), then the epilogue.
func (s *pdmSampler) conv(l layer, x, y, res dptr, h, w int) error {
	e, n, hw := s.d.e, s.n, h*w
	P := n * hw
	rows, elem, needed := colRow(l)
	if !needed {
		if err := e.gemm(l.prec, P, l.out, l.in, x, P, l.w, l.in, y, P); err != nil {
			return err
		}
	} else {
		k := kIm2ColF32
		if elem == 2 {
			k = kIm2ColBF16
		}
		c := chunk(l, n, hw)
		for n0 := 0; n0 < n; n0 += c {
			nc := min(c, n-n0)
			total := int64(rows) * int64(nc*hw)
			if err := run(e, k, total, &C.Im2ColArgs{col: C.dptr(s.col), x: C.dptr(x), cin: C.int(l.in), n0: C.int(n0), nc: C.int(nc),
				h: C.int(h), w: C.int(w), ks: C.int(l.k), plane: C.i64(P), total: C.i64(total)}); err != nil {
				return err
			}
			if err := e.gemm(l.prec, nc*hw, l.out, rows, s.col, nc*hw, l.w, rows, y+dptr(4*n0*hw), P); err != nil {
				return err
			}
		}
	}
	relu := 0
	if l.relu {
		relu = 1
	}
	total := int64(l.out) * int64(P)
	return run(e, kBiasAct, total, &C.BiasActArgs{y: C.dptr(y), bias: C.dptr(l.b), scale: C.dptr(l.scale), shift: C.dptr(l.shift),
		res: C.dptr(res), c: C.int(l.out), act: C.int(relu), p: C.i64(P), total: C.i64(total)})
}

func prod(s []int) int {
	if s == nil {
		return 0
	}
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}
