// Package lpips computes LPIPS (Zhang et al., CVPR 2018), the learned
// perceptual distance the PDM paper reports, with AlexNet features and the
// v0.1 linear layers, exactly as the lpips Python package's
// lpips.LPIPS(net='alex') does:
//
//  1. 8-bit RGB scaled to [-1, 1] (x/127.5 - 1), then its ScalingLayer:
//     (x - shift) / scale with shift (-0.030, -0.088, -0.188) and scale
//     (0.458, 0.448, 0.450);
//  2. torchvision's AlexNet features: conv 11x11 stride 4 pad 2, ReLU
//     (relu1), max-pool 3/2, conv 5x5 pad 2, ReLU (relu2), max-pool 3/2,
//     conv 3x3 pad 1, ReLU (relu3), conv 3x3 pad 1, ReLU (relu4), conv 3x3
//     pad 1, ReLU (relu5);
//  3. each of the five ReLU outputs divided, at every pixel, by its norm over
//     the channels plus 1e-10;
//  4. the squared difference of the two images' normalised features,
//     weighted per channel by the layer's 1x1 linear weights (no bias),
//     averaged over the pixels, and summed over the five layers.
//
// The weights are the user's: no weights ship with pdmflow. The network is
// shape-generic: channel counts are read from the weights, so a reduced
// AlexNet of the same layout works too (the tests use one). The real metric
// needs torchvision's AlexNet features (features.0, .3, .6, .8, .10) and
// the lpips package's weights/v0.1/alex.pth (lin0 ... lin4), as .pth or
// safetensors files; see Load.
package lpips

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/pdmflow/pdmflow/internal/safetensors"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/pth"
)

// The AlexNet feature convolutions, by their index in torchvision's
// alexnet().features: kernel size, stride, padding, and whether a 3x3
// stride-2 max-pool precedes them.
var layers = [5]struct {
	index, k, stride, pad int
	poolBefore            bool
}{
	{0, 11, 4, 2, false},
	{3, 5, 1, 2, true},
	{6, 3, 1, 1, true},
	{8, 3, 1, 1, false},
	{10, 3, 1, 1, false},
}

// The lpips package's ScalingLayer constants.
var (
	shift = [3]float64{-0.030, -0.088, -0.188}
	scale = [3]float64{0.458, 0.448, 0.450}
)

const normEps = 1e-10

// Net is an LPIPS network with its weights.
type Net struct {
	// Channels of the five feature layers (64, 192, 384, 256, 256 for
	// AlexNet).
	Channels [5]int
	w, b     [5][]float32 // conv weights (out, in, k, k) and biases
	lin      [5][]float32 // linear weights, one per channel
}

// Tensor is a named float32 tensor for New.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Weight names: torchvision's AlexNet features and the lpips package's
// linear layers.
func convName(i int) string { return "features." + strconv.Itoa(layers[i].index) }
func linName(i int) string  { return "lin" + strconv.Itoa(i) + ".model.1.weight" }

var (
	// lpips.LPIPS's own state dict names the features net.sliceN.I.
	sliceName = regexp.MustCompile(`^net\.slice[1-5]\.([0-9]+)\.(weight|bias)$`)
	// torchvision's AlexNet also has a classifier, which LPIPS does not use.
	classifierName = regexp.MustCompile(`^classifier\.`)
)

