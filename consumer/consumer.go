// Package consumer feeds a trainer from the pair stream: a durable pull
// consumer whose fetches are bounded by the room left in the pool (so by
// bytes: at most that many messages of at most 8 MiB), decoding and validation of every
// message (package schema), deduplication, a shuffle pool from which
// training steps draw, and the stream position a checkpoint records.
//
// A message is acked once its pairs are in the pool. The pool, the
// position and the dedup state are captured together by Snapshot, so a
// trainer that checkpoints them and later restores them (restarting the
// consumer right after the recorded position) neither loses nor repeats a
// sample, whatever was acked after the checkpoint.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/schema"
)

// Config configures the consumer.
type Config struct {
	Stream  string // stream name
	Durable string // durable consumer name
	Subject string // filter subject, e.g. "pdmflow.pairs.RUN.>"
	// AckWait is how long JetStream waits for an ack before redelivering
	// (default 2 min: a message is acked as soon as it is in the pool).
	AckWait time.Duration
	// MaxDeliver bounds redeliveries of a message (default 10); a message
	// that fails to decode is terminated at once instead.
	MaxDeliver    int
	MaxAckPending int // default 64
	PoolPairs     int // shuffle pool capacity in pairs (default 512)
	// Header, when set, is what every batch must match (shapes, scale,
	// degradation); otherwise the first batch sets it.
	Header *schema.Header
	// MaxMessageBytes is the largest message accepted (default 8 MiB).
	MaxMessageBytes int
}

func (c *Config) defaults() {
	if c.AckWait <= 0 {
		c.AckWait = 2 * time.Minute
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 10
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 64
	}
	if c.PoolPairs <= 0 {
		c.PoolPairs = 512
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = schema.DefaultMaxMessageBytes
	}
}

// Entry is one pair in the pool with where it came from.
type Entry struct {
	Pair      schema.Pair
	StreamSeq uint64
}

// State is what a checkpoint must hold to resume the stream exactly.
type State struct {
	Position uint64         // every message up to this stream sequence is in the pool, trained or dropped
	Header   *schema.Header // the stream's header, once known
	Pool     []Entry        // pairs acked but not yet trained
	Seen     []SeenRange    // batches already taken, for dedup
}

// SeenRange says that batches [From, To) of a producer were taken.
type SeenRange struct {
	Producer string `json:"producer"`
	From     uint64 `json:"from"`
	To       uint64 `json:"to"`
}

// Consumer pulls batches into a shuffle pool.
type Consumer struct {
	cfg  Config
	js   jetstream.JetStream
	cons jetstream.Consumer
	log  *slog.Logger
	m    *metrics.Trainer

	mu       sync.Mutex
	cond     *sync.Cond
	pool     []Entry
	position uint64
	header   *schema.Header
	seen     map[string]*seqSet
	lag      uint64
	// pairsPerMsg is the size of the last batch, to size fetches.
	pairsPerMsg int
	// OnAck, when set, is called (under the consumer's lock) with every
	// batch that entered the pool; tests use it for accounting.
	OnAck func(b *schema.Batch, streamSeq uint64)
}

// New creates (or re-creates) the durable consumer so that it delivers
// from the message after st.Position, and loads st's pool and dedup state.
// A zero State starts at the beginning of the filtered stream.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, st State, log *slog.Logger, m *metrics.Trainer) (*Consumer, error) {
	cfg.defaults()
	if cfg.Stream == "" || cfg.Durable == "" || cfg.Subject == "" {
		return nil, errors.New("consumer: stream, durable name and subject are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.NewTrainer(nil)
	}
	c := &Consumer{cfg: cfg, js: js, log: log, m: m, seen: map[string]*seqSet{}}
	c.cond = sync.NewCond(&c.mu)
	c.header = cfg.Header
	if st.Header != nil {
		if c.header != nil && *c.header != *st.Header {
			return nil, fmt.Errorf("consumer: the checkpoint's stream header %+v differs from the expected %+v", *st.Header, *c.header)
		}
		h := *st.Header
		c.header = &h
	}
	c.pool = append(c.pool, st.Pool...)
	c.position = st.Position
	for _, r := range st.Seen {
		c.seenSet(r.Producer).addRange(r.From, r.To)
	}
	// The consumer's start is part of the trainer's state, so it is always
	// made anew: after the recorded position, or from the start.
	if err := js.DeleteConsumer(ctx, cfg.Stream, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("consumer: removing the old consumer %s: %w", cfg.Durable, err)
	}
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "pdmflow trainer",
		FilterSubject: cfg.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if st.Position > 0 {
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = st.Position + 1
	}
	cons, err := js.CreateConsumer(ctx, cfg.Stream, cc)
	if err != nil {
		return nil, fmt.Errorf("consumer: creating %s on %s: %w", cfg.Durable, cfg.Stream, err)
	}
	c.cons = cons
	m.PoolSize.Set(float64(len(c.pool)))
	return c, nil
}

