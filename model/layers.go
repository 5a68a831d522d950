package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/kernels"
)

// This file holds the layer API the networks are written in: one method
// of Graph per layer, each a kop backed by package kernels, with the
// gradient written as further kops.

// Conv applies a 2-D convolution with zero padding pad (PyTorch conv2d)
// with weights w (K x C x KH x KW) and bias b (K, or nil), then act.
func (g *Graph) Conv(x, w, b *G.Node, stride, pad int, act kernels.Act) *G.Node {
	n, c, h, wd, ok := g.shape4("conv", x)
	if !ok || w == nil {
		g.fail(fmt.Errorf("model: conv: missing input"))
		return nil
	}
	ws := w.Shape()
	if ws.Dims() != 4 || ws[1] != c {
		g.fail(fmt.Errorf("model: conv: weights %v do not fit input %v", ws, x.Shape()))
		return nil
	}
	s := kernels.ConvShape{N: n, C: c, H: h, W: wd, K: ws[0], KH: ws[2], KW: ws[3], Stride: stride, Pad: pad}
	if err := s.Validate(); err != nil {
		g.fail(fmt.Errorf("model: conv %s: %w", w.Name(), err))
		return nil
	}
	hasBias := b != nil
	o := &kop{
		name:     fmt.Sprintf("conv(%s,s%d,p%d,%v)", w.Name(), stride, pad, act),
		outShape: tensor.Shape{n, s.K, s.OutH(), s.OutW()},
		f32:      convFwd[float32](s, act, hasBias),
		f64:      convFwd[float64](s, act, hasBias),
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			gr := make(G.Nodes, len(in))
			dpre := g.actGrad(act, out, dy)
			if diff[0] {
				gr[0] = g.apply(convOp("conv-dx", s, tensor.Shape{s.N, s.C, s.H, s.W},
					convDataFwd[float32](s), convDataFwd[float64](s)), in[1], dpre)
			}
			if diff[1] {
				gr[1] = g.apply(convOp("conv-dw", s, tensor.Shape{s.K, s.C, s.KH, s.KW},
					convFilterFwd[float32](s), convFilterFwd[float64](s)), in[0], dpre)
			}
			if hasBias && diff[2] {
				plane := s.OutH() * s.OutW()
				gr[2] = g.apply(&kop{
					name:     fmt.Sprintf("bias-grad%+v", s),
					outShape: tensor.Shape{s.K},
					f32:      func(out []float32, in [][]float32) { kernels.BiasGrad(s.N, s.K, plane, out, in[0]) },
					f64:      func(out []float64, in [][]float64) { kernels.BiasGrad(s.N, s.K, plane, out, in[0]) },
				}, dpre)
			}
			return gr, g.err
		},
	}
	ins := G.Nodes{x, w}
	if hasBias {
		ins = append(ins, b)
	}
	y := g.apply(o, ins...)
	if y != nil {
		g.flops += s.FLOPs()
	}
	return y
}

func convOp(name string, s kernels.ConvShape, out tensor.Shape, f32 opFn[float32], f64 opFn[float64]) *kop {
	return &kop{name: fmt.Sprintf("%s%+v", name, s), outShape: out, f32: f32, f64: f64}
}

func convFwd[T kernels.Float](s kernels.ConvShape, act kernels.Act, hasBias bool) opFn[T] {
	return func(out []T, in [][]T) {
		var b []T
		if hasBias {
			b = in[2]
		}
		kernels.Conv2D(s, out, in[0], in[1], b, act)
	}
}

func convDataFwd[T kernels.Float](s kernels.ConvShape) opFn[T] {
	return func(out []T, in [][]T) { kernels.Conv2DBackwardData(s, out, in[0], in[1]) }
}

func convFilterFwd[T kernels.Float](s kernels.ConvShape) opFn[T] {
	return func(out []T, in [][]T) { kernels.Conv2DBackwardFilter(s, out, in[0], in[1]) }
}

