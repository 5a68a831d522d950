package producer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/internal/s3test"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

// TestSampleSeed pins the derivation: regeneration of recorded samples
// depends on it never changing.
func TestSampleSeed(t *testing.T) {
	if got := SampleSeed(1, "p0", 2, 3); got != SampleSeed(1, "p0", 2, 3) {
		t.Fatal("not deterministic")
	}
	seen := map[uint64]bool{}
	for _, args := range []struct {
		s uint64
		p string
		b uint64
		i uint32
	}{{1, "p0", 2, 3}, {2, "p0", 2, 3}, {1, "p1", 2, 3}, {1, "p0", 3, 3}, {1, "p0", 2, 4}, {1, "p", 2, 3}} {
		v := SampleSeed(args.s, args.p, args.b, args.i)
		if seen[v] {
			t.Errorf("seed collision for %+v", args)
		}
		seen[v] = true
	}
	const golden = uint64(0x9065ba029f79b20d)
	if got := SampleSeed(0, "p0", 0, 0); got != golden {
		t.Errorf("SampleSeed(0, p0, 0, 0) = %#x, want %#x: the derivation changed, and recorded samples can no longer be regenerated", got, golden)
	}
}

func testImages(t *testing.T) *dataset.Dataset {
	t.Helper()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 1))
	for i, name := range []string{"a.png", "b.png"} {
		w, h := 40+8*i, 36
		pix := make([]float32, 3*w*h)
		for j := range pix {
			pix[j] = float32(0.5 + 0.4*math.Sin(float64(j)*0.01*float64(i+1)) + 0.05*r.Float64())
		}
		if err := imageio.FromPlanarFloat(w, h, pix).Save(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := dataset.Load(dir, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type env struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	reg *registry.Registry
	st  *store.Bucket
	s3  s3test.Server
}

func setup(t *testing.T) env {
	t.Helper()
	ctx := context.Background()
	_, js := testutil.JetStream(t)
	if _, err := consumer.EnsureStream(ctx, js, consumer.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	s3 := s3test.StartWith(t, s3test.Options{KeepAlive: true})
	st, err := store.Open(ctx, "s3://"+s3.Bucket+"/w", store.Config{Endpoint: s3.Endpoint, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Insecure: true, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, err := registry.Open(ctx, js, st, "run1", nil)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, registry.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	return env{js: js, kv: kv, reg: reg, st: st, s3: s3}
}

// testPDM is the PDM config of the tests' weights.
func testPDM() *model.PDMConfig {
	return &model.PDMConfig{Scale: 4, Kernel: model.KernelConfig{Size: 7, NC: 4, NF: 8, NB: 1, Conv: 1, Init: "box"},
		Noise: model.NoiseConfig{Mode: model.NoiseMixed, NC: 2, NF: 4, NB: 1, Conv: 3}}
}

// publishContract publishes the contract cfg's producer expects, as the
// run's trainer would.
func publishContract(t *testing.T, reg *registry.Registry, cfg Config) {
	t.Helper()
	c, err := cfg.Contract()
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.PublishContract(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func pdmWeights(t *testing.T, seed uint64) []byte {
	t.Helper()
	return pdmWeightsOf(t, *testPDM(), seed)
}

func pdmWeightsOf(t *testing.T, cfg model.PDMConfig, seed uint64) []byte {
	t.Helper()
	p, err := model.NewPDM(cfg, tensor.Float32, seed)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.EncodeWeights(model.KindPDM, p.Cfg, nil, nil, p.Modules()...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lastBatch returns the newest batch of the producer's subject.
func lastBatch(t *testing.T, js jetstream.JetStream) *schema.Batch {
	t.Helper()
	s, err := js.Stream(context.Background(), "PDMFLOW_PAIRS")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), "pdmflow.pairs.run1.p0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := schema.Decode(m.Data, schema.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// putPointer moves the run's pointer by hand, as a misbehaving or racing
// publisher could.
func putPointer(t *testing.T, e env, p registry.Pointer) {
	t.Helper()
	b, _ := json.Marshal(p)
	if _, err := e.kv.Put(context.Background(), e.reg.Key(), b); err != nil {
		t.Fatal(err)
	}
}

// TestProducerHotReloadAndLastGoodWeights follows the weights pointer:
// a good new version is loaded between batches; a version whose object
// fails its hash check, and one published while S3 is down, leave the
// producer generating with its last good weights; once the object can be
// read it moves on.
func TestProducerHotReloadAndLastGoodWeights(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := e.reg.Publish(ctx, pdmWeights(t, 1), 0); err != nil {
		t.Fatal(err)
	}
	m := metrics.NewProducer(nil, "p0")
	cfg := Config{Run: "run1", ID: "p0", Seed: 5, Stream: "PDMFLOW_PAIRS", Subject: "pdmflow.pairs",
		Degradation: DegradePDM, PDM: testPDM(), HRSize: 16, BatchPairs: 2, LagBudget: 1 << 20, WeightsPoll: 50 * time.Millisecond}
	publishContract(t, e.reg, cfg)
	p, err := New(cfg, e.js, e.reg, testImages(t), nil, m)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, "batches with version 1", func() bool { return promtest.ToFloat64(m.Batches) >= 2 })
	if b := lastBatch(t, e.js); b.Pairs[0].WeightsVersion != 1 {
		t.Fatalf("rows carry weights version %d, want 1", b.Pairs[0].WeightsVersion)
	}

	// Version 2: a good publish.
	ptr2, err := e.reg.Publish(ctx, pdmWeights(t, 2), 10)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "version 2 in the rows", func() bool { return lastBatch(t, e.js).Pairs[0].WeightsVersion == 2 })
	if got := lastBatch(t, e.js).Pairs[0].WeightsSHA256; got != ptr2.SHA256 {
		t.Errorf("rows carry sha %s, want %s", got, ptr2.SHA256)
	}

	// Version 3 names an object whose bytes were tampered with.
	w3 := pdmWeights(t, 3)
	sum := sha256.Sum256(w3)
	h3 := hex.EncodeToString(sum[:])
	if err := e.st.Put(ctx, store.WeightsKey(h3), pdmWeights(t, 4)); err != nil {
		t.Fatal(err)
	}
	putPointer(t, e, registry.Pointer{Run: "run1", Version: 3, SHA256: h3, Key: store.WeightsKey(h3), Step: 20, Time: time.Now()})
	waitFor(t, "a failed reload", func() bool { return promtest.ToFloat64(m.ReloadFailures) >= 1 })
	before := promtest.ToFloat64(m.Batches)
	waitFor(t, "more batches", func() bool { return promtest.ToFloat64(m.Batches) >= before+3 })
	if v := lastBatch(t, e.js).Pairs[0].WeightsVersion; v != 2 {
		t.Fatalf("after a bad object the rows carry version %d, want 2 (the last good)", v)
	}

	// S3 goes away; the good object for version 3 cannot be read.
	e.s3.Stop()
	if err := func() error {
		_, err := store.GetVerified(ctx, e.st, store.WeightsKey(h3), h3)
		return err
	}(); err == nil {
		t.Fatal("S3 still answers after Stop")
	}
	before = promtest.ToFloat64(m.Batches)
	waitFor(t, "batches while S3 is down", func() bool { return promtest.ToFloat64(m.Batches) >= before+3 })
	if v := p.Weights().Version; v != 2 {
		t.Fatalf("weights version %d while S3 is down, want 2", v)
	}
	e.s3.Restart()
	if err := e.st.Put(ctx, store.WeightsKey(h3), w3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "version 3 once S3 is back", func() bool { return lastBatch(t, e.js).Pairs[0].WeightsVersion == 3 })
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestProducerBackpressure stalls a producer whose trainer does not
// consume, and resumes its batch sequence after a restart.
func TestProducerBackpressure(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	if _, err := e.js.CreateConsumer(ctx, "PDMFLOW_PAIRS", jetstream.ConsumerConfig{Durable: "trainer-run1", FilterSubject: "pdmflow.pairs.run1.>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Run: "run1", ID: "p0", Stream: "PDMFLOW_PAIRS", Subject: "pdmflow.pairs", Consumer: "trainer-run1",
		Degradation: DegradeBicubic, Scale: 4, HRSize: 16, BatchPairs: 2, LagBudget: 3, LagPoll: 10 * time.Millisecond}
	m := metrics.NewProducer(nil, "p0")
	p, err := New(cfg, e.js, nil, testImages(t), nil, m)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	waitFor(t, "a stall", func() bool { return promtest.ToFloat64(m.Stalls) >= 1 })
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-done
	s, _ := e.js.Stream(ctx, "PDMFLOW_PAIRS")
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Lag budget 3: the fourth message makes the lag 4 and pauses it. The
	// consumer's pending count is read over the network and can trail the
	// acks by a message, hence one of slack.
	n := info.State.Msgs
	if n < 4 || n > 5 {
		t.Errorf("%d messages in the stream, want 4 or 5 (lag budget 3)", n)
	}
	// A restarted producer continues the sequence.
	cfg.MaxBatches = 1
	cfg.LagBudget = 1 << 20
	p2, err := New(cfg, e.js, nil, testImages(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Run(ctx); err != nil {
		t.Fatal(err)
	}
	b := lastBatch(t, e.js)
	if want := fmt.Sprintf("run1/p0/%d/1", n); b.Pairs[0].BatchSeq != n || b.Pairs[1].SampleID != want {
		t.Errorf("restarted producer published batch %d (%s), want %d", b.Pairs[0].BatchSeq, b.Pairs[1].SampleID, n)
	}
	// The bicubic y_ref is what a direct bicubic downsampling of x_ref gives.
	if b.Degradation != DegradeBicubic || b.KernelSize != 0 || b.Pairs[0].Kernel != nil {
		t.Errorf("bicubic batch header %+v, kernel %v", b.Header, b.Pairs[0].Kernel)
	}
}

// TestProducerRepublishesWithoutAck: a batch whose ack never comes (as when
// a cluster's stream leader goes down with it) is published again after
// AckTimeout with the same message id, and the producer goes on once it is
// acked. A plain subscriber stands in for the stream: it swallows the first
// copy of every batch and acks the second.
func TestProducerRepublishesWithoutAck(t *testing.T) {
	b, js := testutil.JetStream(t)
	ctx := context.Background()
	if _, err := consumer.EnsureStream(ctx, js, consumer.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	sub, err := nc.Subscribe("lost.>", func(m *nats.Msg) {
		id := m.Header.Get(jetstream.MsgIDHeader)
		mu.Lock()
		seen[id]++
		n := seen[id]
		mu.Unlock()
		if n >= 2 {
			_ = m.Respond([]byte(`{"stream":"PDMFLOW_PAIRS","seq":1}`))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	m := metrics.NewProducer(nil, "p0")
	p, err := New(Config{Run: "run1", ID: "p0", Stream: "PDMFLOW_PAIRS", Subject: "lost", Degradation: DegradeBicubic,
		Scale: 4, HRSize: 16, BatchPairs: 2, MaxBatches: 2, AckTimeout: 100 * time.Millisecond}, js, nil, testImages(t), nil, m)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := p.Run(rctx); err != nil {
		t.Fatal(err)
	}
	if rctx.Err() != nil {
		t.Fatal("the producer did not finish: an unacked batch stalled it")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("message ids seen %v, want two batches", seen)
	}
	for id, n := range seen {
		if n != 2 {
			t.Errorf("batch %s published %d times, want 2 (once lost, once acked)", id, n)
		}
	}
	if v := promtest.ToFloat64(m.PublishErrors); v < 2 {
		t.Errorf("publish errors %v, want at least 2", v)
	}
	if v := promtest.ToFloat64(m.Batches); v != 2 {
		t.Errorf("acked batches %v, want 2", v)
	}
}

// TestProducerResumeSkipsForeignMessages: a restarted producer continues
// after its own last batch; messages on its subject that are not its
// batches (garbage, another producer's rows, rows that disagree with their
// headers) are skipped with a warning instead of stopping it.
func TestProducerResumeSkipsForeignMessages(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	cfg := Config{Run: "run1", ID: "p0", Stream: "PDMFLOW_PAIRS", Subject: "pdmflow.pairs",
		Degradation: DegradeBicubic, Scale: 4, HRSize: 16, BatchPairs: 2, MaxBatches: 3}
	p, err := New(cfg, e.js, nil, testImages(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	own := lastBatch(t, e.js)
	subject := "pdmflow.pairs.run1.p0"
	foreign := func(b *schema.Batch, hdr map[string]string) {
		msg := nats.NewMsg(subject)
		if b != nil {
			data, err := schema.Encode(b, schema.EncodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			msg.Data = data
		} else {
			msg.Data = []byte("stray bytes")
		}
		for k, v := range hdr {
			msg.Header.Set(k, v)
		}
		if _, err := e.js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	// Another producer's rows under headers that claim batch 90 of p0.
	other := &schema.Batch{Header: own.Header, Pairs: append([]schema.Pair(nil), own.Pairs...)}
	for i := range other.Pairs {
		other.Pairs[i].ProducerID, other.Pairs[i].BatchSeq = "p9", 90
		other.Pairs[i].SampleID = schema.FormatSampleID("run1", "p9", 90, other.Pairs[i].Index)
	}
	foreign(other, map[string]string{HeaderBatchSeq: "90", jetstream.MsgIDHeader: MsgID("run1", "p0", 0, 90)})
	// p0's rows of batch 2 under a header that says 80.
	foreign(own, map[string]string{HeaderBatchSeq: "80", jetstream.MsgIDHeader: MsgID("run1", "p0", 0, 80)})
	// The largest batch sequence there is: continuing after it is impossible.
	foreign(nil, map[string]string{HeaderBatchSeq: "18446744073709551615"})
	// Garbage without headers, last.
	foreign(nil, nil)

	cfg.MaxBatches = 1
	p2, err := New(cfg, e.js, nil, testImages(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Run(ctx); err != nil {
		t.Fatalf("a restarted producer with foreign messages on its subject: %v", err)
	}
	if b := lastBatch(t, e.js); b.Pairs[0].BatchSeq != 3 || b.Pairs[0].ProducerID != "p0" {
		t.Fatalf("the restarted producer published %s, want batch 3 of p0", b.Pairs[0].SampleID)
	}
}

// TestProducerChecksTheRunContract: a producer waits for the run's
// contract (its trainer's) and refuses to start when its own config makes
// other messages, naming both values.
func TestProducerChecksTheRunContract(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := Config{Run: "run1", ID: "p0", Stream: "PDMFLOW_PAIRS", Subject: "pdmflow.pairs",
		Degradation: DegradeBicubic, Scale: 4, HRSize: 16, BatchPairs: 2, MaxBatches: 1}
	trainer := cfg
	trainer.HRSize = 24
	publishContract(t, e.reg, trainer)
	p, err := New(cfg, e.js, e.reg, testImages(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(ctx)
	if err == nil || !errors.Is(err, registry.ErrContractMismatch) {
		t.Fatalf("a producer of HR 16 in a run of HR 24: %v, want a contract mismatch", err)
	}
	for _, m := range []string{"24x24", "16x16", "HR size"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
	s, _ := e.js.Stream(ctx, "PDMFLOW_PAIRS")
	if info, _ := s.Info(ctx); info.State.Msgs != 0 {
		t.Errorf("the refused producer published %d messages", info.State.Msgs)
	}

	// Without a contract the producer waits for one.
	e2 := setup(t)
	cfg.MaxBatches = 2
	p2, err := New(cfg, e2.js, e2.reg, testImages(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p2.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	s2, _ := e2.js.Stream(ctx, "PDMFLOW_PAIRS")
	if info, _ := s2.Info(ctx); info.State.Msgs != 0 {
		t.Fatalf("a producer published %d messages before its run had a contract", info.State.Msgs)
	}
	publishContract(t, e2.reg, cfg)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestProducerComparesWeightsConfigFirst: weights whose config is not the
// producer's own are refused before anything is built from them, with the
// difference named, and the producer waits for (or keeps) good weights.
func TestProducerComparesWeightsConfigFirst(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncWriter
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := Config{Run: "run1", ID: "p0", Seed: 5, Stream: "PDMFLOW_PAIRS", Subject: "pdmflow.pairs",
		Degradation: DegradePDM, PDM: testPDM(), HRSize: 16, BatchPairs: 2, LagBudget: 1 << 20, WeightsPoll: 50 * time.Millisecond}
	publishContract(t, e.reg, cfg)
	other := *testPDM()
	other.Kernel.NF = 12
	if _, err := e.reg.Publish(ctx, pdmWeightsOf(t, other, 1), 0); err != nil {
		t.Fatal(err)
	}
	m := metrics.NewProducer(nil, "p0")
	p, err := New(cfg, e.js, e.reg, testImages(t), log, m)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, "a refused reload", func() bool { return promtest.ToFloat64(m.ReloadFailures) >= 1 })
	if v := p.Weights().Version; v != 0 || promtest.ToFloat64(m.Batches) != 0 {
		t.Fatalf("weights of another config: in use version %d, %v batches", v, promtest.ToFloat64(m.Batches))
	}
	if s := logs.String(); !strings.Contains(s, "kernel.nf 12") || !strings.Contains(s, "8 (this producer") {
		t.Errorf("the log does not say why the weights were refused:\n%s", s)
	}
	if _, err := e.reg.Publish(ctx, pdmWeights(t, 2), 10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "batches with version 2", func() bool { return promtest.ToFloat64(m.Batches) >= 2 })
	if v := lastBatch(t, e.js).Pairs[0].WeightsVersion; v != 2 {
		t.Fatalf("rows carry weights version %d, want 2", v)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// syncWriter is a log destination safe for concurrent writes.
type syncWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestProducerStartsWithTheNewestGoodWeights: a producer that starts while
// the pointer names weights it refuses (another config) takes the newest
// good version the pointer's history holds, instead of waiting for the
// trainer to publish again (which, without pairs, it never would).
func TestProducerStartsWithTheNewestGoodWeights(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{Run: "run1", ID: "p0", Seed: 5, Stream: "PDMFLOW_PAIRS", Subject: "pdmflow.pairs",
		Degradation: DegradePDM, PDM: testPDM(), HRSize: 16, BatchPairs: 2, LagBudget: 1 << 20, MaxBatches: 2, WeightsPoll: 50 * time.Millisecond}
	publishContract(t, e.reg, cfg)
	good, err := e.reg.Publish(ctx, pdmWeights(t, 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	other := *testPDM()
	other.Noise.NF = 7
	for i := 0; i < 3; i++ {
		if _, err := e.reg.Publish(ctx, pdmWeightsOf(t, other, uint64(10+i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	m := metrics.NewProducer(nil, "p0")
	p, err := New(cfg, e.js, e.reg, testImages(t), nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		t.Fatalf("a producer started while the pointer names weights of another config: %v", err)
	}
	if v := lastBatch(t, e.js).Pairs[0].WeightsVersion; v != good.Version {
		t.Fatalf("rows carry weights version %d, want %d (the newest of its config)", v, good.Version)
	}
}
