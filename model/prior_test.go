package model

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/gradcheck"
	"github.com/pdmflow/pdmflow/kernels"
)

// priorModule holds one learnable tensor "x" with the given values.
func priorModule(dt tensor.Dtype, vals []float64, shape ...int) (*Module, *Param) {
	m := NewModule("m", dt)
	return m, m.add("x", true, vals, shape...)
}

func randVals(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = 2*r.Float64() - 1
	}
	return v
}

// evalPrior builds build(x) in dt over a parameter x holding vals and
// returns the loss and its gradient for x, as float64.
func evalPrior(t *testing.T, dt tensor.Dtype, vals []float64, shape []int, build func(g *Graph, x *G.Node) *G.Node) (float64, []float64) {
	t.Helper()
	m, p := priorModule(dt, vals, shape...)
	g := NewGraph(dt)
	defer g.Close()
	g.Train(m)
	loss := build(g, g.Param(p))
	g.Backward(loss)
	if err := g.Err(); err != nil {
		t.Fatalf("build: %v", err)
	}
	if err := g.Run(nil); err != nil {
		t.Fatalf("run: %v", err)
	}
	var grad []float64
	switch d := g.Grad(p).Data().(type) {
	case []float64:
		grad = append(grad, d...)
	case []float32:
		for _, v := range d {
			grad = append(grad, float64(v))
		}
	}
	return Scalar(loss), grad
}

// checkPrior gradient-checks build(x) in float64 at vals, then compares
// the float32 graph's loss and gradient with the float64 graph's: relative
// error of the loss at most tol32, of each gradient element at most tol32
// of the largest gradient element.
func checkPrior(t *testing.T, name string, vals []float64, shape []int, build func(g *Graph, x *G.Node) *G.Node, o gradcheck.Options, tol32 float64) {
	t.Helper()
	m, p := priorModule(tensor.Float64, vals, shape...)
	checkGraph(t, name, m, nil, func(g *Graph) *G.Node { return build(g, g.Param(p)) }, o)
	l64, g64 := evalPrior(t, tensor.Float64, vals, shape, build)
	l32, g32 := evalPrior(t, tensor.Float32, vals, shape, build)
	if e := math.Abs(l32-l64) / math.Max(math.Abs(l64), 1e-12); e > tol32 {
		t.Errorf("%s: loss float32 %.9g float64 %.9g (relative error %.3g > %.3g)", name, l32, l64, e, tol32)
	}
	scale := 0.0
	for _, v := range g64 {
		scale = math.Max(scale, math.Abs(v))
	}
	if scale == 0 {
		t.Fatalf("%s: zero gradient", name)
	}
	for i := range g64 {
		if e := math.Abs(g32[i]-g64[i]) / scale; e > tol32 {
			t.Fatalf("%s: gradient[%d] float32 %.9g float64 %.9g (error %.3g of the largest %.3g > %.3g)", name, i, g32[i], g64[i], e, scale, tol32)
		}
	}
}

// TestKernelPriorGradients checks KernelSmooth, KernelRadius and
// ModeSeeking, on kernels made by a softmax over random logits (as the
// kernel network makes them), spatially invariant (N x ks*ks) and variant
// (N x ks*ks x h x w), against central differences in float64 and the
// float32 graph against the float64 one.
func TestKernelPriorGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	const ks = 5
	dz := 0.9
	for _, shape := range [][]int{{4, ks * ks}, {2, ks * ks, 3, 2}} {
		size := 1
		for _, s := range shape {
			size *= s
		}
		vals := randVals(r, size)
		for i := range vals {
			vals[i] *= 2
		}
		for _, tc := range []struct {
			name  string
			build func(g *Graph, k *G.Node) *G.Node
			o     gradcheck.Options
			tol32 float64
		}{
			// Weights that make the gradients about 0.1-1, where
			// gradcheck's error is relative.
			{"smooth", func(g *Graph, k *G.Node) *G.Node { return g.KernelSmooth(k, ks, 300) }, gradcheck.Options{Tol: 3e-7}, 1e-5},
			{"radius", func(g *Graph, k *G.Node) *G.Node { return g.KernelRadius(k, ks, 2, 1.5, 0.7, 40) }, gradcheck.Options{Tol: 3e-7}, 1e-5},
			// The loss is about weight/ratio, large for kernels: a smaller
			// step.
			{"modeseeking", func(g *Graph, k *G.Node) *G.Node { return g.ModeSeeking(k, &dz, 1, 1e-5) }, gradcheck.Options{Eps: 1e-7, Tol: 2e-6}, 1e-4},
			{"all", func(g *Graph, k *G.Node) *G.Node {
				return g.Sum(g.KernelSmooth(k, ks, 300), g.KernelRadius(k, ks, 2, 2, 0, 10), g.ModeSeeking(k, &dz, 0.1, 1e-5))
			}, gradcheck.Options{Eps: 1e-7, Tol: 2e-6}, 1e-4},
		} {
			name := fmt.Sprint(tc.name, shape)
			checkPrior(t, name, vals, shape, func(g *Graph, x *G.Node) *G.Node { return tc.build(g, g.Softmax(x)) }, tc.o, tc.tol32)
		}
	}
}