// actGrad returns dy * act'(y) for the output y of a layer with a fused
// activation (dy itself for the identity).
func (g *Graph) actGrad(act kernels.Act, y, dy *G.Node) *G.Node {
	if act.Kind == kernels.Identity {
		return dy
	}
	return g.apply(&kop{
		name:     fmt.Sprintf("act-grad(%v)", act),
		outShape: y.Shape(),
		f32:      func(out []float32, in [][]float32) { kernels.ActBackward(act, out, in[0], in[1]) },
		f64:      func(out []float64, in [][]float64) { kernels.ActBackward(act, out, in[0], in[1]) },
	}, y, dy)
}

// Act applies an activation on its own (where no layer can fuse it).
func (g *Graph) Act(x *G.Node, act kernels.Act) *G.Node {
	if g.err != nil || x == nil {
		return nil
	}
	return g.apply(&kop{
		name:     fmt.Sprintf("act(%v)", act),
		outShape: x.Shape(),
		f32:      func(out []float32, in [][]float32) { copy(out, in[0]); kernels.ActInPlace(act, out) },
		f64:      func(out []float64, in [][]float64) { copy(out, in[0]); kernels.ActInPlace(act, out) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.actGrad(act, out, dy)}, g.err
		},
	}, x)
}

// BNState is a BatchNorm layer's running statistics and settings.
type BNState struct {
	Mean, Var *Param // running statistics (buffers)
	Momentum  float64
	Eps       float64
}

// BatchNorm normalises x over the batch and plane per channel with scale
// gamma and shift beta, then act. With train true it uses the batch's
// statistics and updates the running ones each time the graph runs
// (PyTorch's train mode: running = (1-momentum)*running + momentum*batch,
// unbiased variance); otherwise it uses the running statistics.
func (g *Graph) BatchNorm(x, gamma, beta *G.Node, st *BNState, train bool, act kernels.Act) *G.Node {
	n, c, h, w, ok := g.shape4("batchnorm", x)
	if !ok {
		return nil
	}
	plane := h * w
	if !train {
		return g.apply(&kop{
			name:     fmt.Sprintf("batchnorm-eval(%s,%v)", st.Mean.Name, act),
			outShape: x.Shape(),
			diff:     []bool{false, false, false},
			f32: func(out []float32, in [][]float32) {
				kernels.BatchNormEval(n, c, plane, st.Eps, act, out, in[0], in[1], in[2], st.Mean.Value.Data().([]float32), st.Var.Value.Data().([]float32))
			},
			f64: func(out []float64, in [][]float64) {
				kernels.BatchNormEval(n, c, plane, st.Eps, act, out, in[0], in[1], in[2], st.Mean.Value.Data().([]float64), st.Var.Value.Data().([]float64))
			},
		}, x, gamma, beta)
	}
	return g.apply(&kop{
		name:     fmt.Sprintf("batchnorm(%s,%v)", st.Mean.Name, act),
		outShape: x.Shape(),
		f32:      bnTrainFwd[float32](n, c, plane, st, act),
		f64:      bnTrainFwd[float64](n, c, plane, st, act),
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			gr := make(G.Nodes, 3)
			if diff[0] {
				gr[0] = g.apply(&kop{
					name:     fmt.Sprintf("batchnorm-dx(%s)", st.Mean.Name),
					outShape: in[0].Shape(),
					f32: func(o []float32, v [][]float32) {
						kernels.BatchNormTrainBackward(n, c, plane, st.Eps, act, o, nil, nil, v[0], v[1], v[2], v[3])
					},
					f64: func(o []float64, v [][]float64) {
						kernels.BatchNormTrainBackward(n, c, plane, st.Eps, act, o, nil, nil, v[0], v[1], v[2], v[3])
					},
				}, in[0], in[1], out, dy)
			}
			if diff[1] {
				gr[1] = g.apply(&kop{
					name:     fmt.Sprintf("batchnorm-dgamma(%s)", st.Mean.Name),
					outShape: tensor.Shape{c},
					f32: func(o []float32, v [][]float32) {
						kernels.BatchNormTrainBackward(n, c, plane, st.Eps, act, nil, o, nil, v[0], v[1], v[2], v[3])
					},
					f64: func(o []float64, v [][]float64) {
						kernels.BatchNormTrainBackward(n, c, plane, st.Eps, act, nil, o, nil, v[0], v[1], v[2], v[3])
					},
				}, in[0], in[1], out, dy)
			}
			if diff[2] {
				gr[2] = g.apply(&kop{
					name:     fmt.Sprintf("batchnorm-dbeta(%s)", st.Mean.Name),
					outShape: tensor.Shape{c},
					f32: func(o []float32, v [][]float32) {
						kernels.BatchNormTrainBackward(n, c, plane, st.Eps, act, nil, nil, o, v[0], v[1], v[2], v[3])
					},
					f64: func(o []float64, v [][]float64) {
						kernels.BatchNormTrainBackward(n, c, plane, st.Eps, act, nil, nil, o, v[0], v[1], v[2], v[3])
					},
				}, in[0], in[1], out, dy)
			}
			return gr, g.err
		},
	}, x, gamma, beta)
}