// New builds the network from named tensors: features.{0,3,6,8,10}.weight
// and .bias (torchvision's names; net.sliceK.I.* of an lpips.LPIPS state
// dict are accepted as the same), lin{0..4}.model.1.weight, and optionally
// scaling_layer.shift and .scale, which must be the constants above.
// torchvision's classifier.* is ignored; any other name is an error, and
// so is a shape that does not fit the layout.
func New(ts map[string]Tensor) (*Net, error) {
	canon := map[string]Tensor{}
	for name, t := range ts {
		switch {
		case classifierName.MatchString(name):
			continue
		case name == "scaling_layer.shift" || name == "scaling_layer.scale":
			want := shift
			if strings.HasSuffix(name, "scale") {
				want = scale
			}
			if len(t.Data) != 3 {
				return nil, fmt.Errorf("lpips: %s has %d values, want 3", name, len(t.Data))
			}
			for i, v := range t.Data {
				if math.Abs(float64(v)-want[i]) > 1e-6 {
					return nil, fmt.Errorf("lpips: %s = %v, not the lpips package's %v", name, t.Data, want)
				}
			}
			continue
		}
		if m := sliceName.FindStringSubmatch(name); m != nil {
			name = "features." + m[1] + "." + m[2]
		}
		if _, dup := canon[name]; dup {
			return nil, fmt.Errorf("lpips: tensor %s given twice", name)
		}
		canon[name] = t
	}
	n := &Net{}
	used := map[string]bool{}
	get := func(name string, shape ...int) ([]float32, error) {
		t, ok := canon[name]
		if !ok {
			return nil, fmt.Errorf("lpips: tensor %s missing (LPIPS needs AlexNet's features and the lin layers)", name)
		}
		used[name] = true
		want := 1
		for _, s := range shape {
			want *= s
		}
		if !equalShape(t.Shape, shape) || len(t.Data) != want {
			return nil, fmt.Errorf("lpips: tensor %s has shape %v, the layout needs %v", name, t.Shape, shape)
		}
		return t.Data, nil
	}
	in := 3
	for i, l := range layers {
		w, ok := canon[convName(i)+".weight"]
		if !ok || len(w.Shape) != 4 || w.Shape[0] < 1 {
			if !ok {
				return nil, fmt.Errorf("lpips: tensor %s.weight missing (LPIPS needs AlexNet's features and the lin layers)", convName(i))
			}
			return nil, fmt.Errorf("lpips: tensor %s.weight has shape %v, want (out, %d, %d, %d)", convName(i), w.Shape, in, l.k, l.k)
		}
		out := w.Shape[0]
		var err error
		if n.w[i], err = get(convName(i)+".weight", out, in, l.k, l.k); err != nil {
			return nil, err
		}
		if n.b[i], err = get(convName(i)+".bias", out); err != nil {
			return nil, err
		}
		if n.lin[i], err = get(linName(i), 1, out, 1, 1); err != nil {
			return nil, err
		}
		n.Channels[i] = out
		in = out
	}
	for name := range canon {
		if !used[name] {
			return nil, fmt.Errorf("lpips: tensor %s is not part of LPIPS-AlexNet", name)
		}
	}
	return n, nil
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Load reads the weights from one or more files, each safetensors or a
// PyTorch .pth (zip or legacy format, read by package pth without running
// code), merged: typically torchvision's AlexNet state dict and the lpips
// package's weights/v0.1/alex.pth, or one safetensors file holding both
// (pdmflow import --kind lpips writes one).
func Load(paths ...string) (*Net, error) {
	ts := map[string]Tensor{}
	for _, p := range paths {
		if err := readWeights(p, ts); err != nil {
			return nil, err
		}
	}
	n, err := New(ts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(paths, ", "), err)
	}
	return n, nil
}

// ReadTensors reads a safetensors or .pth file's floating-point tensors
// into ts (by name; a name already there is an error).
func ReadTensors(path string, ts map[string]Tensor) error { return readWeights(path, ts) }

func readWeights(path string, ts map[string]Tensor) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("lpips: %w", err)
	}
	add := func(name string, shape []int, v []float32) error {
		if _, dup := ts[name]; dup {
			return fmt.Errorf("lpips: %s: tensor %s is in more than one file", path, name)
		}
		ts[name] = Tensor{Shape: shape, Data: v}
		return nil
	}
	if isSafetensors(b) {
		f, err := safetensors.Decode(b)
		if err != nil {
			return fmt.Errorf("lpips: %s: %w", path, err)
		}
		for _, t := range f.Tensors {
			var v []float32
			switch t.DType {
			case safetensors.F32:
				v, err = t.Float32s()
			case safetensors.F64:
				var d []float64
				d, err = t.Float64s()
				v = make([]float32, len(d))
				for i, x := range d {
					v[i] = float32(x)
				}
			default:
				continue // integer tensors (counters) are not weights
			}
			if err != nil {
				return fmt.Errorf("lpips: %s: %w", path, err)
			}
			if err := add(t.Name, t.Shape, v); err != nil {
				return err
			}
		}
		return nil
	}
	f, err := pth.Decode(b)
	if err != nil {
		return fmt.Errorf("lpips: %s: %w", path, err)
	}
	for _, t := range f.Tensors {
		switch t.DType {
		case "F32", "F64", "F16", "BF16":
		default:
			continue
		}
		v, err := t.Float32s()
		if err != nil {
			return fmt.Errorf("lpips: %s: %w", path, err)
		}
		if err := add(t.Name, t.Shape, v); err != nil {
			return err
		}
	}
	return nil
}

// isSafetensors tells a safetensors file (an 8-byte header length, then a
// JSON object) from a .pth.
func isSafetensors(b []byte) bool {
	if len(b) < 9 {
		return false
	}
	n := binary.LittleEndian.Uint64(b)
	return n > 0 && n <= uint64(len(b)-8) && b[8] == '{'
}