// TestKernelPriorValues pins the graph ops to hand-computed values on tiny
// kernels (the kernels package's functions are tested on their own).
func TestKernelPriorValues(t *testing.T) {
	at := func(vals []float64, shape []int, build func(g *Graph, x *G.Node) *G.Node) float64 {
		l, _ := evalPrior(t, tensor.Float64, vals, shape, build)
		return l
	}
	// 3x3 centre delta: four unit differences, times weight 0.5.
	delta := []float64{0, 0, 0, 0, 1, 0, 0, 0, 0}
	if got := at(delta, []int{1, 9}, func(g *Graph, k *G.Node) *G.Node { return g.KernelSmooth(k, 3, 0.5) }); got != 2 {
		t.Errorf("smooth of a delta: %g, want 2", got)
	}
	// The same as a 1 x 9 x 1 x 2 spatial kernel map (both pixels the
	// delta): the mean over the two kernels is the same.
	sp := make([]float64, 18)
	sp[8], sp[9] = 1, 1
	if got := at(sp, []int{1, 9, 1, 2}, func(g *Graph, k *G.Node) *G.Node { return g.KernelSmooth(k, 3, 0.5) }); got != 2 {
		t.Errorf("smooth of a spatial delta: %g, want 2", got)
	}
	// A corner delta (2, 2) around (1, 1) with r0 0.5: (sqrt 2 - 0.5)^2.
	corner := []float64{0, 0, 0, 0, 0, 0, 0, 0, 1}
	want := 2 * (math.Sqrt2 - 0.5) * (math.Sqrt2 - 0.5)
	if got := at(corner, []int{1, 9}, func(g *Graph, k *G.Node) *G.Node { return g.KernelRadius(k, 3, 1, 1, 0.5, 2) }); math.Abs(got-want) > 1e-15 {
		t.Errorf("radius of a corner delta: %.17g, want %.17g", got, want)
	}
	// Mode seeking: samples (0, 1) and (1, 3): D = 1.5; Dz 0.5: ratio 3.
	dz := 0.5
	if got := at([]float64{0, 1, 1, 3}, []int{2, 2}, func(g *Graph, k *G.Node) *G.Node { return g.ModeSeeking(k, &dz, 2, 0.01) }); math.Abs(got-2/3.01) > 1e-15 {
		t.Errorf("mode seeking: %g, want %g", got, 2/3.01)
	}
}

// TestModeSeekingReadsDz: the op reads the latent distance each time the
// graph runs, as the trainer sets it each step.
func TestModeSeekingReadsDz(t *testing.T) {
	m, p := priorModule(tensor.Float32, []float64{0, 1, 1, 3}, 2, 2)
	g := NewGraph(tensor.Float32)
	defer g.Close()
	g.Train(m)
	var dz float64
	loss := g.ModeSeeking(g.Param(p), &dz, 1, 0.01)
	g.Backward(loss)
	for _, tc := range []struct{ dz, want, wantGrad0 float64 }{
		// D 1.5, 2 pairs' values: dD/dk0 = -1/2 (k0 < k2).
		{0.5, 1 / 3.01, -1 / (0.5 * 3.01 * 3.01) * -0.5},
		{1.5, 1 / 1.01, -1 / (1.5 * 1.01 * 1.01) * -0.5},
		{0, 0, 0}, // no latent distance: off
	} {
		dz = tc.dz
		if err := g.Run(nil); err != nil {
			t.Fatal(err)
		}
		gr := g.Grad(p).Data().([]float32)
		if math.Abs(Scalar(loss)-tc.want) > 1e-6 || math.Abs(float64(gr[0])-tc.wantGrad0) > 1e-6 {
			t.Errorf("dz %g: loss %g grad[0] %g, want %g and %g", tc.dz, Scalar(loss), gr[0], tc.want, tc.wantGrad0)
		}
	}
}