func bnTrainFwd[T kernels.Float](n, c, plane int, st *BNState, act kernels.Act) opFn[T] {
	mean, uvar := make([]T, c), make([]T, c)
	return func(out []T, in [][]T) {
		kernels.BatchNormTrain(n, c, plane, st.Eps, act, out, in[0], in[1], in[2], mean, uvar)
		rm, _ := st.Mean.Value.Data().([]T)
		rv, _ := st.Var.Value.Data().([]T)
		if len(rm) != c || len(rv) != c {
			return // statistics of another dtype: a float64 graph over float32 buffers is refused earlier
		}
		m := T(st.Momentum)
		for i := range rm {
			rm[i] = (1-m)*rm[i] + m*mean[i]
			rv[i] = (1-m)*rv[i] + m*uvar[i]
		}
	}
}

// InstanceNorm normalises each plane of x (InstanceNorm2d, affine=False,
// eps 1e-5), then act.
func (g *Graph) InstanceNorm(x *G.Node, act kernels.Act) *G.Node {
	n, c, h, w, ok := g.shape4("instancenorm", x)
	if !ok {
		return nil
	}
	const eps = 1e-5
	planes, plane := n*c, h*w
	return g.apply(&kop{
		name:     fmt.Sprintf("instancenorm(%v)", act),
		outShape: x.Shape(),
		f32:      func(out []float32, in [][]float32) { kernels.InstanceNorm(planes, plane, eps, act, out, in[0]) },
		f64:      func(out []float64, in [][]float64) { kernels.InstanceNorm(planes, plane, eps, act, out, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     fmt.Sprintf("instancenorm-dx(%v)", act),
				outShape: in[0].Shape(),
				f32: func(o []float32, v [][]float32) {
					kernels.InstanceNormBackward(planes, plane, eps, act, o, v[0], v[1], v[2])
				},
				f64: func(o []float64, v [][]float64) {
					kernels.InstanceNormBackward(planes, plane, eps, act, o, v[0], v[1], v[2])
				},
			}, in[0], out, dy)}, g.err
		},
	}, x)
}

// PixelShuffle rearranges N x C*r*r x H x W into N x C x H*r x W*r.
func (g *Graph) PixelShuffle(x *G.Node, r int) *G.Node {
	n, cr, h, w, ok := g.shape4("pixelshuffle", x)
	if !ok {
		return nil
	}
	if r < 1 || cr%(r*r) != 0 {
		g.fail(fmt.Errorf("model: pixel shuffle by %d of %d channels", r, cr))
		return nil
	}
	c := cr / (r * r)
	return g.apply(&kop{
		name:     fmt.Sprintf("pixelshuffle(%d)", r),
		outShape: tensor.Shape{n, c, h * r, w * r},
		f32:      func(out []float32, in [][]float32) { kernels.PixelShuffle(n, c, h, w, r, out, in[0]) },
		f64:      func(out []float64, in [][]float64) { kernels.PixelShuffle(n, c, h, w, r, out, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     fmt.Sprintf("pixelunshuffle(%d)", r),
				outShape: in[0].Shape(),
				f32:      func(o []float32, v [][]float32) { kernels.PixelUnshuffle(n, c, h, w, r, o, v[0]) },
				f64:      func(o []float64, v [][]float64) { kernels.PixelUnshuffle(n, c, h, w, r, o, v[0]) },
			}, dy)}, g.err
		},
	}, x)
}

