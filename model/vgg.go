package model

import (
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/safetensors"
	"github.com/pdmflow/pdmflow/pth"
)

// VGG is VGG19's feature network up to conv5_4, before its ReLU: the
// feature extractor of PDM-SRGAN's perceptual loss (pdm-spec §4; BasicSR's
// VGGFeatureExtractor with layer conv5_4, use_input_norm, no range norm).
// Its input is an RGB batch in [0,1], normalised with the ImageNet mean and
// standard deviation; then sixteen 3x3 convolutions (padding 1) with ReLU,
// and 2x2 max-pools after conv1_2, conv2_2, conv3_4 and conv4_4; the last
// convolution, conv5_4, is taken without its ReLU.
//
// The weights are the user's (torchvision's vgg19 state dict, as .pth or
// safetensors; pdmflow downloads nothing) and are never trained. The
// network is shape-generic: the channel counts come from the weights, so a
// reduced VGG19 of the same layout works too (the tests use one).
type VGG struct {
	M        *Module // "vgg.features.N.*"
	convs    [16]conv
	Channels [16]int
}

// vggConvIndex is the index of each convolution in torchvision's
// vgg19().features; vggPoolAfter marks those followed by a max-pool
// (conv1_2, conv2_2, conv3_4, conv4_4; the pool after conv5_4 is not used).
var (
	vggConvIndex = [16]int{0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34}
	vggPoolAfter = [16]bool{1: true, 3: true, 7: true, 11: true}
)

// ImageNet normalisation of the VGG input (torchvision's).
var (
	vggMean = []float64{0.485, 0.456, 0.406}
	vggStd  = []float64{0.229, 0.224, 0.225}
)

// VGGMinSize is the smallest image side the features accept (four 2x2
// pools).
const VGGMinSize = 16

var (
	vggFeatureName = regexp.MustCompile(`^features\.([0-9]+)\.(weight|bias)$`)
	vggClassifier  = regexp.MustCompile(`^classifier\.`)
)

// LoadVGG19 reads VGG19 weights from a file (safetensors, or a PyTorch
// .pth read by package pth without running code) into a VGG with
// parameters of type dt.
func LoadVGG19(path string, dt tensor.Dtype) (*VGG, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: vgg19 weights: %w", err)
	}
	var ts []pth.Tensor
	if isSafetensors(b) {
		f, err := safetensors.Decode(b)
		if err != nil {
			return nil, fmt.Errorf("model: vgg19 weights %s: %w", path, err)
		}
		for _, t := range f.Tensors {
			ts = append(ts, pth.Tensor{Name: t.Name, DType: t.DType, Shape: t.Shape, Data: t.Data})
		}
	} else {
		f, err := pth.Decode(b)
		if err != nil {
			return nil, fmt.Errorf("model: vgg19 weights %s: %w", path, err)
		}
		ts = f.Tensors
	}
	v, err := NewVGG19(ts, dt)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return v, nil
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

