package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/kernels"
)

// Graph ops of issue 13's priors against kernel collapse and degenerate
// kernels (package kernels' reference functions), and the discriminator's
// minibatch standard deviation.

// kernelLayout returns the number of samples and the plane of kernels k:
// N x ks*ks (plane 1) or, spatially variant, N x ks*ks x h x w (plane h*w).
func (g *Graph) kernelLayout(what string, k *G.Node, ks int) (n, plane int, ok bool) {
	if g.err != nil || k == nil {
		return 0, 0, false
	}
	s := k.Shape()
	if ks < 1 || (s.Dims() != 2 && s.Dims() != 4) || s[1] != ks*ks {
		g.fail(fmt.Errorf("model: %s: kernels of shape %v, want N x %d or N x %d x h x w", what, s, ks*ks, ks*ks))
		return 0, 0, false
	}
	plane = 1
	if s.Dims() == 4 {
		plane = s[2] * s[3]
	}
	return s[0], plane, true
}

// KernelSmooth is the scalar weight * kernels.KernelSmooth of the kernels k
// (N x ks*ks, or N x ks*ks x h x w): the mean over kernels of the squared
// differences between adjacent taps.
func (g *Graph) KernelSmooth(k *G.Node, ks int, weight float64) *G.Node {
	n, plane, ok := g.kernelLayout("kernel smooth", k, ks)
	if !ok {
		return nil
	}
	return g.apply(&kop{
		name:     fmt.Sprintf("ksmooth(%d,%g)", ks, weight),
		outShape: tensor.ScalarShape(),
		f32: func(out []float32, in [][]float32) {
			out[0] = float32(weight * kernels.KernelSmooth(n, ks, plane, in[0]))
		},
		f64: func(out []float64, in [][]float64) { out[0] = weight * kernels.KernelSmooth(n, ks, plane, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     fmt.Sprintf("ksmooth-dk(%d,%g)", ks, weight),
				outShape: in[0].Shape(),
				f32: func(o []float32, v [][]float32) {
					kernels.KernelSmoothBackward(n, ks, plane, weight*float64(v[1][0]), o, v[0])
				},
				f64: func(o []float64, v [][]float64) {
					kernels.KernelSmoothBackward(n, ks, plane, weight*v[1][0], o, v[0])
				},
			}, in[0], dy)}, g.err
		},
	}, k)
}

// KernelRadius is the scalar weight * kernels.KernelRadius of the kernels k
// (N x ks*ks, or N x ks*ks x h x w): the mean over kernels of
// sum k[u,v] * max(0, |(u,v)-(cy,cx)| - r0)^2, in taps.
func (g *Graph) KernelRadius(k *G.Node, ks int, cy, cx, r0, weight float64) *G.Node {
	n, plane, ok := g.kernelLayout("kernel radius", k, ks)
	if !ok {
		return nil
	}
	if r0 < 0 {
		g.fail(fmt.Errorf("model: kernel radius: r0 %g is negative", r0))
		return nil
	}
	return g.apply(&kop{
		name:     fmt.Sprintf("kradius(%d,%g,%g,%g,%g)", ks, cy, cx, r0, weight),
		outShape: tensor.ScalarShape(),
		f32: func(out []float32, in [][]float32) {
			out[0] = float32(weight * kernels.KernelRadius(n, ks, plane, cy, cx, r0, in[0]))
		},
		f64: func(out []float64, in [][]float64) {
			out[0] = weight * kernels.KernelRadius(n, ks, plane, cy, cx, r0, in[0])
		},
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     fmt.Sprintf("kradius-dk(%d,%g,%g,%g,%g)", ks, cy, cx, r0, weight),
				outShape: in[0].Shape(),
				f32: func(o []float32, v [][]float32) {
					kernels.KernelRadiusBackward(n, ks, plane, cy, cx, r0, weight*float64(v[0][0]), o)
				},
				f64: func(o []float64, v [][]float64) {
					kernels.KernelRadiusBackward(n, ks, plane, cy, cx, r0, weight*v[0][0], o)
				},
			}, dy)}, g.err
		},
	}, k)
}