// BlurDown is PDM's blur + downsample (kernels.BlurDown): x is the HR
// batch N x C x H x W; k holds one ks x ks kernel per sample (N x ks*ks) or,
// for spatially variant kernels, one per sample and output pixel
// (N x ks*ks x H' x W').
func (g *Graph) BlurDown(x, k *G.Node, ks, scale int) *G.Node {
	n, c, h, w, ok := g.shape4("blur", x)
	if !ok || k == nil {
		return nil
	}
	s := kernels.BlurShape{N: n, C: c, H: h, W: w, KS: ks, Scale: scale, Spatial: k.Shape().Dims() == 4}
	if err := s.Validate(); err != nil {
		g.fail(fmt.Errorf("model: blur: %w", err))
		return nil
	}
	want := tensor.Shape{n, ks * ks}
	if s.Spatial {
		want = tensor.Shape{n, ks * ks, s.OutH(), s.OutW()}
	}
	if !k.Shape().Eq(want) {
		g.fail(fmt.Errorf("model: blur: kernels have shape %v, want %v", k.Shape(), want))
		return nil
	}
	return g.apply(&kop{
		name:     fmt.Sprintf("blurdown%+v", s),
		outShape: tensor.Shape{n, c, s.OutH(), s.OutW()},
		f32:      func(out []float32, in [][]float32) { kernels.BlurDown(s, out, in[0], in[1]) },
		f64:      func(out []float64, in [][]float64) { kernels.BlurDown(s, out, in[0], in[1]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			gr := make(G.Nodes, 2)
			if diff[0] {
				gr[0] = g.apply(&kop{
					name:     fmt.Sprintf("blurdown-dx%+v", s),
					outShape: in[0].Shape(),
					f32:      func(o []float32, v [][]float32) { kernels.BlurDownBackward(s, o, nil, v[0], v[1], v[2]) },
					f64:      func(o []float64, v [][]float64) { kernels.BlurDownBackward(s, o, nil, v[0], v[1], v[2]) },
				}, in[0], in[1], dy)
			}
			if diff[1] {
				gr[1] = g.apply(&kop{
					name:     fmt.Sprintf("blurdown-dk%+v", s),
					outShape: in[1].Shape(),
					f32:      func(o []float32, v [][]float32) { kernels.BlurDownBackward(s, nil, o, v[0], v[1], v[2]) },
					f64:      func(o []float64, v [][]float64) { kernels.BlurDownBackward(s, nil, o, v[0], v[1], v[2]) },
				}, in[0], in[1], dy)
			}
			return gr, g.err
		},
	}, x, k)
}

// Softmax normalises x along axis 1 (the channels of N x C x H x W, or the
// columns of N x C).
func (g *Graph) Softmax(x *G.Node) *G.Node {
	if g.err != nil || x == nil {
		return nil
	}
	s := x.Shape()
	if s.Dims() < 2 {
		g.fail(fmt.Errorf("model: softmax of shape %v", s))
		return nil
	}
	outer, dim, inner := s[0], s[1], s.TotalSize()/(s[0]*s[1])
	return g.apply(&kop{
		name:     "softmax1",
		outShape: s,
		f32:      func(out []float32, in [][]float32) { kernels.Softmax(outer, dim, inner, out, in[0]) },
		f64:      func(out []float64, in [][]float64) { kernels.Softmax(outer, dim, inner, out, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     "softmax1-dx",
				outShape: s,
				f32:      func(o []float32, v [][]float32) { kernels.SoftmaxBackward(outer, dim, inner, o, v[0], v[1]) },
				f64:      func(o []float64, v [][]float64) { kernels.SoftmaxBackward(outer, dim, inner, o, v[0], v[1]) },
			}, out, dy)}, g.err
		},
	}, x)
}

// Detach passes x through and stops the gradient (PyTorch's .detach()).
func (g *Graph) Detach(x *G.Node) *G.Node {
	if g.err != nil || x == nil {
		return nil
	}
	return g.apply(&kop{
		name:     "detach",
		outShape: x.Shape(),
		diff:     []bool{false},
		f32:      func(out []float32, in [][]float32) { copy(out, in[0]) },
		f64:      func(out []float64, in [][]float64) { copy(out, in[0]) },
	}, x)
}

