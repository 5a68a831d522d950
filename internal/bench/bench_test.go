package bench

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
)

// conv is the hand count of one convolution's FLOPs: 2 * N * K * C * KH *
// KW * OH * OW, square filters and outputs.
func conv(n, c, k, kh, oh int) int64 {
	return 2 * int64(n) * int64(k) * int64(c) * int64(kh*kh) * int64(oh*oh)
}

// wantW1 counts the PDM forward pass's convolutions by hand: the kernel
// network's 1x1 convs on z_k (1x1 maps), the noise network's on the LR
// grid.
func wantW1(s Shapes) int64 {
	b, l := s.Batch, s.LR()
	kn := conv(b, s.KernelNC, s.KernelNF, 1, 1) + int64(2*s.KernelNB)*conv(b, s.KernelNF, s.KernelNF, 1, 1) +
		conv(b, s.KernelNF, s.KernelSize*s.KernelSize, 1, 1)
	nn := conv(b, 3+s.NoiseNC, s.NoiseNF, s.NoiseConv, l) + int64(2*s.NoiseNB)*conv(b, s.NoiseNF, s.NoiseNF, s.NoiseConv, l) +
		conv(b, s.NoiseNF, 3, 1, l)
	return kn + nn
}

// wantD counts one PatchGAN pass on a batch of LR images.
func wantD(s Shapes) int64 {
	b, l, f, st := s.Batch, s.LR(), s.DiscNF, s.DiscStride
	return conv(b, 3, f, 3, l) + conv(b, f, 2*f, 3, l/st) + conv(b, 2*f, 4*f, 3, l/st/st) +
		conv(b, 4*f, 8*f, 3, l/st/st) + conv(b, 8*f, s.DiscOut, 3, l/st/st)
}

// wantEDSR counts EDSR-baseline x4 with the pixel-shuffle upsampler.
func wantEDSR(s Shapes) int64 {
	b, l, f := s.Batch, s.LR(), s.SRNF
	return conv(b, 3, f, 3, l) + int64(2*s.SRNB+1)*conv(b, f, f, 3, l) +
		conv(b, f, 4*f, 3, l) + conv(b, f, 4*f, 3, 2*l) + conv(b, f, 3, 3, 4*l)
}

// wantW2 is 3x the forward convolutions of the joint step: the generator
// step (PDM, then D on the fake), the D step (D on real and on fake) and
// the SR step.
func wantW2(s Shapes) int64 { return 3 * (wantW1(s) + 3*wantD(s) + wantEDSR(s)) }

func TestConvFLOPsHandCount(t *testing.T) {
	g := model.NewGraph(tensor.Float32)
	defer g.Close()
	x := g.Input("x", 2, 3, 8, 8)
	h := g.Conv(x, g.Input("w1", 4, 3, 3, 3), nil, 1, 1, kernels.Act{})              // 2x4x8x8
	y := g.Conv(h, g.Input("w2", 5, 4, 3, 3), g.Input("b2", 5), 2, 1, kernels.Act{}) // 2x5x4x4
	if err := g.Err(); err != nil {
		t.Fatal(err)
	}
	if got := y.Shape(); !got.Eq(tensor.Shape{2, 5, 4, 4}) {
		t.Fatalf("output shape %v", got)
	}
	want := int64(2*2*4*3*3*3*8*8) + int64(2*2*5*4*3*3*4*4) // 27648 + 11520
	if got := g.ConvFLOPs(); got != want || want != 39168 {
		t.Fatalf("ConvFLOPs = %d, hand count %d", got, want)
	}
}