func TestPriorOpsRefuse(t *testing.T) {
	dz := 1.0
	for _, tc := range []struct {
		name  string
		shape []int
		build func(g *Graph, x *G.Node) *G.Node
		want  string
	}{
		{"smooth-taps", []int{2, 16}, func(g *Graph, x *G.Node) *G.Node { return g.KernelSmooth(x, 5, 1) }, "want N x 25"},
		{"smooth-3d", []int{2, 25, 3}, func(g *Graph, x *G.Node) *G.Node { return g.KernelSmooth(x, 5, 1) }, "N x 25 x h x w"},
		{"radius-taps", []int{2, 9, 2, 2}, func(g *Graph, x *G.Node) *G.Node { return g.KernelRadius(x, 5, 2, 2, 1, 1) }, "want N x 25"},
		{"radius-r0", []int{2, 25}, func(g *Graph, x *G.Node) *G.Node { return g.KernelRadius(x, 5, 2, 2, -1, 1) }, "negative"},
		{"modeseeking-odd", []int{3, 25}, func(g *Graph, x *G.Node) *G.Node { return g.ModeSeeking(x, &dz, 1, 1e-5) }, "even"},
		{"modeseeking-nil", []int{2, 25}, func(g *Graph, x *G.Node) *G.Node { return g.ModeSeeking(x, nil, 1, 1e-5) }, "latent distance"},
		{"modeseeking-eps", []int{2, 25}, func(g *Graph, x *G.Node) *G.Node { return g.ModeSeeking(x, &dz, 1, 0) }, "eps"},
		{"minibatchstd-2d", []int{2, 25}, func(g *Graph, x *G.Node) *G.Node { return g.MinibatchStd(x) }, "N x C x H x W"},
	} {
		m, p := priorModule(tensor.Float64, make([]float64, tensor.Shape(tc.shape).TotalSize()), tc.shape...)
		g := NewGraph(tensor.Float64)
		g.Train(m)
		if out := tc.build(g, g.Param(p)); out != nil || g.Err() == nil || !strings.Contains(g.Err().Error(), tc.want) {
			t.Errorf("%s: node %v, error %v; want an error containing %q", tc.name, out, g.Err(), tc.want)
		}
	}
}

func TestLatentPairDistance(t *testing.T) {
	// n 2, f 2: |0-1| + |0-2| over 2.
	if got := LatentPairDistance([]float32{0, 0, 1, 2}, 2); got != 1.5 {
		t.Errorf("%g, want 1.5", got)
	}
	// n 4: pairs (0,2) and (1,3).
	if got := LatentPairDistance([]float32{0, 5, 1, 5}, 4); got != 0.5 {
		t.Errorf("%g, want 0.5", got)
	}
	// Standard normal latents: E|z_i - z_j| = 2/sqrt(pi).
	r := rand.New(rand.NewPCG(1, 2))
	z := make([]float32, 64*1000)
	for i := range z {
		z[i] = float32(r.NormFloat64())
	}
	if got, want := LatentPairDistance(z, 64), 2/math.Sqrt(math.Pi); math.Abs(got-want) > 0.02*want {
		t.Errorf("normal latents: %g, want about %g", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("an odd batch was accepted")
		}
	}()
	LatentPairDistance(make([]float32, 6), 3)
}

