//go:build pdmcuda || pdmcudaemu

package producer

import (
	"context"
	"errors"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/gpu"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/store"
)

// TestProducerOnGPU runs a producer whose degradation runs on a GPU (the
// host emulation in a pdmcudaemu build): its messages say which device
// made them, a new weights version is uploaded between batches, and every
// row regenerates on the CPU reference within the device's tolerance.
func TestProducerOnGPU(t *testing.T) {
	devs, err := gpu.Open("cuda:0", gpu.FP32, nil)
	if errors.Is(err, gpu.ErrNoDevice) {
		t.Skipf("no GPU to run the producer on: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dev := devs[0]
	defer dev.Close()
	tol, err := model.ToleranceFor(dev.Tag())
	if err != nil {
		t.Fatal(err)
	}
	// A directory store: the GPU check runs this where no S3 server is.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, js := testutil.JetStream(t)
	if _, err := consumer.EnsureStream(ctx, js, consumer.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, t.TempDir(), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := registry.Open(ctx, js, st, "run1", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := env{js: js, reg: reg, st: st}
	if _, err := e.reg.Publish(ctx, pdmWeights(t, 1), 0); err != nil {
		t.Fatal(err)
	}
	images := testImages(t)
	m := metrics.NewProducer(nil, "p0")
	cfg := Config{Run: "run1", ID: "p0", Seed: 5, Stream: "PDMFLOW_PAIRS", Subject: "pdmflow.pairs",
		Degradation: DegradePDM, PDM: testPDM(), HRSize: 16, BatchPairs: 3, LagBudget: 1 << 20, WeightsPoll: 50 * time.Millisecond, Device: dev}
	publishContract(t, e.reg, cfg)
	p, err := New(cfg, e.js, e.reg, images, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, "batches with version 1", func() bool { return promtest.ToFloat64(m.Batches) >= 2 })
	if _, err := e.reg.Publish(ctx, pdmWeights(t, 2), 10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "version 2 in the rows", func() bool { return lastBatch(t, e.js).Pairs[0].WeightsVersion == 2 })
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	rec := lastBatch(t, e.js)
	if rec.Header.Device != dev.Tag() {
		t.Fatalf("the message says device %q, want %q", rec.Header.Device, dev.Tag())
	}
	w, err := model.DecodeWeights("v2", pdmWeights(t, 2), model.KindPDM)
	if err != nil {
		t.Fatal(err)
	}
	pdm, err := w.PDM()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Regenerate(images, pdm, rec)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rec.Pairs {
		if d := DiffWithin(rec.Pairs[i], got.Pairs[i], tol); d != nil {
			t.Errorf("row %d beyond the %s tolerance: %v", i, dev.Tag(), d)
		}
	}
	// A row moved beyond the tolerance is caught.
	bad := rec.Pairs[0]
	bad.YRef = append([]float32(nil), bad.YRef...)
	bad.YRef[5] += float32(10 * tol.YRef)
	if DiffWithin(bad, got.Pairs[0], tol) == nil {
		t.Error("a y_ref 10x the tolerance away passed")
	}
}

// TestFixedDegradationsOnGPU generates bicubic and gaussian batches on the
// GPU; they regenerate on the CPU bit for bit (the same operations in the
// same order).
func TestFixedDegradationsOnGPU(t *testing.T) {
	devs, err := gpu.Open("cuda:0", gpu.FP32, nil)
	if errors.Is(err, gpu.ErrNoDevice) {
		t.Skipf("no GPU: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer devs[0].Close()
	images := testImages(t)
	for _, deg := range []string{DegradeBicubic, DegradeGaussian} {
		g := &generator{degradation: deg, hrSize: 16, scale: 4, kernelSize: 7, dev: devs[0]}
		b, _, err := g.generate(images, 4, batchMeta{run: "r", producer: "p", runSeed: 3}, nil)
		g.close()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Regenerate(images, nil, b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b.Pairs {
			if d := Diff(b.Pairs[i], got.Pairs[i]); d != nil {
				t.Errorf("%s row %d: %v", deg, i, d)
			}
		}
	}
}