func TestFullSizeFLOPs(t *testing.T) {
	s := Full(32)
	p, err := model.NewPDM(s.PDMConfig(), tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pdmForwardFLOPs(p, s)
	if err != nil {
		t.Fatal(err)
	}
	if want := wantW1(s); got != want {
		t.Fatalf("W1: counted %d FLOPs, hand count %d", got, want)
	}
	t.Logf("W1 forward: %.3f GFLOP per batch of %d; W2 step: %.3f GFLOP (3x forward)", float64(got)/1e9, s.Batch, float64(wantW2(s))/1e9)
	if testing.Short() {
		return
	}
	w, err := newW2(s) // builds the full-size graphs; nothing runs
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if want := wantW2(s); w.flops != want {
		t.Fatalf("W2: counted %d FLOPs, hand count %d", w.flops, want)
	}
}

// TestWorkloadsQuick runs every workload once in the quick shapes.
func TestWorkloadsQuick(t *testing.T) {
	s := Quick()
	for _, name := range Workloads {
		t.Run(name, func(t *testing.T) {
			t0 := time.Now()
			r, err := Run(t.Context(), name, s, Options{Iters: 1, Warmup: 0, Progress: testWriter{t}})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.3f s, %.1f pairs/s, %.3f GFLOP/s (%.1f s in all)", name, r.Seconds, r.PairsPerSec, r.GFLOPS, time.Since(t0).Seconds())
			positive := func(what string, v float64) {
				t.Helper()
				if !(v > 0) || math.IsInf(v, 0) {
					t.Errorf("%s = %g, want a positive finite number", what, v)
				}
			}
			positive("seconds", r.Seconds)
			positive("pairs/s", r.PairsPerSec)
			if r.Workload != name || r.PairsPerIter <= 0 || len(r.Times) != 1 || !r.Quick {
				t.Errorf("result %+v", r)
			}
			switch name {
			case "w1", "w2":
				positive("GFLOP/s", r.GFLOPS)
				want := wantW1(s)
				if name == "w2" {
					want = wantW2(s)
				}
				if got := int64(math.Round(r.ConvGFLOP * 1e9)); got != want {
					t.Errorf("conv FLOPs %d, hand count %d", got, want)
				}
			case "w3":
				if r.Raw == nil {
					t.Fatal("no raw JetStream measurement")
				}
				positive("raw pairs/s", r.Raw.PairsPerSec)
				positive("pipeline/raw", r.Raw.Ratio)
				positive("pipeline/raw of the medians", r.Raw.MedianRatio)
				if len(r.Raw.RunRatios) != r.Iters {
					t.Errorf("%d per-run ratios for %d runs", len(r.Raw.RunRatios), r.Iters)
				}
				for i, q := range r.Raw.RunRatios {
					if want := r.Raw.Times[i] / r.Times[i]; q != want {
						t.Errorf("run %d: ratio %g, want raw/pipeline time %g", i, q, want)
					}
				}
				positive("delivery pairs/s", r.Raw.DeliveryPairsPerSec)
				positive("delivery/raw", r.Raw.DeliveryRatio)
				if r.Raw.Messages != s.Messages || r.Raw.MessageBytes <= 0 || r.PairsPerIter != s.Messages*s.MsgPairs {
					t.Errorf("raw %+v, pairs per run %d", r.Raw, r.PairsPerIter)
				}
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 3}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %g, want %g", c.in, got, c.want)
		}
	}
}

func TestParseTorch(t *testing.T) {
	out := "torch 1.13.1 threads=2 batch=32 sr=EDSR(nf=64,nb=16)\n" +
		"W1 producer forward: 299.1 ms/batch = 107.0 pairs/s\n" +
		"W2 joint train step: 4000.0 ms/step = 8.00 pairs/s\n"
	tr, err := ParseTorch(out)
	if err != nil {
		t.Fatal(err)
	}
	if tr.W1PairsPerSec != 107 || tr.W1MsPerBatch != 299.1 || tr.W2PairsPerSec != 8 || tr.W2MsPerStep != 4000 ||
		tr.Header != "torch 1.13.1 threads=2 batch=32 sr=EDSR(nf=64,nb=16)" {
		t.Fatalf("parsed %+v", tr)
	}
	if _, err := ParseTorch("torch 1.13.1\nW1 producer forward: 1 ms/batch = 2 pairs/s\n"); err == nil {
		t.Fatal("no error without the W2 line")
	}
}

// TestParseTorchGPU reads pdm_ref.py's --device cuda --w1-only output: a
// line per batch, one of them out of memory; the CPU parser does not take
// it, nor the GPU parser the CPU's output.
func TestParseTorchGPU(t *testing.T) {
	out := "torch 2.3.1+cu121 device=cuda:0 (NVIDIA H100 80GB HBM3) precision=bf16 batch=32,64,4096 eager bn=eval cudnn.benchmark=True\n" +
		"W1 producer forward cuda:0 bf16 batch 32: 1.234 ms/batch = 25931.2 pairs/s\n" +
		"W1 producer forward cuda:0 bf16 batch 64: 2.000 ms/batch = 32000.0 pairs/s\r\n" +
		"W1 producer forward cuda:0 bf16 batch 4096: out of memory\n"
	tr, err := ParseTorchGPU(out)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Device != "cuda:0" || tr.Precision != "bf16" || len(tr.W1Batches) != 3 || !strings.HasPrefix(tr.Header, "torch 2.3.1+cu121 device=cuda:0") {
		t.Fatalf("parsed %+v", tr)
	}
	if b := tr.W1At(32); b == nil || b.MsPerBatch != 1.234 || b.PairsPerSec != 25931.2 || b.Error != "" {
		t.Errorf("batch 32: %+v", b)
	}
	if b := tr.W1At(64); b == nil || b.MsPerBatch != 2 || b.PairsPerSec != 32000 {
		t.Errorf("batch 64: %+v", b)
	}
	if b := tr.W1At(4096); b == nil || b.Error != "out of memory" || b.PairsPerSec != 0 {
		t.Errorf("batch 4096: %+v", b)
	}
	if tr.W1At(128) != nil || tr.W1PairsPerSec != 0 {
		t.Errorf("a batch or a CPU figure that the output does not have: %+v", tr)
	}
	if _, err := ParseTorch(out); err == nil {
		t.Error("the CPU parser took the GPU output")
	}
	cpu := "torch 1.13.1 threads=2 batch=32 sr=EDSR(nf=64,nb=16)\n" +
		"W1 producer forward: 299.1 ms/batch = 107.0 pairs/s\n" +
		"W2 joint train step: 4000.0 ms/step = 8.00 pairs/s\n"
	if _, err := ParseTorchGPU(cpu); err == nil {
		t.Error("the GPU parser took the CPU output")
	}
	for _, bad := range []string{
		"W1 producer forward cuda:0 fp32 batch 32: 1 ms/batch = 2 pairs/s\nW1 producer forward cuda:0 tf32 batch 64: 1 ms/batch = 2 pairs/s\n",
		"W1 producer forward cuda:0 fp32 batch 32: 1 ms/batch = 2 pairs/s\nW1 producer forward cuda:0 fp32 batch 32: 1 ms/batch = 2 pairs/s\n",
		"W1 producer forward cuda:0 fp32 batch 0: 1 ms/batch = 2 pairs/s\n",
		"W1 producer forward cuda:0 fp32 batch 8: 1 ms/batch = 0.0 pairs/s\n",
	} {
		if tr, err := ParseTorchGPU(bad); err == nil {
			t.Errorf("no error for %q: %+v", bad, tr)
		}
	}
}

func TestCheckTorchCUDA(t *testing.T) {
	if _, err := CheckTorchCUDA(t.Context(), "/nonexistent/python3", "cuda:0"); !errors.Is(err, ErrNoTorch) {
		t.Errorf("missing python: err = %v, want ErrNoTorch", err)
	}
	for _, dev := range []string{"cpu", "cuda:x", "gpu0"} {
		if _, err := CheckTorchCUDA(t.Context(), "/nonexistent/python3", dev); err == nil || errors.Is(err, ErrNoTorch) {
			t.Errorf("device %q: err = %v, want a usage error", dev, err)
		}
	}
}

func TestSaturatingBatch(t *testing.T) {
	bs := []DeviceBatch{{Batch: 32, PairsPerSec: 100}, {Batch: 64, PairsPerSec: 190}, {Batch: 128, PairsPerSec: 196}, {Batch: 256, PairsPerSec: 200}, {Batch: 512, Error: "out of memory"}}
	if got := SaturatingBatch(bs); got != 128 {
		t.Errorf("saturating batch %d, want 128 (196 is within 5%% of 200)", got)
	}
	if got := SaturatingBatch(nil); got != 0 {
		t.Errorf("no batches: %d", got)
	}
}

func TestCheckTorchMissingPython(t *testing.T) {
	_, err := CheckTorch(context.Background(), "/nonexistent/python3")
	if err == nil || !errors.Is(err, ErrNoTorch) {
		t.Fatalf("err = %v, want ErrNoTorch", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// TestDeviceWorkloadsQuick runs W1 and W3 through their device paths in
// the quick shapes on model.CPU (the device seam's reference): the GPU
// paths' measurement code without a GPU (see gpu_emu_test.go for the
// emulated GPU).
func TestDeviceWorkloadsQuick(t *testing.T) {
	checkDeviceWorkloads(t, model.CPU, Quick())
}

// checkDeviceWorkloads runs W1 (batches 2 and 4) and W3 on dev in the
// shapes s, and checks what the results hold.
func checkDeviceWorkloads(t *testing.T, dev model.Device, s Shapes) {
	t.Helper()
	o := Options{Iters: 1, Warmup: 1, Progress: testWriter{t}, Device: dev, DeviceBatches: []int{s.Batch, 2 * s.Batch}}
	r, err := Run(t.Context(), "w1", s, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Device != dev.Describe() || r.DeviceTag != dev.Tag() || len(r.DeviceBatches) != 2 || r.SaturatingBatch == 0 {
		t.Fatalf("w1 on %s: %+v", dev.Name(), r)
	}
	for i, b := range r.DeviceBatches {
		sb := s
		sb.Batch = b.Batch
		if b.Batch != (i+1)*s.Batch || b.Error != "" || len(b.Times) != 1 || b.Repeats != 1 {
			t.Errorf("batch %d: %+v", i, b)
		}
		if got := int64(math.Round(b.ConvGFLOP * 1e9)); got != wantW1(sb) {
			t.Errorf("batch %d: conv FLOPs %d, hand count %d", b.Batch, got, wantW1(sb))
		}
		for what, v := range map[string]float64{"pairs/s": b.PairsPerSec, "TFLOP/s": b.TFLOPS, "run TFLOP/s": b.RunTFLOPS, "host s": b.HostSeconds, "run s": b.RunSeconds} {
			if !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("batch %d: %s = %g", b.Batch, what, v)
			}
		}
		lr := s.LR()
		if want := int64(b.Batch) * int64(3*s.HR*s.HR+4*(s.KernelNC+s.NoiseNC*lr*lr)); b.UploadBytes != want {
			t.Errorf("batch %d: upload %d bytes, want %d", b.Batch, b.UploadBytes, want)
		}
		if want := 4 * int64(b.Batch) * int64(3*lr*lr+s.KernelSize*s.KernelSize+2); b.DownloadBytes != want {
			t.Errorf("batch %d: download %d bytes, want %d", b.Batch, b.DownloadBytes, want)
		}
	}
	if first := r.DeviceBatches[0]; r.PairsPerSec != first.PairsPerSec || r.PairsPerIter != s.Batch {
		t.Errorf("w1's own figures %g pairs/s of %d, the first batch's %g", r.PairsPerSec, r.PairsPerIter, first.PairsPerSec)
	}

	r, err = Run(t.Context(), "w3", s, Options{Iters: 1, Warmup: 0, Progress: testWriter{t}, Device: dev})
	if err != nil {
		t.Fatal(err)
	}
	st := r.Stages
	if st == nil || r.Raw == nil || r.Device == "" {
		t.Fatalf("w3 on %s: %+v", dev.Name(), r)
	}
	if st.Messages != s.Messages || st.PairsPerMsg != s.MsgPairs || st.TimedPairs != (s.Messages-1)*s.MsgPairs || r.PairsPerIter != st.TimedPairs {
		t.Errorf("stages %+v, pairs per run %d", st, r.PairsPerIter)
	}
	for what, v := range map[string]float64{"producer": st.ProducerPairsPerSec, "generation": st.GenerationPairsPerSec, "publish": st.PublishPairsPerSec,
		"producer MiB/s": st.ProducerMiBPerSec, "ratio": st.Ratio, "pipeline": r.Raw.PipelinePairsPerSec, "raw": r.Raw.PairsPerSec} {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("w3: %s = %g", what, v)
		}
	}
	if st.Limit != "generation" && st.Limit != "publishing" {
		t.Errorf("limit %q", st.Limit)
	}
	if r.PairsPerSec != st.ProducerPairsPerSec {
		t.Errorf("w3's own figures %g pairs/s, the producer's %g", r.PairsPerSec, st.ProducerPairsPerSec)
	}
}