// ModeSeeking is Mao et al.'s (2019) mode-seeking loss for a batch of
// kernels k (N x ..., N even) drawn from latents z:
// weight / (D/Dz + eps), D the mean over the pairs (i, i+N/2) and values of
// |k_i - k_j|, Dz the same for the latents, read from *dz each time the
// graph runs (the trainer sets it from the batch's latents before Run,
// with LatentPairDistance). When *dz is not positive the loss and its
// gradient are 0. Minimising it pushes the kernels of different z apart.
func (g *Graph) ModeSeeking(k *G.Node, dz *float64, weight, eps float64) *G.Node {
	if g.err != nil || k == nil {
		return nil
	}
	s := k.Shape()
	if s.Dims() < 1 || s[0] < 2 || s[0]%2 != 0 {
		g.fail(fmt.Errorf("model: mode seeking: batch of shape %v, want an even number of samples", s))
		return nil
	}
	if dz == nil {
		g.fail(fmt.Errorf("model: mode seeking: no latent distance"))
		return nil
	}
	if eps <= 0 {
		g.fail(fmt.Errorf("model: mode seeking: eps %g must be positive", eps))
		return nil
	}
	n := s[0]
	// The pointer is part of the name: ops of different distances must not
	// be merged.
	id := fmt.Sprintf("%d,%p,%g,%g", n, dz, weight, eps)
	return g.apply(&kop{
		name:     "modeseeking(" + id + ")",
		outShape: tensor.ScalarShape(),
		f32: func(out []float32, in [][]float32) {
			out[0] = float32(weight * kernels.ModeSeeking(n, *dz, eps, in[0]))
		},
		f64: func(out []float64, in [][]float64) { out[0] = weight * kernels.ModeSeeking(n, *dz, eps, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     "modeseeking-dk(" + id + ")",
				outShape: in[0].Shape(),
				f32: func(o []float32, v [][]float32) {
					kernels.ModeSeekingBackward(n, *dz, eps, weight*float64(v[1][0]), o, v[0])
				},
				f64: func(o []float64, v [][]float64) {
					kernels.ModeSeekingBackward(n, *dz, eps, weight*v[1][0], o, v[0])
				},
			}, in[0], dy)}, g.err
		},
	}, k)
}

// LatentPairDistance is mode seeking's Dz for a batch of n latents laid out
// n x f (z_k of any shape, flattened per sample): the mean over the pairs
// (i, i+n/2) and the f components of |z_i - z_j|. It panics unless n is
// even, at least 2, and divides len(z).
func LatentPairDistance(z []float32, n int) float64 {
	return kernels.PairAbsDiff(n, z)
}

// MinibatchStd appends to x (N x C x H x W) one channel filled with
// kernels.MinibatchStd's s, the mean over c, h, w of the standard deviation
// over the batch (ProGAN's minibatch standard deviation): N x (C+1) x H x W.
func (g *Graph) MinibatchStd(x *G.Node) *G.Node {
	n, c, h, w, ok := g.shape4("minibatch std", x)
	if !ok {
		return nil
	}
	plane := h * w
	return g.apply(&kop{
		name:     "minibatchstd",
		outShape: tensor.Shape{n, c + 1, h, w},
		f32:      func(out []float32, in [][]float32) { kernels.MinibatchStd(n, c, plane, out, in[0]) },
		f64:      func(out []float64, in [][]float64) { kernels.MinibatchStd(n, c, plane, out, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     "minibatchstd-dx",
				outShape: in[0].Shape(),
				f32:      func(o []float32, v [][]float32) { kernels.MinibatchStdBackward(n, c, plane, o, v[0], v[1]) },
				f64:      func(o []float64, v [][]float64) { kernels.MinibatchStdBackward(n, c, plane, o, v[0], v[1]) },
			}, in[0], dy)}, g.err
		},
	}, x)
}