// FourierQuant applies the smooth 8-bit quantisation used when PDM has no
// noise module.
func (g *Graph) FourierQuant(x *G.Node) *G.Node {
	if g.err != nil || x == nil {
		return nil
	}
	return g.apply(&kop{
		name:     "fourierquant",
		outShape: x.Shape(),
		f32:      func(out []float32, in [][]float32) { kernels.FourierQuant(out, in[0]) },
		f64:      func(out []float64, in [][]float64) { kernels.FourierQuant(out, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     "fourierquant-dx",
				outShape: in[0].Shape(),
				f32:      func(o []float32, v [][]float32) { kernels.FourierQuantBackward(o, v[0], v[1]) },
				f64:      func(o []float64, v [][]float64) { kernels.FourierQuantBackward(o, v[0], v[1]) },
			}, in[0], dy)}, g.err
		},
	}, x)
}

// Concat joins a and b (N x Ca x H x W and N x Cb x H x W) along the
// channels.
func (g *Graph) Concat(a, b *G.Node) *G.Node {
	n, ca, h, w, ok := g.shape4("concat", a)
	_, cb, hb, wb, ok2 := g.shape4("concat", b)
	if !ok || !ok2 {
		return nil
	}
	if b.Shape()[0] != n || hb != h || wb != w {
		g.fail(fmt.Errorf("model: concat of %v and %v", a.Shape(), b.Shape()))
		return nil
	}
	plane := h * w
	return g.apply(&kop{
		name:     "concat1",
		outShape: tensor.Shape{n, ca + cb, h, w},
		f32:      concatFwd[float32](n, ca, cb, plane),
		f64:      concatFwd[float64](n, ca, cb, plane),
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			gr := make(G.Nodes, 2)
			for i, off := range []int{0, ca} {
				if !diff[i] {
					continue
				}
				cc := []int{ca, cb}[i]
				gr[i] = g.apply(&kop{
					name:     fmt.Sprintf("concat1-d%d", i),
					outShape: in[i].Shape(),
					f32:      splitFwd[float32](n, ca+cb, off, cc, plane),
					f64:      splitFwd[float64](n, ca+cb, off, cc, plane),
				}, dy)
			}
			return gr, g.err
		},
	}, a, b)
}

func concatFwd[T kernels.Float](n, ca, cb, plane int) opFn[T] {
	return func(out []T, in [][]T) {
		for i := 0; i < n; i++ {
			o := out[i*(ca+cb)*plane:]
			copy(o[:ca*plane], in[0][i*ca*plane:(i+1)*ca*plane])
			copy(o[ca*plane:(ca+cb)*plane], in[1][i*cb*plane:(i+1)*cb*plane])
		}
	}
}

func splitFwd[T kernels.Float](n, c, off, cc, plane int) opFn[T] {
	return func(out []T, in [][]T) {
		for i := 0; i < n; i++ {
			copy(out[i*cc*plane:(i+1)*cc*plane], in[0][(i*c+off)*plane:(i*c+off+cc)*plane])
		}
	}
}

// Reshape gives x a new shape with the same number of elements.
func (g *Graph) Reshape(x *G.Node, shape ...int) *G.Node {
	if g.err != nil || x == nil {
		return nil
	}
	to := tensor.Shape(shape)
	if to.TotalSize() != x.Shape().TotalSize() {
		g.fail(fmt.Errorf("model: reshape %v to %v", x.Shape(), to))
		return nil
	}
	from := x.Shape()
	return g.apply(&kop{
		name:     fmt.Sprintf("reshape%v", to),
		outShape: to,
		f32:      func(out []float32, in [][]float32) { copy(out, in[0]) },
		f64:      func(out []float64, in [][]float64) { copy(out, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.Reshape(dy, from...)}, g.err
		},
	}, x)
}

