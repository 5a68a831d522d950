package model

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
	"github.com/pdmflow/pdmflow/internal/safetensors"
	"github.com/pdmflow/pdmflow/pth"
)

// vggFixture reads testdata/vgg19_small.io.safetensors (make_vgg_fixture.py):
// the images x and y, PyTorch's conv5_4 features of x and the perceptual
// loss between them, in float64.
func vggFixture(t *testing.T) map[string]safetensors.Tensor {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vgg19_small.io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]safetensors.Tensor{}
	for _, ts := range f.Tensors {
		m[ts.Name] = ts
	}
	return m
}

func denseOf(t *testing.T, ts safetensors.Tensor, dt tensor.Dtype) *tensor.Dense {
	t.Helper()
	v, err := ts.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	if dt == tensor.Float64 {
		return tensor.New(tensor.WithShape(ts.Shape...), tensor.WithBacking(v))
	}
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return tensor.New(tensor.WithShape(ts.Shape...), tensor.WithBacking(f))
}

// TestVGGAgainstPyTorch: a reduced VGG19 with random weights
// (make_vgg_fixture.py; torchvision's layout and names, with a classifier
// to ignore), read from its .pth and from safetensors, gives PyTorch's
// conv5_4 features (before the ReLU, ImageNet-normalised input) of a
// photograph crop and the perceptual L1 between two crops within 1e-5, in
// float32 and float64.
func TestVGGAgainstPyTorch(t *testing.T) {
	io := vggFixture(t)
	want, _ := io["fx"].Float64s()
	wantLoss, _ := io["loss"].Float64s()
	for _, file := range []string{"vgg19_small.pth", "vgg19_small.safetensors"} {
		for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
			v, err := LoadVGG19(filepath.Join("testdata", file), dt)
			if err != nil {
				t.Fatal(err)
			}
			if v.Channels != [16]int{4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8} {
				t.Errorf("%s: channels %v", file, v.Channels)
			}
			g := NewGraph(dt)
			x, y := g.Input("x", 1, 3, 32, 32), g.Input("y", 1, 3, 32, 32)
			fx := v.Features(g, x)
			loss := v.Perceptual(g, x, y, 1)
			g.Keep(fx)
			if err := g.Err(); err != nil {
				t.Fatal(err)
			}
			if err := g.Run(map[string]*tensor.Dense{"x": denseOf(t, io["x"], dt), "y": denseOf(t, io["y"], dt)}); err != nil {
				t.Fatal(err)
			}
			var got []float64
			if dt == tensor.Float64 {
				got = Float64s(fx)
			} else {
				got = float64s(Float32s(fx))
			}
			if len(got) != len(want) {
				t.Fatalf("%d features, PyTorch %d", len(got), len(want))
			}
			var worst float64
			for i := range want {
				worst = max(worst, math.Abs(got[i]-want[i]))
			}
			dl := math.Abs(Scalar(loss) - wantLoss[0])
			if !(worst <= 1e-5) || !(dl <= 1e-5) {
				t.Errorf("%s %v: features within %g, loss %g against %g", file, dt, worst, Scalar(loss), wantLoss[0])
			}
			t.Logf("%s %v: features within %.2g, loss within %.2g of PyTorch", file, dt, worst, dl)
			g.Close()
		}
	}
}

// TestVGGRefusals: weights of another layout are refused, naming the
// tensor.
func TestVGGRefusals(t *testing.T) {
	f, err := pth.ReadFile(filepath.Join("testdata", "vgg19_small.pth"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(fn func(ts []pth.Tensor) []pth.Tensor) []pth.Tensor {
		ts := append([]pth.Tensor(nil), f.Tensors...)
		return fn(ts)
	}
	for _, c := range []struct {
		name string
		ts   []pth.Tensor
		want string
	}{
		{"missing", edit(func(ts []pth.Tensor) []pth.Tensor {
			var out []pth.Tensor
			for _, x := range ts {
				if x.Name != "features.34.weight" {
					out = append(out, x)
				}
			}
			return out
		}), "features.34.weight missing (conv 5_4)"},
		{"vgg16 index", edit(func(ts []pth.Tensor) []pth.Tensor {
			x := ts[0]
			x.Name = "features.17.weight"
			return append(ts, x)
		}), "features.17.weight: VGG19's features have convolutions at"},
		{"other name", edit(func(ts []pth.Tensor) []pth.Tensor {
			x := ts[0]
			x.Name = "vgg.features.0.weight"
			return append(ts, x)
		}), "vgg.features.0.weight is not part of VGG19's features"},
		{"shape", edit(func(ts []pth.Tensor) []pth.Tensor {
			for i := range ts {
				if ts[i].Name == "features.2.weight" {
					ts[i].Shape = []int{4, 5, 3, 3}
				}
			}
			return ts
		}), "features.2.weight (conv 1_2) has shape [4 5 3 3], want (out, 4, 3, 3)"},
	} {
		if _, err := NewVGG19(c.ts, tensor.Float32); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestPerceptualReachesSR: the perceptual loss of pdm-spec §4 (weight 0.05
// on the L1 of conv5_4 features) gives the SR network's weights a nonzero
// gradient that matches central differences: the official code's bug (the
// loss detaches the SR image, so the term never trains SR) is not
// reproduced. A tiny EDSR and an RRDB, the reduced VGG19, float64.
func TestPerceptualReachesSR(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	v, err := LoadVGG19(filepath.Join("testdata", "vgg19_small.pth"), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []SRConfig{
		{Arch: "edsr", Scale: 4, NF: 4, NB: 1, ResScale: 1, RGBRange: 255, Upsampler: "light"},
		{Arch: "rrdb", Scale: 4, NF: 4, NB: 1, GC: 2},
	} {
		s, err := NewSR(cfg, tensor.Float64, 9)
		if err != nil {
			t.Fatal(err)
		}
		jitter(r, 0.1, s.M)
		const n, h = 2, 4
		feeds := map[string]*tensor.Dense{"lr": randDense(r, n, 3, h, h), "hr": randDense(r, n, 3, 4*h, 4*h)}
		weight := 0.05
		build := func(g *Graph) *G.Node {
			sr := s.Forward(g, g.Input("lr", n, 3, h, h), nil)
			return v.Perceptual(g, sr, g.Input("hr", n, 3, 4*h, 4*h), weight)
		}
		// Nonzero: most parameters of every layer get a gradient.
		g := NewGraph(tensor.Float64)
		g.Train(s.M)
		g.Backward(build(g))
		if err := g.Run(feeds); err != nil {
			t.Fatal(err)
		}
		for _, p := range s.M.Params() {
			gr := g.Grad(p)
			if gr == nil {
				t.Fatalf("%s: no gradient for %s", cfg.Arch, p.Name)
			}
			var norm float64
			for _, x := range gr.Data().([]float64) {
				norm += x * x
			}
			if !(norm > 0) {
				t.Errorf("%s: the perceptual loss's gradient for %s is zero", cfg.Arch, p.Name)
			}
		}
		g.Close()
		// The check's error is relative only above 1: scale the loss (the
		// gradient is linear in the weight) so that the gradients are not
		// all far below the tolerance.
		weight = 1e4
		checkGraph(t, "perceptual-"+cfg.Arch, s.M, feeds, build, gradcheck.Options{Samples: 6, Eps: 1e-7, Tol: 1e-5})
	}
}
