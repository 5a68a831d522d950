package lpips

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/internal/imageio"
)

type fixture struct {
	Channels []int `json:"channels"`
	Pairs    []struct {
		A       string  `json:"a"`
		B       string  `json:"b"`
		LPIPS64 float64 `json:"lpips_float64"`
		LPIPS32 float64 `json:"lpips_float32"`
	} `json:"pairs"`
}

func loadFixture(t *testing.T) fixture {
	t.Helper()
	b, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func loadImage(t *testing.T, name string) *imageio.Image {
	t.Helper()
	im, err := imageio.Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// TestAgainstPyTorch: a reduced AlexNet (8/16/24/16/16 channels) with
// random weights, loaded from a torchvision-style .pth (zip) plus an
// alex.pth-style lin file (legacy format), and from one safetensors file,
// gives the distances make_lpips_fixture.py computed with PyTorch as the
// lpips package defines LPIPS: float32 within 1e-5 of the float64 value
// (absolute, and relative; measured: 4.4e-7 at most, PyTorch's own float32 4.9e-7), float64 within 1e-11.
func TestAgainstPyTorch(t *testing.T) {
	fx := loadFixture(t)
	for _, files := range [][]string{{"features.pth", "lin.pth"}, {"lpips.safetensors"}} {
		paths := make([]string, len(files))
		for i, f := range files {
			paths[i] = filepath.Join("testdata", f)
		}
		n, err := Load(paths...)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range fx.Channels {
			if n.Channels[i] != c {
				t.Fatalf("%v: channels %v, want %v", files, n.Channels, fx.Channels)
			}
		}
		for _, p := range fx.Pairs {
			a, b := loadImage(t, p.A), loadImage(t, p.B)
			d32, err := n.Distance(a.Pix, b.Pix, a.H, a.W)
			if err != nil {
				t.Fatal(err)
			}
			d64, err := n.distance64(a.Pix, b.Pix, a.H, a.W)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%v %s/%s %dx%d: float32 %.9f (PyTorch float32 %.9f), float64 %.12f, PyTorch float64 %.12f", files, p.A, p.B, a.W, a.H, d32, p.LPIPS32, d64, p.LPIPS64)
			if math.Abs(d32-p.LPIPS64) > 1e-5 || math.Abs(d32-p.LPIPS64) > 1e-5*p.LPIPS64 {
				t.Errorf("%v %s: float32 LPIPS %.9f, PyTorch %.9f", files, p.A, d32, p.LPIPS64)
			}
			if math.Abs(d64-p.LPIPS64) > 1e-11 {
				t.Errorf("%v %s: float64 LPIPS %.12f, PyTorch %.12f", files, p.A, d64, p.LPIPS64)
			}
		}
	}
}

// TestProperties: LPIPS of an image with itself is 0, it is symmetric, and
// a copy degraded more is farther away.
func TestProperties(t *testing.T) {
	n, err := Load("testdata/lpips.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	a := loadImage(t, "a0.png")
	if d, err := n.Distance(a.Pix, a.Pix, a.H, a.W); err != nil || d != 0 {
		t.Errorf("d(a, a) = %g, %v", d, err)
	}
	b := loadImage(t, "b0.png")
	ab, _ := n.distance64(a.Pix, b.Pix, a.H, a.W)
	ba, _ := n.distance64(b.Pix, a.Pix, a.H, a.W)
	if math.Abs(ab-ba) > 1e-12 {
		t.Errorf("d(a, b) = %g, d(b, a) = %g", ab, ba)
	}
	worse := make([]uint8, len(b.Pix))
	for i, v := range b.Pix { // b's difference from a, doubled
		worse[i] = uint8(max(0, min(255, 2*int(v)-int(a.Pix[i]))))
	}
	if aw, _ := n.distance64(a.Pix, worse, a.H, a.W); !(aw > ab) {
		t.Errorf("d(a, 2b-a) = %g is not larger than d(a, b) = %g", aw, ab)
	}
}

// TestNewRefuses: missing, misshapen and foreign tensors, and a scaling
// layer other than the lpips package's, are errors naming the tensor;
// lpips.LPIPS's own names (net.sliceK.I) and torchvision's classifier are
// accepted.
func TestNewRefuses(t *testing.T) {
	ts := map[string]Tensor{}
	for _, f := range []string{"features.pth", "lin.pth"} {
		if err := ReadTensors(filepath.Join("testdata", f), ts); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := ts["classifier.weight"]; !ok {
		t.Fatal("the fixture has no classifier to ignore")
	}
	// The lpips.LPIPS state dict's names.
	sliced := map[string]Tensor{"scaling_layer.shift": {[]int{1, 3, 1, 1}, []float32{-0.030, -0.088, -0.188}}}
	slice := map[string]string{"0": "1", "3": "2", "6": "3", "8": "4", "10": "5"}
	for k, v := range ts {
		if rest, ok := strings.CutPrefix(k, "features."); ok {
			idx, _, _ := strings.Cut(rest, ".")
			k = "net.slice" + slice[idx] + "." + rest
		}
		sliced[k] = v
	}
	if _, err := New(sliced); err != nil {
		t.Errorf("lpips.LPIPS names: %v", err)
	}
	mutate := func(f func(m map[string]Tensor)) map[string]Tensor {
		m := map[string]Tensor{}
		for k, v := range ts {
			m[k] = v
		}
		f(m)
		return m
	}
	for _, c := range []struct {
		m    map[string]Tensor
		want string
	}{
		{mutate(func(m map[string]Tensor) { delete(m, "lin3.model.1.weight") }), "lin3.model.1.weight missing"},
		{mutate(func(m map[string]Tensor) { delete(m, "features.6.bias") }), "features.6.bias missing"},
		{mutate(func(m map[string]Tensor) {
			w := m["features.3.weight"]
			m["features.3.weight"] = Tensor{[]int{16, 8, 3, 3}, w.Data[:16*8*9]}
		}), "features.3.weight has shape [16 8 3 3]"},
		{mutate(func(m map[string]Tensor) { m["features.12.weight"] = Tensor{[]int{1}, []float32{1}} }), "features.12.weight is not part"},
		{mutate(func(m map[string]Tensor) { m["scaling_layer.scale"] = Tensor{[]int{3}, []float32{1, 1, 1}} }), "scaling_layer.scale"},
	} {
		if _, err := New(c.m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want %q", err, c.want)
		}
	}
	n, err := New(ts)
	if err != nil {
		t.Fatal(err)
	}
	img := make([]uint8, 3*30*40)
	if _, err := n.Distance(img, img, 30, 40); err == nil || !strings.Contains(err.Error(), "minimum") {
		t.Errorf("a 40x30 image: %v", err)
	}
}

// TestMaxPool against hand values: 3x3 windows of stride 2, no padding.
func TestMaxPool(t *testing.T) {
	x := []float64{
		1, 2, 3, 4, 5,
		6, 7, 8, 9, 10,
		11, 12, 13, 14, 15,
		16, 17, 18, 19, 20,
		21, 22, 23, 24, 25,
		26, 27, 28, 29, 30,
	}
	y, h, w := maxPool(x, 1, 6, 5)
	if h != 2 || w != 2 || y[0] != 13 || y[1] != 15 || y[2] != 23 || y[3] != 25 {
		t.Errorf("maxPool = %v (%dx%d)", y, h, w)
	}
}