// AddScaled returns a + s*b for tensors of one shape.
func (g *Graph) AddScaled(a, b *G.Node, s float64) *G.Node {
	if g.err != nil || a == nil || b == nil {
		return nil
	}
	if !a.Shape().Eq(b.Shape()) {
		g.fail(fmt.Errorf("model: add of %v and %v", a.Shape(), b.Shape()))
		return nil
	}
	return g.apply(&kop{
		name:     fmt.Sprintf("add(%g)", s),
		outShape: a.Shape(),
		f32:      func(out []float32, in [][]float32) { kernels.AddScaled(out, in[0], in[1], float32(s)) },
		f64:      func(out []float64, in [][]float64) { kernels.AddScaled(out, in[0], in[1], s) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			gr := G.Nodes{dy, nil}
			if diff[1] {
				gr[1] = dy
				if s != 1 {
					gr[1] = g.scale(dy, s)
				}
			}
			return gr, g.err
		},
	}, a, b)
}

func (g *Graph) scale(x *G.Node, s float64) *G.Node {
	return g.apply(&kop{
		name:     fmt.Sprintf("scale(%g)", s),
		outShape: x.Shape(),
		f32: func(out []float32, in [][]float32) {
			for i, v := range in[0] {
				out[i] = float32(s) * v
			}
		},
		f64: func(out []float64, in [][]float64) {
			for i, v := range in[0] {
				out[i] = s * v
			}
		},
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.scale(dy, s)}, g.err
		},
	}, x)
}

// ChannelAffine returns scale[c]*x + shift[c] per channel, with constant
// scale and shift (EDSR's mean shift).
func (g *Graph) ChannelAffine(x *G.Node, scale, shift []float64) *G.Node {
	n, c, h, w, ok := g.shape4("channel affine", x)
	if !ok {
		return nil
	}
	if len(scale) != c || len(shift) != c {
		g.fail(fmt.Errorf("model: channel affine with %d/%d constants for %d channels", len(scale), len(shift), c))
		return nil
	}
	zero := make([]float64, c)
	return g.apply(&kop{
		name:     fmt.Sprintf("affine(%v,%v)", scale, shift),
		outShape: x.Shape(),
		f32:      func(out []float32, in [][]float32) { kernels.ChannelAffine(n, h*w, scale, shift, out, in[0]) },
		f64:      func(out []float64, in [][]float64) { kernels.ChannelAffine(n, h*w, scale, shift, out, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     fmt.Sprintf("affine-dx(%v)", scale),
				outShape: x.Shape(),
				f32:      func(o []float32, v [][]float32) { kernels.ChannelAffine(n, h*w, scale, zero, o, v[0]) },
				f64:      func(o []float64, v [][]float64) { kernels.ChannelAffine(n, h*w, scale, zero, o, v[0]) },
			}, dy)}, g.err
		},
	}, x)
}

// MeanSquare is the scalar weight * mean((x - target)^2).
func (g *Graph) MeanSquare(x *G.Node, target, weight float64) *G.Node {
	if g.err != nil || x == nil {
		return nil
	}
	return g.apply(&kop{
		name:     fmt.Sprintf("meansquare(%g,%g)", target, weight),
		outShape: tensor.ScalarShape(),
		f32:      func(out []float32, in [][]float32) { out[0] = float32(weight * kernels.MeanSquare(in[0], target)) },
		f64:      func(out []float64, in [][]float64) { out[0] = weight * kernels.MeanSquare(in[0], target) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     fmt.Sprintf("meansquare-dx(%g,%g)", target, weight),
				outShape: in[0].Shape(),
				f32: func(o []float32, v [][]float32) {
					kernels.MeanSquareBackward(o, v[0], target, weight*float64(v[1][0]))
				},
				f64: func(o []float64, v [][]float64) { kernels.MeanSquareBackward(o, v[0], target, weight*v[1][0]) },
			}, in[0], dy)}, g.err
		},
	}, x)
}