// Tensors returns the network's weights under the names New reads first:
// torchvision's features.{0,3,6,8,10}.weight and .bias and the lpips
// package's lin{0..4}.model.1.weight.
func (n *Net) Tensors() map[string]Tensor {
	out := map[string]Tensor{}
	in := 3
	for i, l := range layers {
		c := n.Channels[i]
		out[convName(i)+".weight"] = Tensor{Shape: []int{c, in, l.k, l.k}, Data: n.w[i]}
		out[convName(i)+".bias"] = Tensor{Shape: []int{c}, Data: n.b[i]}
		out[linName(i)] = Tensor{Shape: []int{1, c, 1, 1}, Data: n.lin[i]}
		in = c
	}
	return out
}

// MinSize is the smallest image side the network accepts: the last
// max-pool needs a 3x3 input.
const MinSize = 31

// Distance is the LPIPS distance between two planar RGB images (3 x h x w,
// 8-bit), computed in float32 as PyTorch does.
func (n *Net) Distance(a, b []uint8, h, w int) (float64, error) {
	return distance[float32](n, a, b, h, w)
}

// distance64 is Distance in float64, for tests.
func (n *Net) distance64(a, b []uint8, h, w int) (float64, error) {
	return distance[float64](n, a, b, h, w)
}

func convert[T kernels.Float](v []float32) []T {
	out := make([]T, len(v))
	for i, x := range v {
		out[i] = T(x)
	}
	return out
}

func distance[T kernels.Float](n *Net, a, b []uint8, h, w int) (float64, error) {
	if len(a) != 3*h*w || len(b) != 3*h*w {
		return 0, fmt.Errorf("lpips: images of %d and %d values, %dx%d RGB needs %d", len(a), len(b), w, h, 3*h*w)
	}
	if h < MinSize || w < MinSize {
		return 0, fmt.Errorf("lpips: a %dx%d image is smaller than the network's %dx%d minimum", w, h, MinSize, MinSize)
	}
	// Both images as one batch of two.
	x := make([]T, 2*3*h*w)
	for i, img := range [2][]uint8{a, b} {
		for c := range 3 {
			for j, v := range img[c*h*w : (c+1)*h*w] {
				t := float64(v)/127.5 - 1
				x[(i*3+c)*h*w+j] = T((t - shift[c]) / scale[c])
			}
		}
	}
	c, hh, ww := 3, h, w
	var total float64
	for i, l := range layers {
		if l.poolBefore {
			x, hh, ww = maxPool(x, 2*c, hh, ww)
		}
		s := kernels.ConvShape{N: 2, C: c, H: hh, W: ww, K: n.Channels[i], KH: l.k, KW: l.k, Stride: l.stride, Pad: l.pad}
		if err := s.Validate(); err != nil {
			return 0, fmt.Errorf("lpips: layer %d: %w", i+1, err)
		}
		y := make([]T, 2*s.K*s.OutH()*s.OutW())
		kernels.Conv2D(s, y, x, convert[T](n.w[i]), convert[T](n.b[i]), kernels.Act{Kind: kernels.ReLU})
		x, c, hh, ww = y, s.K, s.OutH(), s.OutW()
		total += layerDistance(x, c, hh, ww, n.lin[i])
	}
	return total, nil
}

// layerDistance is one layer's term: both images' features normalised per
// pixel over the channels, squared differences weighted by lin and summed
// over the channels, averaged over the pixels. feats holds the two
// images' c x h x w maps, one after the other.
func layerDistance[T kernels.Float](feats []T, c, h, w int, lin []float32) float64 {
	hw := h * w
	f0, f1 := feats[:c*hw], feats[c*hw:2*c*hw]
	var sum float64
	for p := range hw {
		var n0, n1 float64
		for ch := range c {
			v0, v1 := float64(f0[ch*hw+p]), float64(f1[ch*hw+p])
			n0 += v0 * v0
			n1 += v1 * v1
		}
		n0, n1 = math.Sqrt(n0)+normEps, math.Sqrt(n1)+normEps
		var d float64
		for ch := range c {
			e := float64(f0[ch*hw+p])/n0 - float64(f1[ch*hw+p])/n1
			d += float64(lin[ch]) * e * e
		}
		sum += d
	}
	return sum / float64(hw)
}

// maxPool is a 3x3 max-pool of stride 2 without padding over planes
// planes of h x w (PyTorch's MaxPool2d(3, 2): output floor((h-3)/2)+1).
func maxPool[T kernels.Float](x []T, planes, h, w int) ([]T, int, int) {
	oh, ow := (h-3)/2+1, (w-3)/2+1
	y := make([]T, planes*oh*ow)
	for p := range planes {
		src := x[p*h*w : (p+1)*h*w]
		dst := y[p*oh*ow : (p+1)*oh*ow]
		for i := range oh {
			for j := range ow {
				m := src[2*i*w+2*j]
				for u := range 3 {
					for v := range 3 {
						m = max(m, src[(2*i+u)*w+2*j+v])
					}
				}
				dst[i*ow+j] = m
			}
		}
	}
	return y, oh, ow
}