// NewVGG19 builds the feature network from named tensors: torchvision's
// features.{0,2,5,...,34}.weight and .bias (the convolutions up to
// conv5_4). classifier.* is ignored; any other tensor is an error, and so
// is a missing tensor or a shape that does not continue the layout (3x3
// convolutions, the first from 3 channels, each from the previous one's
// outputs).
func NewVGG19(ts []pth.Tensor, dt tensor.Dtype) (*VGG, error) {
	byName := map[string]*pth.Tensor{}
	for i := range ts {
		t := &ts[i]
		if vggClassifier.MatchString(t.Name) {
			continue
		}
		m := vggFeatureName.FindStringSubmatch(t.Name)
		if m == nil {
			return nil, fmt.Errorf("model: vgg19 weights: tensor %s is not part of VGG19's features (want torchvision's vgg19 state dict: features.N.weight/bias)", t.Name)
		}
		idx, _ := strconv.Atoi(m[1])
		if !isVGGConv(idx) {
			return nil, fmt.Errorf("model: vgg19 weights: tensor %s: VGG19's features have convolutions at %v only (is this another VGG, or one with BatchNorm?)", t.Name, vggConvIndex)
		}
		if _, dup := byName[t.Name]; dup {
			return nil, fmt.Errorf("model: vgg19 weights: tensor %s given twice", t.Name)
		}
		byName[t.Name] = t
	}
	v := &VGG{M: NewModule("vgg", dt)}
	in := 3
	for i, idx := range vggConvIndex {
		name := fmt.Sprintf("features.%d", idx)
		w, ok := byName[name+".weight"]
		if !ok {
			return nil, fmt.Errorf("model: vgg19 weights: tensor %s.weight missing (conv %s)", name, vggLayerName(i))
		}
		if len(w.Shape) != 4 || w.Shape[0] < 1 || w.Shape[1] != in || w.Shape[2] != 3 || w.Shape[3] != 3 {
			return nil, fmt.Errorf("model: vgg19 weights: tensor %s.weight (conv %s) has shape %v, want (out, %d, 3, 3)", name, vggLayerName(i), w.Shape, in)
		}
		out := w.Shape[0]
		b, ok := byName[name+".bias"]
		if !ok {
			return nil, fmt.Errorf("model: vgg19 weights: tensor %s.bias missing (conv %s)", name, vggLayerName(i))
		}
		if len(b.Shape) != 1 || b.Shape[0] != out {
			return nil, fmt.Errorf("model: vgg19 weights: tensor %s.bias has shape %v, want (%d)", name, b.Shape, out)
		}
		wv, err := w.Float32s()
		if err != nil {
			return nil, fmt.Errorf("model: vgg19 weights: %w", err)
		}
		bv, err := b.Float32s()
		if err != nil {
			return nil, fmt.Errorf("model: vgg19 weights: %w", err)
		}
		v.convs[i] = conv{
			W:      v.M.add(name+".weight", false, float64s(wv), out, in, 3, 3),
			B:      v.M.add(name+".bias", false, float64s(bv), out),
			Stride: 1, Pad: 1,
		}
		v.Channels[i] = out
		delete(byName, name+".weight")
		delete(byName, name+".bias")
		in = out
	}
	if len(byName) > 0 {
		var extra []string
		for n := range byName {
			extra = append(extra, n)
		}
		sort.Strings(extra)
		return nil, fmt.Errorf("model: vgg19 weights: tensors %s beyond the layout", strings.Join(extra, ", "))
	}
	return v, nil
}

func isVGGConv(idx int) bool {
	for _, i := range vggConvIndex {
		if i == idx {
			return true
		}
	}
	return false
}

// vggLayerName is conv{block}_{n} of the i-th convolution.
func vggLayerName(i int) string {
	starts := []int{0, 2, 4, 8, 12, 16}
	for b := 0; b < 5; b++ {
		if i < starts[b+1] {
			return fmt.Sprintf("%d_%d", b+1, i-starts[b]+1)
		}
	}
	return "?"
}

func float64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// Features adds the conv5_4 features (before the ReLU) of x, an RGB batch
// N x 3 x H x W in [0,1] with H, W >= VGGMinSize: N x C x H/16 x W/16.
func (v *VGG) Features(g *Graph, x *G.Node) *G.Node {
	_, c, h, w, ok := g.shape4("vgg", x)
	if !ok {
		return nil
	}
	if c != 3 || h < VGGMinSize || w < VGGMinSize {
		g.fail(fmt.Errorf("model: vgg: input of shape %v; VGG takes RGB of at least %dx%d", x.Shape(), VGGMinSize, VGGMinSize))
		return nil
	}
	scale, shift := make([]float64, 3), make([]float64, 3)
	for i := range 3 {
		scale[i], shift[i] = 1/vggStd[i], -vggMean[i]/vggStd[i]
	}
	h2 := g.ChannelAffine(x, scale, shift)
	for i, cv := range v.convs {
		act := relu
		if i == len(v.convs)-1 {
			act = ident // conv5_4 before its ReLU
		}
		h2 = g.applyConv(h2, cv, act)
		if vggPoolAfter[i] {
			h2 = g.MaxPool2(h2)
		}
	}
	return h2
}

// Perceptual adds PDM-SRGAN's perceptual loss weight * mean|F(sr) - F(hr)|
// with F the conv5_4 features: the L1 criterion with weight 1 on the one
// layer, times the loss's total weight (0.05 in the official configs). The
// gradient reaches sr (the official code detaches its second argument, sr,
// so that its perceptual term never trains the SR network: pdm-spec §4).
func (v *VGG) Perceptual(g *Graph, sr, hr *G.Node, weight float64) *G.Node {
	return g.MeanAbsDiff(v.Features(g, sr), v.Features(g, hr), weight)
}