// MeanAbsDiff is the scalar weight * mean(|a - b|) (the L1 loss).
func (g *Graph) MeanAbsDiff(a, b *G.Node, weight float64) *G.Node {
	if g.err != nil || a == nil || b == nil {
		return nil
	}
	if !a.Shape().Eq(b.Shape()) {
		g.fail(fmt.Errorf("model: L1 of %v and %v", a.Shape(), b.Shape()))
		return nil
	}
	return g.apply(&kop{
		name:     fmt.Sprintf("l1(%g)", weight),
		outShape: tensor.ScalarShape(),
		f32:      func(out []float32, in [][]float32) { out[0] = float32(weight * kernels.MeanAbsDiff(in[0], in[1])) },
		f64:      func(out []float64, in [][]float64) { out[0] = weight * kernels.MeanAbsDiff(in[0], in[1]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			gr := make(G.Nodes, 2)
			for i, sign := range []float64{1, -1} {
				if !diff[i] {
					continue
				}
				gr[i] = g.apply(&kop{
					name:     fmt.Sprintf("l1-d%d(%g)", i, weight),
					outShape: a.Shape(),
					f32: func(o []float32, v [][]float32) {
						kernels.MeanAbsDiffBackward(o, v[0], v[1], sign*weight*float64(v[2][0]))
					},
					f64: func(o []float64, v [][]float64) {
						kernels.MeanAbsDiffBackward(o, v[0], v[1], sign*weight*v[2][0])
					},
				}, in[0], in[1], dy)
			}
			return gr, g.err
		},
	}, a, b)
}

// Sum adds scalar nodes.
func (g *Graph) Sum(xs ...*G.Node) *G.Node {
	if g.err != nil {
		return nil
	}
	if len(xs) == 1 {
		return xs[0]
	}
	return g.apply(&kop{
		name:     fmt.Sprintf("sum%d", len(xs)),
		outShape: tensor.ScalarShape(),
		f32: func(out []float32, in [][]float32) {
			out[0] = 0
			for _, v := range in {
				out[0] += v[0]
			}
		},
		f64: func(out []float64, in [][]float64) {
			out[0] = 0
			for _, v := range in {
				out[0] += v[0]
			}
		},
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			gr := make(G.Nodes, len(in))
			for i := range in {
				if diff[i] {
					gr[i] = dy
				}
			}
			return gr, g.err
		},
	}, xs...)
}

// KernelCentroid is the scalar weight * kernels.CentroidPenalty of the
// kernels k (N x ks*ks) around tap c0.
func (g *Graph) KernelCentroid(k *G.Node, ks int, c0, weight float64) *G.Node {
	if g.err != nil || k == nil {
		return nil
	}
	s := k.Shape()
	if s.Dims() != 2 || s[1] != ks*ks {
		g.fail(fmt.Errorf("model: kernel centroid of shape %v, want N x %d", s, ks*ks))
		return nil
	}
	n := s[0]
	return g.apply(&kop{
		name:     fmt.Sprintf("centroid(%d,%g,%g)", ks, c0, weight),
		outShape: tensor.ScalarShape(),
		f32: func(out []float32, in [][]float32) {
			out[0] = float32(weight * kernels.CentroidPenalty(n, ks, c0, in[0]))
		},
		f64: func(out []float64, in [][]float64) { out[0] = weight * kernels.CentroidPenalty(n, ks, c0, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     fmt.Sprintf("centroid-dk(%d,%g,%g)", ks, c0, weight),
				outShape: in[0].Shape(),
				f32: func(o []float32, v [][]float32) {
					kernels.CentroidPenaltyBackward(n, ks, c0, weight*float64(v[1][0]), o, v[0])
				},
				f64: func(o []float64, v [][]float64) {
					kernels.CentroidPenaltyBackward(n, ks, c0, weight*v[1][0], o, v[0])
				},
			}, in[0], dy)}, g.err
		},
	}, k)
}

// CenterPlanes subtracts from each plane of x (N x C x H x W) its mean: the
// noise network's output made zero-mean per sample and channel.
func (g *Graph) CenterPlanes(x *G.Node) *G.Node {
	n, c, h, w, ok := g.shape4("centerplanes", x)
	if !ok {
		return nil
	}
	planes, plane := n*c, h*w
	var op func(x *G.Node) *G.Node
	op = func(x *G.Node) *G.Node {
		return g.apply(&kop{
			name:     "centerplanes",
			outShape: x.Shape(),
			f32:      func(out []float32, in [][]float32) { kernels.CenterPlanes(planes, plane, out, in[0]) },
			f64:      func(out []float64, in [][]float64) { kernels.CenterPlanes(planes, plane, out, in[0]) },
			grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
				return G.Nodes{op(dy)}, g.err
			},
		}, x)
	}
	return op(x)
}
