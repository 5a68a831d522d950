package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/kernels"
)

// This file holds the layers that change an image's grid: nearest
// upsampling (RRDB), pixel unshuffle (RRDB at x2), max-pooling (VGG) and
// bicubic resizing of data (the content-dependent kernel network's input).

// UpsampleNearest enlarges N x C x H x W to N x C x H*r x W*r, each pixel
// repeated r x r times (F.interpolate(x, scale_factor=r, mode='nearest');
// kernels.UpsampleNearestRef).
func (g *Graph) UpsampleNearest(x *G.Node, r int) *G.Node {
	n, c, h, w, ok := g.shape4("upsample", x)
	if !ok {
		return nil
	}
	if r < 1 {
		g.fail(fmt.Errorf("model: nearest upsampling by %d", r))
		return nil
	}
	planes := n * c
	return g.apply(&kop{
		name:     fmt.Sprintf("upsample-nearest(%d)", r),
		outShape: tensor.Shape{n, c, h * r, w * r},
		f32:      func(out []float32, in [][]float32) { kernels.UpsampleNearest(planes, h, w, r, out, in[0]) },
		f64:      func(out []float64, in [][]float64) { kernels.UpsampleNearest(planes, h, w, r, out, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     fmt.Sprintf("upsample-nearest-dx(%d)", r),
				outShape: in[0].Shape(),
				f32:      func(o []float32, v [][]float32) { kernels.UpsampleNearestBackward(planes, h, w, r, o, v[0]) },
				f64:      func(o []float64, v [][]float64) { kernels.UpsampleNearestBackward(planes, h, w, r, o, v[0]) },
			}, dy)}, g.err
		},
	}, x)
}

// PixelUnshuffle rearranges N x C x H*r x W*r into N x C*r*r x H x W, the
// inverse of PixelShuffle (PyTorch's pixel_unshuffle; BasicSR's RRDBNet
// starts with it at x2). H and W must be multiples of r.
func (g *Graph) PixelUnshuffle(x *G.Node, r int) *G.Node {
	n, c, hr, wr, ok := g.shape4("pixelunshuffle", x)
	if !ok {
		return nil
	}
	if r < 1 || hr%r != 0 || wr%r != 0 {
		g.fail(fmt.Errorf("model: pixel unshuffle by %d of a %dx%d input (the sides must be multiples of %d)", r, hr, wr, r))
		return nil
	}
	h, w := hr/r, wr/r
	return g.apply(&kop{
		name:     fmt.Sprintf("pixelunshuffle-fwd(%d)", r),
		outShape: tensor.Shape{n, c * r * r, h, w},
		f32:      func(out []float32, in [][]float32) { kernels.PixelUnshuffle(n, c, h, w, r, out, in[0]) },
		f64:      func(out []float64, in [][]float64) { kernels.PixelUnshuffle(n, c, h, w, r, out, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.PixelShuffle(dy, r)}, g.err
		},
	}, x)
}

// MaxPool2 is a 2x2 max-pool of stride 2 (MaxPool2d(2, 2),
// kernels.MaxPool2Ref): N x C x H x W to N x C x H/2 x W/2.
func (g *Graph) MaxPool2(x *G.Node) *G.Node {
	n, c, h, w, ok := g.shape4("maxpool", x)
	if !ok {
		return nil
	}
	if h < 2 || w < 2 {
		g.fail(fmt.Errorf("model: 2x2 max-pool of a %dx%d input", h, w))
		return nil
	}
	planes := n * c
	return g.apply(&kop{
		name:     "maxpool2",
		outShape: tensor.Shape{n, c, h / 2, w / 2},
		f32:      func(out []float32, in [][]float32) { kernels.MaxPool2(planes, h, w, out, in[0]) },
		f64:      func(out []float64, in [][]float64) { kernels.MaxPool2(planes, h, w, out, in[0]) },
		grad: func(g *Graph, in G.Nodes, out, dy *G.Node, diff []bool) (G.Nodes, error) {
			return G.Nodes{g.apply(&kop{
				name:     "maxpool2-dx",
				outShape: in[0].Shape(),
				f32:      func(o []float32, v [][]float32) { kernels.MaxPool2Backward(planes, h, w, o, v[0], v[1]) },
				f64:      func(o []float64, v [][]float64) { kernels.MaxPool2Backward(planes, h, w, o, v[0], v[1]) },
			}, in[0], dy)}, g.err
		},
	}, x)
}

// ResizeData resizes N x C x H x W to N x C x oh x ow by MATLAB's bicubic
// imresize (kernels.ResizeBicubicRef). It has no gradient: its input must
// be data (an input of the graph, such as the HR batch), and the graph
// fails if it depends on a trained parameter.
func (g *Graph) ResizeData(x *G.Node, oh, ow int) *G.Node {
	n, c, h, w, ok := g.shape4("resize", x)
	if !ok {
		return nil
	}
	if oh < 1 || ow < 1 {
		g.fail(fmt.Errorf("model: resize of %dx%d to %dx%d", h, w, oh, ow))
		return nil
	}
	if g.needs[x] {
		g.fail(fmt.Errorf("model: resize: the input depends on a trained parameter, and ResizeData has no gradient"))
		return nil
	}
	planes := n * c
	return g.apply(&kop{
		name:     fmt.Sprintf("resize-bicubic(%dx%d)", oh, ow),
		outShape: tensor.Shape{n, c, oh, ow},
		diff:     []bool{false},
		f32:      func(out []float32, in [][]float32) { kernels.ResizeBicubic(planes, h, w, oh, ow, out, in[0]) },
		f64:      func(out []float64, in [][]float64) { kernels.ResizeBicubic(planes, h, w, oh, ow, out, in[0]) },
	}, x)
}
