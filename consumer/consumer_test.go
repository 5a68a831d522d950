package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/schema"
)

// jsServer starts an embedded JetStream server and the pair stream.
func jsServer(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := testutil.JetStream(t)
	if _, err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return js
}

func testBatch(producer string, seq uint64, n int) *schema.Batch {
	h := schema.Header{Scale: 4, HRH: 8, HRW: 8, LRH: 2, LRW: 2, Degradation: "bicubic"}
	b := &schema.Batch{Header: h}
	for i := 0; i < n; i++ {
		b.Pairs = append(b.Pairs, schema.Pair{
			SampleID: fmt.Sprintf("r/%s/%d/%d", producer, seq, i), RunID: "r", ProducerID: producer,
			BatchSeq: seq, Index: uint32(i), Seed: uint64(i), SourceImage: "a.png", CropW: 8, CropH: 8,
			XRef: make([]uint8, 3*8*8), YRef: make([]float32, 3*2*2),
		})
	}
	return b
}

// publish publishes data with the batch sequence header a producer sets
// (the first row's, when data decodes).
func publish(t *testing.T, js jetstream.JetStream, subject string, data []byte) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	if b, err := schema.Decode(data, schema.DecodeOptions{}); err == nil {
		msg.Header.Set(schema.HeaderBatchSeq, strconv.FormatUint(b.Pairs[0].BatchSeq, 10))
	}
	publishMsg(t, js, msg)
}