// TestMinibatchStdOp checks the op's value on a tiny batch, then its
// gradient through a convolution (so the extra channel's gradient varies
// over the plane) against central differences, and float32 against
// float64.
func TestMinibatchStdOp(t *testing.T) {
	out := func(vals []float64, shape ...int) []float64 {
		_, p := priorModule(tensor.Float64, vals, shape...)
		g := NewGraph(tensor.Float64)
		defer g.Close()
		y := g.MinibatchStd(g.Param(p))
		g.Keep(y)
		if err := g.Run(nil); err != nil {
			t.Fatal(err)
		}
		if !y.Shape().Eq(tensor.Shape{shape[0], shape[1] + 1, shape[2], shape[3]}) {
			t.Fatalf("shape %v for input %v", y.Shape(), shape)
		}
		return append([]float64(nil), Float64s(y)...)
	}
	s := math.Sqrt(1 + 1e-8)
	if got, want := out([]float64{1, 3}, 2, 1, 1, 1), []float64{1, s, 3, s}; !equalFloats(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	r := rand.New(rand.NewPCG(33, 34))
	const n, c, h, w = 3, 2, 4, 3
	wv := randVals(r, 2*(c+1)*9)
	checkPrior(t, "minibatchstd", randVals(r, n*c*h*w), []int{n, c, h, w}, func(g *Graph, x *G.Node) *G.Node {
		wt := g.Param(constParam(g.Dtype(), "w", wv, 2, c+1, 3, 3))
		y := g.Conv(g.MinibatchStd(x), wt, nil, 1, 1, kernels.Act{})
		return g.MeanSquare(y, 0.3, 1)
	}, gradcheck.Options{Tol: 1e-7}, 1e-5)
}

// constParam is a fixed (not learnable) weight for a test graph.
func constParam(dt tensor.Dtype, name string, vals []float64, shape ...int) *Param {
	return NewModule("c", dt).add(name, false, vals, shape...)
}

func equalFloats(a, b []float64) bool {
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

// TestDiscriminatorDefaultUnchanged pins the discriminator without
// batch_std: the parameter names and shapes of the paper's size, and the
// parameters and output of a small one, as they were before BatchStd
// existed.
func TestDiscriminatorDefaultUnchanged(t *testing.T) {
	d, err := NewDiscriminator(DiscConfig{NF: 64, Out: 64, Stride: 2}, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"disc.conv0.weight [64 3 3 3]", "disc.conv0.bias [64]",
		"disc.conv1.weight [128 64 3 3]", "disc.conv1.bias [128]",
		"disc.conv2.weight [256 128 3 3]", "disc.conv2.bias [256]",
		"disc.conv3.weight [512 256 3 3]", "disc.conv3.bias [512]",
		"disc.conv4.weight [64 512 3 3]", "disc.conv4.bias [64]",
	}
	var got []string
	for _, p := range d.M.Params() {
		got = append(got, fmt.Sprint(p.Name, " ", []int(p.Value.Shape())))
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("parameters\n%s\nwant\n%s", strings.Join(got, "; "), strings.Join(want, "; "))
	}
	// Values recorded from the discriminator before batch_std was added.
	small, err := NewDiscriminator(DiscConfig{NF: 3, Out: 2, Stride: 2}, tensor.Float64, 7)
	if err != nil {
		t.Fatal(err)
	}
	sums := []float64{0.46308593229286232, -0.28178189758053407, 7.5337776549603772, -0.4005681980030642,
		-12.239468986609994, -1.7750489458540091, 16.909270113975591, 0.48015779119241325,
		-5.1732982163753567, -0.036721288281841361}
	for i, p := range small.M.Params() {
		var s float64
		for j, v := range p.Value.Data().([]float64) {
			s += v * float64(j%7+1)
		}
		if math.Abs(s-sums[i]) > 1e-14*math.Max(1, math.Abs(sums[i])) {
			t.Errorf("%s: weighted sum %.17g, was %.17g", p.Name, s, sums[i])
		}
	}
	outs := []float64{-0.43920909212798998, -0.67405971491373262, 0.17284739601656979, -0.47146020652128556,
		-0.47570147848975597, -0.14937341165599408, 0.058165406594486858, -0.085129504144616147,
		0.18329363948354294, -0.62786056147137947, -0.37886572442545208, -0.084577678960425728,
		-0.47770413339247142, -0.40211087236890208, 0.46357858874927516, -0.30703482368015456}
	y := discOut(t, small, randDense(rand.New(rand.NewPCG(1, 2)), 2, 3, 8, 8))
	for i, v := range y {
		if math.Abs(v-outs[i]) > 1e-12 {
			t.Fatalf("output[%d] %.17g, was %.17g", i, v, outs[i])
		}
	}
}

func discOut(t *testing.T, d *Discriminator, x *tensor.Dense) []float64 {
	t.Helper()
	g := NewGraph(tensor.Float64)
	defer g.Close()
	y := d.Forward(g, g.Input("x", x.Shape()...))
	g.Keep(y)
	if err := g.Run(map[string]*tensor.Dense{"x": x}); err != nil {
		t.Fatal(err)
	}
	return append([]float64(nil), Float64s(y)...)
}

// TestDiscriminatorBatchStd: with batch_std the last convolution has one
// more input channel, the other layers are those of the plain
// discriminator of the same seed, a sample's output depends on the rest of
// its batch, and the discriminator loss's gradient is right.
func TestDiscriminatorBatchStd(t *testing.T) {
	cfg := DiscConfig{NF: 3, Out: 2, Stride: 2}
	plain, err := NewDiscriminator(cfg, tensor.Float64, 7)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BatchStd = true
	d, err := NewDiscriminator(cfg, tensor.Float64, 7)
	if err != nil {
		t.Fatal(err)
	}
	pp, dp := plain.M.Params(), d.M.Params()
	if len(pp) != len(dp) {
		t.Fatalf("%d and %d parameters", len(pp), len(dp))
	}
	for i, p := range dp {
		if p.Name != pp[i].Name {
			t.Fatalf("parameter %d: %s, plain %s", i, p.Name, pp[i].Name)
		}
		if p.Name == "disc.conv4.weight" {
			if !p.Value.Shape().Eq(tensor.Shape{2, 25, 3, 3}) {
				t.Errorf("%s: shape %v, want (2, 25, 3, 3)", p.Name, p.Value.Shape())
			}
			continue
		}
		if p.Name != "disc.conv4.bias" && !equalFloats(p.Value.Data().([]float64), pp[i].Value.Data().([]float64)) {
			t.Errorf("%s differs from the plain discriminator's", p.Name)
		}
	}
	r := rand.New(rand.NewPCG(35, 36))
	x := randDense(r, 3, 3, 8, 8)
	y := discOut(t, d, x)
	x2 := x.Clone().(*tensor.Dense)
	xs := x2.Data().([]float64)
	for i := 2 * 3 * 64; i < len(xs); i++ {
		xs[i] = 2*r.Float64() - 1 // change the last sample only
	}
	y2 := discOut(t, d, x2)
	per := len(y) / 3
	if equalFloats(y[:per], y2[:per]) {
		t.Error("with batch_std, the first sample's output does not depend on the others")
	}
	if p2, p1 := discOut(t, plain, x2), discOut(t, plain, x); !equalFloats(p1[:per], p2[:per]) {
		t.Error("without batch_std, the first sample's output depends on the others")
	}
	feeds := map[string]*tensor.Dense{"real": randDense(r, 2, 3, 8, 8), "fake": randDense(r, 2, 3, 8, 8)}
	checkGraph(t, "disc-batchstd", d.M, feeds, func(g *Graph) *G.Node {
		real := d.Forward(g, g.Input("real", 2, 3, 8, 8))
		fake := d.Forward(g, g.Input("fake", 2, 3, 8, 8))
		return g.Sum(g.MeanSquare(real, 1, 0.5), g.MeanSquare(fake, 0, 0.5))
	}, gradcheck.Options{Samples: 20})
}

// TestDiscriminatorBatchStdWeights: the config records batch_std, and
// weights of a discriminator with it and without it do not load into each
// other.
func TestDiscriminatorBatchStdWeights(t *testing.T) {
	b, _ := json.Marshal(DiscConfig{NF: 4, Out: 3, Stride: 1, BatchStd: true})
	if !strings.Contains(string(b), `"batch_std":true`) {
		t.Errorf("config JSON %s", b)
	}
	build := func(batchStd bool, seed uint64) *Discriminator {
		d, err := NewDiscriminator(DiscConfig{NF: 4, Out: 3, Stride: 1, BatchStd: batchStd}, tensor.Float32, seed)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	file := func(d *Discriminator) *WeightsFile {
		raw, err := EncodeWeights(KindCheckpoint, d.Cfg, nil, nil, d.M)
		if err != nil {
			t.Fatal(err)
		}
		w, err := DecodeWeights("ckpt", raw, KindCheckpoint)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	for _, with := range []bool{false, true} {
		w := file(build(with, 1))
		var cfg DiscConfig
		if err := w.Config(&cfg); err != nil || cfg.BatchStd != with {
			t.Errorf("recorded config %+v (%v), want batch_std %v", cfg, err, with)
		}
		other := build(!with, 2)
		err := other.Load(w)
		if err == nil || !strings.Contains(err.Error(), "batch_std") {
			t.Errorf("weights with batch_std %v into a discriminator with %v: %v", with, !with, err)
		} else {
			t.Logf("refused: %v", err)
		}
		if err := w.Load(other.M); err == nil {
			t.Errorf("WeightsFile.Load: weights with batch_std %v loaded into a discriminator with %v", with, !with)
		}
		same := build(with, 3)
		if err := same.Load(w); err != nil {
			t.Fatalf("batch_std %v: %v", with, err)
		}
		src := build(with, 1)
		for i, p := range same.M.Params() {
			a, b := p.Value.Data().([]float32), src.M.Params()[i].Value.Data().([]float32)
			for j := range a {
				if a[j] != b[j] {
					t.Fatalf("%s[%d]: loaded %g, saved %g", p.Name, j, a[j], b[j])
				}
			}
		}
	}
}