// Run fetches into the pool until ctx ends; it stops fetching while the
// pool is full. Transient errors (a broker that went away) are logged and
// retried; Run returns only when ctx ends.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.wakeOnDone(ctx)()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		c.mu.Lock()
		for len(c.pool) >= c.cfg.PoolPairs && ctx.Err() == nil {
			c.cond.Wait()
		}
		// Fetch no more messages than the pool has room for (at least one):
		// a fetch holds up to that many messages in memory.
		room := max(1, (c.cfg.PoolPairs-len(c.pool))/max(1, c.pairsPerMsg))
		c.mu.Unlock()
		if ctx.Err() != nil {
			break
		}
		batch, err := c.cons.Fetch(room, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			c.log.Warn("fetch failed, retrying", "err", err, "retry_in", backoff)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		n := 0
		for msg := range batch.Messages() {
			c.handle(ctx, msg)
			n++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
			c.log.Warn("fetch ended with an error", "err", err, "messages", n)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
	return nil
}

// wakeOnDone wakes the goroutines waiting on c.cond when ctx ends, so that
// they can see it; call the returned function when done waiting.
func (c *Consumer) wakeOnDone(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// handle decodes one message and puts its pairs into the pool.
func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		c.log.Error("message without JetStream metadata, terminated", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	seq := meta.Sequence.Stream
	if meta.NumDelivered > 1 {
		c.m.Redeliveries.Inc()
	}
	c.m.ConsumerLag.Set(float64(meta.NumPending))
	b, err := schema.Decode(msg.Data(), schema.DecodeOptions{MaxMessageBytes: c.cfg.MaxMessageBytes})
	if err == nil {
		err = c.check(b)
	}
	if err != nil {
		c.m.BadMessages.Inc()
		c.log.Error("bad message, terminated (it will not be redelivered)", "stream", c.cfg.Stream, "seq", seq, "subject", msg.Subject(), "err", err)
		_ = msg.TermWithReason(truncate(err.Error(), 200))
		c.advance(seq)
		return
	}
	c.mu.Lock()
	first := b.Pairs[0]
	set := c.seenSet(first.ProducerID)
	if set.has(first.BatchSeq) {
		c.mu.Unlock()
		c.m.Duplicates.Inc()
		c.log.Debug("duplicate batch dropped", "producer", first.ProducerID, "batch", first.BatchSeq, "seq", seq)
		_ = msg.Ack()
		c.advance(seq)
		return
	}
	if c.header == nil {
		h := b.Header
		c.header = &h
	}
	set.add(first.BatchSeq)
	for _, p := range b.Pairs {
		c.pool = append(c.pool, Entry{Pair: p, StreamSeq: seq})
	}
	c.position = max(c.position, seq)
	c.pairsPerMsg = len(b.Pairs)
	c.lag = meta.NumPending
	if c.OnAck != nil {
		c.OnAck(b, seq)
	}
	c.m.PoolSize.Set(float64(len(c.pool)))
	c.m.Messages.Inc()
	c.cond.Broadcast()
	c.mu.Unlock()
	// Acked after the pairs are in the pool: a lost ack means a
	// redelivery, which the dedup state drops.
	if err := msg.Ack(); err != nil {
		c.log.Warn("ack failed (the message will be redelivered and dropped as a duplicate)", "seq", seq, "err", err)
	}
}

func (c *Consumer) advance(seq uint64) {
	c.mu.Lock()
	c.position = max(c.position, seq)
	c.mu.Unlock()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// check validates what Decode cannot know: the batch matches the stream's
// header and its rows are the batch they claim to be.
func (c *Consumer) check(b *schema.Batch) error {
	if len(b.Pairs) == 0 {
		return errors.New("consumer: empty batch")
	}
	c.mu.Lock()
	h := c.header
	c.mu.Unlock()
	if h != nil && *h != b.Header {
		return fmt.Errorf("consumer: batch header %+v differs from the stream's %+v", b.Header, *h)
	}
	f := b.Pairs[0]
	for i, p := range b.Pairs {
		want := fmt.Sprintf("%s/%s/%d/%d", f.RunID, f.ProducerID, f.BatchSeq, i)
		if p.RunID != f.RunID || p.ProducerID != f.ProducerID || p.BatchSeq != f.BatchSeq || p.Index != uint32(i) || p.SampleID != want {
			return fmt.Errorf("consumer: row %d is sample %q, want %q", i, p.SampleID, want)
		}
	}
	return nil
}

func (c *Consumer) seenSet(producer string) *seqSet {
	s := c.seen[producer]
	if s == nil {
		s = &seqSet{}
		c.seen[producer] = s
	}
	return s
}

// Take removes n pairs drawn uniformly at random (by r) from the pool,
// waiting until the pool holds at least n. It returns how long it waited.
func (c *Consumer) Take(ctx context.Context, n int, r *rand.Rand) ([]Entry, time.Duration, error) {
	if n > c.cfg.PoolPairs {
		return nil, 0, fmt.Errorf("consumer: a batch of %d is larger than the pool (%d pairs)", n, c.cfg.PoolPairs)
	}
	t0 := time.Now()
	defer c.wakeOnDone(ctx)()
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pool) < n {
		if err := ctx.Err(); err != nil {
			return nil, time.Since(t0), err
		}
		c.cond.Wait()
	}
	out := make([]Entry, n)
	for i := range out {
		j := r.IntN(len(c.pool))
		out[i] = c.pool[j]
		last := len(c.pool) - 1
		c.pool[j] = c.pool[last]
		c.pool[last] = Entry{}
		c.pool = c.pool[:last]
	}
	c.m.PoolSize.Set(float64(len(c.pool)))
	c.cond.Broadcast()
	return out, time.Since(t0), nil
}

// Header is the stream's header once a batch has been seen (nil before).
func (c *Consumer) Header() *schema.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.header == nil {
		return nil
	}
	h := *c.header
	return &h
}

// WaitHeader waits for the first batch and returns its header.
func (c *Consumer) WaitHeader(ctx context.Context) (schema.Header, error) {
	defer c.wakeOnDone(ctx)()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.header == nil {
		if err := ctx.Err(); err != nil {
			return schema.Header{}, err
		}
		c.cond.Wait()
	}
	return *c.header, nil
}

// Snapshot captures the pool, the position and the dedup state at one
// instant, for a checkpoint.
func (c *Consumer) Snapshot() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := State{Position: c.position, Pool: append([]Entry(nil), c.pool...)}
	if c.header != nil {
		h := *c.header
		st.Header = &h
	}
	var producers []string
	for p := range c.seen {
		producers = append(producers, p)
	}
	sort.Strings(producers)
	for _, p := range producers {
		for _, r := range c.seen[p].ranges {
			st.Seen = append(st.Seen, SeenRange{Producer: p, From: r[0], To: r[1]})
		}
	}
	return st
}

// Lag is the number of messages not yet delivered, as of the last message.
func (c *Consumer) Lag() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lag
}

// seqSet is a set of batch sequence numbers kept as sorted, disjoint,
// non-adjacent half-open ranges (a producer's batches arrive nearly in
// order, so it stays a handful of ranges).
type seqSet struct{ ranges [][2]uint64 }

func (s *seqSet) has(v uint64) bool {
	i := sort.Search(len(s.ranges), func(i int) bool { return s.ranges[i][1] > v })
	return i < len(s.ranges) && s.ranges[i][0] <= v
}

func (s *seqSet) add(v uint64) { s.addRange(v, v+1) }

func (s *seqSet) addRange(from, to uint64) {
	if from >= to {
		return
	}
	var out [][2]uint64
	i := 0
	for ; i < len(s.ranges) && s.ranges[i][1] < from; i++ {
		out = append(out, s.ranges[i])
	}
	for ; i < len(s.ranges) && s.ranges[i][0] <= to; i++ {
		from, to = min(from, s.ranges[i][0]), max(to, s.ranges[i][1])
	}
	out = append(out, [2]uint64{from, to})
	s.ranges = append(out, s.ranges[i:]...)
}