func publishMsg(t *testing.T, js jetstream.JetStream, msg *nats.Msg) {
	t.Helper()
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

func encode(t *testing.T, b *schema.Batch) []byte {
	t.Helper()
	data, err := schema.Encode(b, schema.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestConsumerDedupAndBadMessages feeds good batches, a duplicate of one, a
// corrupt message and a batch of another shape, and checks what reaches the
// pool, what is counted, and that nothing bad is redelivered.
func TestConsumerDedupAndBadMessages(t *testing.T) {
	js := jsServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subj := "pdmflow.pairs.r.p0"
	good := encode(t, testBatch("p0", 0, 3))
	publish(t, js, subj, good)
	publish(t, js, subj, good)                             // the same batch again: dropped
	publish(t, js, subj, good[:len(good)/2])               // truncated: terminated
	publish(t, js, subj, []byte("not arrow"))              // garbage: terminated
	publish(t, js, subj, encode(t, testBatch("p0", 1, 2))) // good
	other := testBatch("p1", 0, 2)
	other.Header.HRH, other.Header.HRW, other.Header.LRH, other.Header.LRW = 12, 12, 3, 3
	for i := range other.Pairs {
		other.Pairs[i].XRef, other.Pairs[i].YRef = make([]uint8, 3*12*12), make([]float32, 3*3*3)
		other.Pairs[i].CropW, other.Pairs[i].CropH = 12, 12
	}
	publish(t, js, subj, encode(t, other)) // another shape than the stream's: terminated

	m := metrics.NewTrainer(nil)
	c, err := New(ctx, js, Config{Stream: "PDMFLOW_PAIRS", Durable: "t", Subject: "pdmflow.pairs.r.>", PoolPairs: 16}, State{}, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(ctx)
	got, _, err := c.Take(ctx, 5, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, e := range got {
		if ids[e.Pair.SampleID] {
			t.Errorf("sample %s taken twice", e.Pair.SampleID)
		}
		ids[e.Pair.SampleID] = true
	}
	for _, want := range []string{"r/p0/0/0", "r/p0/0/1", "r/p0/0/2", "r/p0/1/0", "r/p0/1/1"} {
		if !ids[want] {
			t.Errorf("sample %s missing from %v", want, ids)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Snapshot().Position < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if pos := c.Snapshot().Position; pos != 6 {
		t.Errorf("position %d, want 6 (every message handled)", pos)
	}
	if v := promtest.ToFloat64(m.Duplicates); v != 1 {
		t.Errorf("duplicates %v, want 1", v)
	}
	if v := promtest.ToFloat64(m.BadMessages); v != 3 {
		t.Errorf("bad messages %v, want 3", v)
	}
	// Nothing is pending redelivery: the bad ones were terminated.
	time.Sleep(100 * time.Millisecond)
	info, err := c.cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("ack pending %d, redelivered %d; want 0 and 0", info.NumAckPending, info.NumRedelivered)
	}
}

// TestConsumerResumeFromState restores a snapshot into a new consumer: the
// pool comes back, delivery starts after the position, and batches already
// seen are dropped.
func TestConsumerResumeFromState(t *testing.T) {
	js := jsServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subj := "pdmflow.pairs.r.p0"
	for s := uint64(0); s < 3; s++ {
		publish(t, js, subj, encode(t, testBatch("p0", s, 2)))
	}
	cfg := Config{Stream: "PDMFLOW_PAIRS", Durable: "t", Subject: "pdmflow.pairs.r.>", PoolPairs: 8}
	c, err := New(ctx, js, cfg, State{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cctx, stop := context.WithCancel(ctx)
	go c.Run(cctx)
	if _, _, err := c.Take(ctx, 6, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	// Return nothing: take all 6, then snapshot with an empty pool.
	st := c.Snapshot()
	stop()
	if st.Position != 3 || len(st.Pool) != 0 || len(st.Seen) != 1 || st.Seen[0] != (SeenRange{"p0", 0, 3}) {
		t.Fatalf("snapshot %+v", st)
	}
	// A republished batch 2 and a new batch 3 arrive.
	publish(t, js, subj, encode(t, testBatch("p0", 2, 2)))
	publish(t, js, subj, encode(t, testBatch("p0", 3, 2)))
	c2, err := New(ctx, js, cfg, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	go c2.Run(ctx)
	got, _, err := c2.Take(ctx, 2, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if e.Pair.BatchSeq != 3 {
			t.Errorf("got %s after resuming, want only batch 3", e.Pair.SampleID)
		}
	}
}

func TestSeqSet(t *testing.T) {
	var s seqSet
	r := rand.New(rand.NewPCG(3, 4))
	in := map[uint64]bool{}
	for i := 0; i < 2000; i++ {
		v := uint64(r.IntN(300))
		if r.IntN(5) == 0 {
			w := v + uint64(r.IntN(10))
			s.addRange(v, w)
			for x := v; x < w; x++ {
				in[x] = true
			}
		} else {
			s.add(v)
			in[v] = true
		}
	}
	for v := uint64(0); v < 320; v++ {
		if s.has(v) != in[v] {
			t.Fatalf("has(%d) = %v, want %v", v, s.has(v), in[v])
		}
	}
	for i := 1; i < len(s.ranges); i++ {
		if s.ranges[i-1][1] >= s.ranges[i][0] {
			t.Fatalf("ranges overlap or touch: %v", s.ranges)
		}
	}
}

// TestEnsureStreamKeepsOperatorSettings: a process started with defaults
// leaves an existing stream's retention and replicas alone.
func TestEnsureStreamKeepsOperatorSettings(t *testing.T) {
	_, js := testutil.JetStream(t)
	ctx := context.Background()
	if _, err := EnsureStream(ctx, js, StreamConfig{MaxBytes: 1 << 20, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	s, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxBytes != 1<<20 || info.Config.MaxAge != time.Hour {
		t.Errorf("retention became %d bytes, %v; want the operator's 1 MiB, 1h", info.Config.MaxBytes, info.Config.MaxAge)
	}
}

// TestConsumerStartSeqAndTime: a consumer with no recorded position
// starts where Config says, by sequence or by time (a replay from the
// middle of a stream), and a recorded position takes precedence.
func TestConsumerStartSeqAndTime(t *testing.T) {
	js := jsServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subj := "pdmflow.pairs.r.p0"
	for s := uint64(0); s < 2; s++ {
		publish(t, js, subj, encode(t, testBatch("p0", s, 2)))
	}
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	for s := uint64(2); s < 5; s++ {
		publish(t, js, subj, encode(t, testBatch("p0", s, 2)))
	}
	first := func(cfg Config, st State) uint64 {
		t.Helper()
		cfg.Stream, cfg.Subject, cfg.PoolPairs = "PDMFLOW_PAIRS", "pdmflow.pairs.r.>", 2
		c, err := New(ctx, js, cfg, st, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		cctx, stop := context.WithCancel(ctx)
		defer stop()
		go c.Run(cctx)
		es, _, err := c.Take(ctx, 2, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		return es[0].StreamSeq
	}
	if got := first(Config{Durable: "a", StartSeq: 4}, State{}); got != 4 {
		t.Errorf("StartSeq 4: first message %d", got)
	}
	if got := first(Config{Durable: "b", StartTime: mid}, State{}); got != 3 {
		t.Errorf("StartTime between messages 2 and 3: first message %d", got)
	}
	if got := first(Config{Durable: "c", StartSeq: 4}, State{Position: 1}); got != 2 {
		t.Errorf("a recorded position 1 with StartSeq 4: first message %d, want 2", got)
	}
}

// TestConsumerBindsRowsToMessage: a message's rows must be the batch its
// subject and headers say: rows claiming another producer's batch, another
// batch than the header's, or another run are refused (terminated and
// counted), and the real batch they claim to be is then admitted, not
// dropped as a duplicate.
func TestConsumerBindsRowsToMessage(t *testing.T) {
	js := jsServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	forged := func(b *schema.Batch) *schema.Batch {
		for i := range b.Pairs {
			b.Pairs[i].Seed = 999 // what the test looks for in the pool
		}
		return b
	}
	withSeq := func(subject string, b *schema.Batch, seq string) *nats.Msg {
		m := nats.NewMsg(subject)
		m.Data = encode(t, b)
		m.Header.Set(schema.HeaderBatchSeq, seq)
		return m
	}
	// On p0's subject: rows claiming p1's batch 0.
	publishMsg(t, js, withSeq("pdmflow.pairs.r.p0", forged(testBatch("p1", 0, 2)), "0"))
	// On p0's subject: rows of batch 4 under a header saying batch 5.
	publishMsg(t, js, withSeq("pdmflow.pairs.r.p0", forged(testBatch("p0", 4, 2)), "5"))
	// On p0's subject: no batch sequence header.
	publishMsg(t, js, &nats.Msg{Subject: "pdmflow.pairs.r.p0", Data: encode(t, forged(testBatch("p0", 6, 2)))})
	// Rows of another run on run r's subject.
	other := forged(testBatch("p0", 7, 2))
	for i := range other.Pairs {
		other.Pairs[i].RunID = "other"
		other.Pairs[i].SampleID = schema.FormatSampleID("other", "p0", 7, uint32(i))
	}
	publishMsg(t, js, withSeq("pdmflow.pairs.r.p0", other, "7"))
	// The real batches.
	publish(t, js, "pdmflow.pairs.r.p1", encode(t, testBatch("p1", 0, 2)))
	publish(t, js, "pdmflow.pairs.r.p0", encode(t, testBatch("p0", 0, 2)))

	m := metrics.NewTrainer(nil)
	c, err := New(ctx, js, Config{Stream: "PDMFLOW_PAIRS", Durable: "t", Subject: "pdmflow.pairs.r.>", PoolPairs: 4}, State{}, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(ctx)
	got, _, err := c.Take(ctx, 4, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if e.Pair.Seed == 999 {
			t.Errorf("forged row %s (stream seq %d) reached the pool", e.Pair.SampleID, e.StreamSeq)
		}
	}
	if v := promtest.ToFloat64(m.BadMessages); v != 4 {
		t.Errorf("bad messages %v, want 4", v)
	}
	if v := promtest.ToFloat64(m.Duplicates); v != 0 {
		t.Errorf("duplicates %v, want 0 (the real batches are not duplicates of forged ones)", v)
	}
}

// TestConsumerHeaderFromConfig: with the expected header given (the run's
// contract), a first batch of another degradation or size does not become
// the stream's header: it is refused, and the good batches after it are
// taken.
func TestConsumerHeaderFromConfig(t *testing.T) {
	js := jsServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bad := testBatch("p0", 0, 2)
	bad.Degradation = schema.DegradationGaussian
	bad.KernelSize = 3
	for i := range bad.Pairs {
		bad.Pairs[i].Kernel = []float32{0, 0, 0, 0, 1, 0, 0, 0, 0}
	}
	publish(t, js, "pdmflow.pairs.r.p0", encode(t, bad))
	for s := uint64(1); s < 4; s++ {
		publish(t, js, "pdmflow.pairs.r.p0", encode(t, testBatch("p0", s, 2)))
	}
	h := testBatch("p0", 0, 1).Header
	m := metrics.NewTrainer(nil)
	c, err := New(ctx, js, Config{Stream: "PDMFLOW_PAIRS", Durable: "t", Subject: "pdmflow.pairs.r.>", PoolPairs: 6, Header: &h, Run: "r"}, State{}, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(ctx)
	if _, _, err := c.Take(ctx, 6, rand.New(rand.NewPCG(1, 2))); err != nil {
		t.Fatal(err)
	}
	if v := promtest.ToFloat64(m.BadMessages); v != 1 {
		t.Errorf("bad messages %v, want 1", v)
	}
	if got := c.Header(); got == nil || *got != h {
		t.Errorf("stream header %+v, want the configured %+v", got, h)
	}
}

// retentionStream makes run r's own stream, keeping at most maxMsgs
// messages.
func retentionStream(t *testing.T, maxMsgs int64) jetstream.JetStream {
	t.Helper()
	_, js := testutil.JetStream(t)
	if _, err := EnsureStream(context.Background(), js, StreamConfig{Run: "r", MaxMsgs: maxMsgs}); err != nil {
		t.Fatal(err)
	}
	return js
}

// TestRetentionLossIsNotSilent: a consumer resumed after a position that
// the stream's retention has passed stops with an error that says how many
// messages were lost and why (or goes on, counting them, when told to),
// and so does a running consumer whose next message is past a removed one.
func TestRetentionLossIsNotSilent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	js := retentionStream(t, 5)
	const stream, subj = "PDMFLOW_PAIRS_r", "pdmflow.pairs.r.p0"
	for s := uint64(0); s < 4; s++ {
		publish(t, js, subj, encode(t, testBatch("p0", s, 2)))
	}
	cfg := Config{Stream: stream, Durable: "t", Subject: "pdmflow.pairs.r.*", PoolPairs: 4, Run: "r"}
	c, err := New(ctx, js, cfg, State{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cctx, stop := context.WithCancel(ctx)
	go c.Run(cctx)
	if _, _, err := c.Take(ctx, 4, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	st := c.Snapshot()
	stop()
	if st.Position < 2 || st.Position > 4 {
		t.Fatalf("position %d after taking two batches", st.Position)
	}
	// Six more: the stream keeps messages 6..10 of 10.
	for s := uint64(4); s < 10; s++ {
		publish(t, js, subj, encode(t, testBatch("p0", s, 2)))
	}
	lost := 6 - (st.Position + 1)
	_, err = New(ctx, js, cfg, st, nil, nil)
	if !errors.Is(err, ErrLost) {
		t.Fatalf("resuming at %d with the stream starting at 6: %v, want ErrLost", st.Position+1, err)
	}
	for _, m := range []string{fmt.Sprintf("%d messages", lost), stream, "retention", "accept"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
	m := metrics.NewTrainer(nil)
	cfg.AcceptLoss = true
	c2, err := New(ctx, js, cfg, st, nil, m)
	if err != nil {
		t.Fatalf("with AcceptLoss: %v", err)
	}
	if v := promtest.ToFloat64(m.LostMessages); v != float64(lost) {
		t.Errorf("lost messages %v, want %d", v, lost)
	}
	go c2.Run(ctx)
	if _, _, err := c2.Take(ctx, 4, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	if v := promtest.ToFloat64(m.LostMessages); v != float64(lost) {
		t.Errorf("lost messages %v after reading on, want %d (counted once)", v, lost)
	}

	// A running consumer: its queue holds a pool's worth, so it stops
	// fetching while three more batches push the next one out.
	js2 := retentionStream(t, 3)
	publish(t, js2, subj, encode(t, testBatch("p0", 0, 2)))
	publish(t, js2, subj, encode(t, testBatch("p0", 1, 2)))
	c3, err := New(ctx, js2, Config{Stream: stream, Durable: "t", Subject: "pdmflow.pairs.r.*", PoolPairs: 2, Run: "r"}, State{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	go c3.Run(ctx)
	if _, _, err := c3.Take(ctx, 2, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	// Batch 1 is in the pool now, and batch 2 fills the queue: the
	// consumer stops fetching. Four more make the stream drop sequence 4
	// (batch 3) before it is read.
	publish(t, js2, subj, encode(t, testBatch("p0", 2, 2)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := c3.cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Delivered.Stream == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer delivered up to %d, want 3", info.Delivered.Stream)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for s := uint64(3); s < 7; s++ {
		publish(t, js2, subj, encode(t, testBatch("p0", s, 2)))
	}
	var terr error
	for i := 0; i < 4 && terr == nil; i++ {
		tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
		_, _, terr = c3.Take(tctx, 2, rand.New(rand.NewPCG(1, 1)))
		tcancel()
	}
	if !errors.Is(terr, ErrLost) {
		t.Fatalf("a running consumer past removed messages: %v, want ErrLost", terr)
	}
}

// TestConsumerResyncsAfterLostDeliveries: deliveries that never reach the
// consumer (a fetch answered into a connection that went away, as when the
// broker restarts) must not let it move past them. A fetch answered into
// an inbox nobody reads stands in for the lost connection: the server
// counts those messages delivered and pending; the consumer sees its
// delivery sequence jump, starts again after the last message it took, and
// takes every batch, in stream order, at once, not after AckWait.
func TestConsumerResyncsAfterLostDeliveries(t *testing.T) {
	b, js := testutil.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := EnsureStream(ctx, js, StreamConfig{Run: "r"}); err != nil {
		t.Fatal(err)
	}
	const stream, subj = "PDMFLOW_PAIRS_r", "pdmflow.pairs.r.p0"
	for s := uint64(0); s < 2; s++ {
		publish(t, js, subj, encode(t, testBatch("p0", s, 2)))
	}
	cfg := Config{Stream: stream, Durable: "t", Subject: "pdmflow.pairs.r.*", PoolPairs: 2, Run: "r", Deterministic: true}
	c, err := New(ctx, js, cfg, State{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(ctx)
	first, _, err := c.Take(ctx, 2, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	// Batch 1 is queued; the consumer waits for room. Batches 2 and 3 are
	// delivered into the void.
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := c.cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Delivered.Stream == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer delivered up to %d, want 2", info.Delivered.Stream)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for s := uint64(2); s < 6; s++ {
		publish(t, js, subj, encode(t, testBatch("p0", s, 2)))
	}
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	void := nats.NewInbox()
	sub, err := nc.SubscribeSync(void)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+stream+".t", void, []byte(`{"batch":2,"no_wait":true}`)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // received by a client that then goes away
		if _, err := sub.NextMsg(10 * time.Second); err != nil {
			t.Fatalf("the fetch into the void: %v", err)
		}
	}
	nc.Close()
	got := []uint64{first[0].Pair.BatchSeq}
	for len(got) < 6 {
		tctx, tcancel := context.WithTimeout(ctx, 20*time.Second)
		es, _, err := c.Take(tctx, 2, rand.New(rand.NewPCG(1, 1)))
		tcancel()
		if err != nil {
			t.Fatalf("after batches %v: %v (batches delivered into the void are taken only after AckWait, 2 min)", got, err)
		}
		got = append(got, es[0].Pair.BatchSeq)
	}
	for i, b := range got {
		if b != uint64(i) {
			t.Fatalf("batches taken %v, want 0..5 in order", got)
		}
	}
	if st := c.Snapshot(); st.Position != 6 {
		t.Errorf("position %d, want 6", st.Position)
	}
}
