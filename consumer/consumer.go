// Package consumer feeds a trainer from the pair stream: a durable pull
// consumer whose fetches are bounded by the room left in the pool (so by
// bytes: at most that many messages of at most 8 MiB), decoding and validation of every
// message (package schema), deduplication, a shuffle pool from which
// training steps draw, and the stream position a checkpoint records.
//
// Messages come from a Source in stream order: the durable JetStream
// consumer, or anything else that replays recorded messages (an exported
// archive). A fetch loop decodes them into a read-ahead queue (bounded like
// the pool); Take moves them from the queue into the pool in stream order.
// With Config.Deterministic, Take first fills the pool to its capacity, so
// which pairs it draws depends only on the order of the stream and on the
// caller's random source, never on when messages arrived: a replay of the
// same messages trains identically.
//
// A message is acked once it is in the queue. The pool, the position (the
// last message moved into the pool) and the dedup state are captured
// together by Snapshot, so a trainer that checkpoints them and later
// restores them (restarting the consumer right after the recorded
// position) neither loses nor repeats a sample, whatever was acked after
// the checkpoint.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
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
	// Header is what every batch must match (shapes, scale, kernel size,
	// degradation; any Device): the run's contract, from the trainer's
	// config. When nil the first batch sets it, which lets one foreign
	// batch decide what the stream is: trainers always set it.
	Header *schema.Header
	// Run, when set, binds every message to the run: its subject's run
	// token and every row's run_id must be Run. Whether set or not, every
	// row's producer_id must be the subject's last token, every row's
	// batch_seq the message's Pdmflow-Batch-Seq header (when the source
	// has headers) and its index the row's position: a message that
	// claims another producer's batch is refused, not deduplicated against
	// the real one.
	Run string
	// MaxMessageBytes is the largest message accepted (default 8 MiB).
	MaxMessageBytes int
	// Deterministic makes Take fill the pool to PoolPairs before drawing
	// (or take what is left once the source is exhausted), so that the
	// pairs drawn depend only on the stream's order and the caller's random
	// source. Trainers set it; without it Take draws as soon as the pool
	// holds enough pairs, whatever has arrived.
	Deterministic bool
	// StartSeq and StartTime choose where a consumer with no recorded
	// position starts (a replay from a sequence or a time); by default it
	// starts at the beginning of the filtered stream. A restored State's
	// position takes precedence.
	StartSeq  uint64
	StartTime time.Time
	// AcceptLoss lets the consumer go on when the stream's retention has
	// removed messages it had not read (they are counted and logged);
	// without it New and Take return an error wrapping ErrLost that says
	// how many, and why.
	AcceptLoss bool
}

// ErrExhausted is returned by Take when the source has ended and the pool
// holds fewer pairs than asked for.
var ErrExhausted = errors.New("consumer: the source is exhausted")

// ErrLost is wrapped by the error of a consumer that finds messages it had
// not read removed from the stream (its retention limits pushed them out).
var ErrLost = errors.New("consumer: unread messages were removed from the stream")

// Permanent marks a Source error that retrying cannot fix (a corrupt
// archive): Run stops and Take returns it.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Message is one stream message as a Source delivers it.
type Message struct {
	Seq     uint64 // stream sequence
	Subject string
	// Header holds the message's NATS headers; nil when the source does not
	// keep them (an archive written before they were recorded), and then
	// the batch sequence header is not checked.
	Header    nats.Header
	Data      []byte
	Delivered uint64 // deliveries so far, 1 the first time (0: unknown)
	Pending   uint64 // messages after it not yet delivered
	// Ack and Term acknowledge the message or stop its redelivery; nil for
	// sources without acknowledgements.
	Ack  func() error
	Term func(reason string) error
}

// Source delivers stream messages in stream order.
type Source interface {
	// Fetch passes up to max messages to handle, in order, after those
	// already delivered, each as soon as it is there (a consumer must not
	// wait for the whole batch). It may deliver none when nothing arrived
	// in time. It returns io.EOF once the source has no more.
	Fetch(ctx context.Context, max int, handle func(Message)) error
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

// queued is a message between the fetch loop and the pool: a decoded batch,
// or nil for a message that was refused (it still moves the position).
type queued struct {
	seq   uint64
	batch *schema.Batch
}

// Consumer pulls batches into a shuffle pool.
type Consumer struct {
	cfg  Config
	src  Source
	cons jetstream.Consumer // nil unless the source is the durable consumer
	log  *slog.Logger
	m    *metrics.Trainer

	mu          sync.Mutex
	cond        *sync.Cond
	queue       []queued
	queuedPairs int
	ended       bool  // the source returned io.EOF
	failed      error // the source returned a Permanent error
	pool        []Entry
	position    uint64
	header      *schema.Header
	seen        map[string]*seqSet
	lag         uint64
	// pairsPerMsg is the size of the last batch, to size fetches.
	pairsPerMsg int
	// OnAck, when set, is called (under the consumer's lock) with every
	// batch that entered the pool (acked, not a duplicate); tests use it
	// for accounting.
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
	c, err := newConsumer(cfg, st, log, m)
	if err != nil {
		return nil, err
	}
	// The consumer's start is part of the trainer's state, so it is always
	// made anew: after the recorded position, or from the configured start.
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
	switch {
	case st.Position > 0:
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = st.Position + 1
	case cfg.StartSeq > 0:
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = cfg.StartSeq
	case !cfg.StartTime.IsZero():
		cc.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		t := cfg.StartTime
		cc.OptStartTime = &t
	}
	cons, err := js.CreateConsumer(ctx, cfg.Stream, cc)
	if err != nil {
		return nil, fmt.Errorf("consumer: creating %s on %s: %w", cfg.Durable, cfg.Stream, err)
	}
	src := &jsSource{cons: cons, c: c, js: js, cc: cc}
	if err := src.checkStart(ctx, js, cfg, st.Position); err != nil {
		return nil, err
	}
	c.cons = cons
	c.src = src
	return c, nil
}

// NewFromSource makes a consumer of src, which must deliver the messages
// after st.Position (a zero State: from its start). cfg's stream, durable
// and subject are not used.
func NewFromSource(src Source, cfg Config, st State, log *slog.Logger, m *metrics.Trainer) (*Consumer, error) {
	cfg.defaults()
	c, err := newConsumer(cfg, st, log, m)
	if err != nil {
		return nil, err
	}
	c.src = src
	return c, nil
}

func newConsumer(cfg Config, st State, log *slog.Logger, m *metrics.Trainer) (*Consumer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.NewTrainer(nil)
	}
	c := &Consumer{cfg: cfg, log: log, m: m, seen: map[string]*seqSet{}}
	c.cond = sync.NewCond(&c.mu)
	c.header = cfg.Header
	if st.Header != nil {
		if c.header != nil && !c.header.SameStream(*st.Header) {
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
	m.PoolSize.Set(float64(len(c.pool)))
	return c, nil
}

// jsSource is the durable JetStream consumer as a Source. It watches the
// stream sequences it delivers: in a run's own stream every message is the
// consumer's, so a jump over sequences is messages the retention removed
// before they were read; in a stream shared by runs a jump is a loss only
// where the stream's first sequence has passed it.
//
// It also watches the consumer's delivery sequence: deliveries that never
// arrived (sent into a connection that went away, as when the broker
// restarts) would otherwise come again only after AckWait, behind the
// messages after them, so the position would move past them. On such a
// jump it makes the durable consumer anew, starting after the last
// message it handled, so that messages always come in stream order.
type jsSource struct {
	cons     jetstream.Consumer
	c        *Consumer
	js       jetstream.JetStream
	cc       jetstream.ConsumerConfig
	stream   jetstream.Stream
	perRun   bool      // the stream holds exactly this consumer's subjects
	last     uint64    // the last stream sequence delivered (or skipped over)
	known    bool      // last is known (not a start by time)
	probe    time.Time // last look at a shared stream's first sequence
	lastCons uint64    // the last delivery sequence of this consumer (0: none yet)
}

// errResync means that deliveries were lost on the way: the consumer is to
// be made anew after the last message handled.
var errResync = errors.New("consumer: deliveries lost in transit")

// resync makes the durable consumer anew so that it delivers from the
// message after the last one handled.
func (s *jsSource) resync(ctx context.Context) error {
	if !s.known {
		return errors.New("consumer: deliveries were lost before the first one arrived, and the start was by time")
	}
	cc := s.cc
	cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = jetstream.DeliverByStartSequencePolicy, s.last+1, nil
	name := s.stream.CachedInfo().Config.Name
	if err := s.js.DeleteConsumer(ctx, name, cc.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("consumer: making %s anew after lost deliveries: %w", cc.Durable, err)
	}
	cons, err := s.js.CreateConsumer(ctx, name, cc)
	if err != nil {
		return fmt.Errorf("consumer: making %s anew after lost deliveries: %w", cc.Durable, err)
	}
	s.c.log.Warn("deliveries were lost on the way (a reconnection?): consumer made anew after the last message taken", "durable", cc.Durable, "from_seq", s.last+1)
	s.cons, s.lastCons = cons, 0
	s.c.mu.Lock()
	s.c.cons = cons
	s.c.mu.Unlock()
	return nil
}

// checkStart finds out what the stream is, and whether it still holds the
// first message this consumer is to read: a position (or start sequence)
// that the retention has passed is an error wrapping ErrLost, or with
// AcceptLoss a warning and a count.
func (s *jsSource) checkStart(ctx context.Context, js jetstream.JetStream, cfg Config, position uint64) error {
	st, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return fmt.Errorf("consumer: stream %s: %w", cfg.Stream, err)
	}
	s.stream = st
	info := st.CachedInfo()
	subj := info.Config.Subjects
	s.perRun = len(subj) == 1 && subj[0] == cfg.Subject
	first := info.State.FirstSeq
	if info.State.Msgs == 0 {
		first = info.State.LastSeq + 1
	}
	var start uint64
	switch {
	case position > 0:
		start = position + 1
	case cfg.StartSeq > 0:
		start = cfg.StartSeq
	case !cfg.StartTime.IsZero():
		return nil // a start by time: whatever is there from then on
	case s.perRun:
		start = 1 // a run's own stream: its every message
	default:
		// A stream of every run, read from its start: what went before is
		// other runs' as much as this one's; only later removals count.
		s.last, s.known = first-1, true
		return nil
	}
	s.last, s.known = start-1, true
	if start >= first {
		return nil
	}
	if err := s.c.lost(start, first-1, s.perRun, info.Config); err != nil {
		return err
	}
	s.last = first - 1 // accepted: counted once
	return nil
}

// lost reports that stream sequences from..to were removed unread: an
// error wrapping ErrLost, or (AcceptLoss) a count and a warning.
func (c *Consumer) lost(from, to uint64, exact bool, sc jetstream.StreamConfig) error {
	n := to - from + 1
	whose := "messages of this run"
	if !exact {
		whose = "messages of every run in this shared stream, up to all of them this run's"
	}
	limits := fmt.Sprintf("max_bytes %d, max_msgs %d, max_age %s", sc.MaxBytes, sc.MaxMsgs, sc.MaxAge)
	if c.cfg.AcceptLoss {
		c.m.LostMessages.Add(float64(n))
		c.log.Warn("unread messages were removed from the stream by its retention; going on without them (--accept-loss)",
			"stream", sc.Name, "from_seq", from, "to_seq", to, "messages", n, "whose", whose, "limits", limits)
		return nil
	}
	return fmt.Errorf("%w: stream %s no longer holds sequences %d..%d (%d messages: %s) that this consumer had not read: its retention (%s) removed them, so their pairs are lost; "+
		"restart with --accept-loss to go on from sequence %d, and give the run room (--stream-max-bytes, or a faster trainer)",
		ErrLost, sc.Name, from, to, n, whose, limits, to+1)
}

func (s *jsSource) Fetch(ctx context.Context, n int, handle func(Message)) error {
	batch, err := s.cons.Fetch(n, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return err
	}
	var lostErr error
	for msg := range batch.Messages() {
		if lostErr != nil {
			continue // not handled: delivered again after a restart
		}
		h := msg.Headers()
		if h == nil {
			h = nats.Header{} // JetStream keeps headers: none is none
		}
		m := Message{Subject: msg.Subject(), Header: h, Data: msg.Data(), Ack: msg.Ack, Term: msg.TermWithReason}
		if meta, err := msg.Metadata(); err == nil {
			m.Seq, m.Delivered, m.Pending = meta.Sequence.Stream, meta.NumDelivered, meta.NumPending
			if cs := meta.Sequence.Consumer; cs > s.lastCons+1 {
				lostErr = errResync
				continue
			} else {
				s.lastCons = max(s.lastCons, cs)
			}
		}
		if lostErr = s.gap(ctx, m.Seq); lostErr != nil {
			continue
		}
		handle(m)
	}
	if errors.Is(lostErr, errResync) {
		return s.resync(ctx)
	}
	if lostErr != nil {
		return Permanent(lostErr)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
		return err
	}
	return nil
}

// gap checks the stream sequence of the next message delivered against
// the last one.
func (s *jsSource) gap(ctx context.Context, seq uint64) error {
	if seq == 0 {
		return nil
	}
	if !s.known {
		s.last, s.known = seq, true
		return nil
	}
	if seq <= s.last+1 {
		s.last = max(s.last, seq)
		return nil
	}
	from, to := s.last+1, seq-1
	s.last = seq
	if s.perRun {
		return s.c.lost(from, to, true, s.stream.CachedInfo().Config)
	}
	// A shared stream: other runs' messages make gaps. Look at its first
	// sequence, at most once a second.
	if time.Since(s.probe) < time.Second {
		return nil
	}
	s.probe = time.Now()
	info, err := s.stream.Info(ctx)
	if err != nil || info.State.FirstSeq <= from {
		return nil
	}
	return s.c.lost(from, min(to, info.State.FirstSeq-1), false, info.Config)
}

// Run fetches into the read-ahead queue until ctx ends or the source is
// exhausted; it stops fetching while the queue holds a pool's worth of
// pairs. Transient errors (a broker that went away) are logged and
// retried.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.wakeOnDone(ctx)()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		c.mu.Lock()
		for c.queuedPairs >= c.cfg.PoolPairs && ctx.Err() == nil {
			c.cond.Wait()
		}
		// Fetch no more messages than the queue has room for (at least
		// one): a fetch holds up to that many messages in memory. Until a
		// message has shown how many pairs a message holds, one: counting
		// a message as one pair would let the first fetch bring in
		// PoolPairs whole messages (256 MiB for a pool of 128 pairs and
		// messages of 2 MiB).
		room := 1
		if c.pairsPerMsg > 0 {
			room = max(1, (c.cfg.PoolPairs-c.queuedPairs)/c.pairsPerMsg)
		}
		c.mu.Unlock()
		if ctx.Err() != nil {
			break
		}
		n := 0
		err := c.src.Fetch(ctx, room, func(m Message) { c.handle(m); n++ })
		if errors.Is(err, io.EOF) {
			c.mu.Lock()
			c.ended = true
			c.cond.Broadcast()
			c.mu.Unlock()
			return nil
		}
		if pe := (permanentError{}); errors.As(err, &pe) {
			c.mu.Lock()
			c.failed = pe.err
			c.cond.Broadcast()
			c.mu.Unlock()
			return pe.err
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			c.log.Warn("fetch failed, retrying", "err", err, "messages", n, "retry_in", backoff)
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

// handle decodes one message into the queue: bad messages are
// terminated (they are not redelivered) and queued as refused, so that the
// position moves past them in order.
func (c *Consumer) handle(msg Message) {
	seq := msg.Seq
	if msg.Delivered > 1 {
		c.m.Redeliveries.Inc()
	}
	c.m.ConsumerLag.Set(float64(msg.Pending))
	b, err := schema.Decode(msg.Data, schema.DecodeOptions{MaxMessageBytes: c.cfg.MaxMessageBytes})
	if err == nil {
		err = c.check(b, msg)
	}
	if err != nil {
		c.m.BadMessages.Inc()
		c.log.Error("bad message, terminated (it will not be redelivered)", "stream", c.cfg.Stream, "seq", seq, "subject", msg.Subject, "err", err)
		if msg.Term != nil {
			_ = msg.Term(truncate(err.Error(), 200))
		}
		c.mu.Lock()
		c.queue = append(c.queue, queued{seq: seq})
		c.admit()
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	if c.header == nil {
		h := b.Header
		c.header = &h
	}
	c.queue = append(c.queue, queued{seq: seq, batch: b})
	c.queuedPairs += len(b.Pairs)
	c.pairsPerMsg = len(b.Pairs)
	c.lag = msg.Pending
	c.m.Messages.Inc()
	c.admit()
	c.cond.Broadcast()
	c.mu.Unlock()
	// Acked once queued: a lost ack means a redelivery, which the dedup
	// state drops; a crash before the next checkpoint restarts the durable
	// consumer after the checkpoint's position, acked or not.
	if msg.Ack != nil {
		if err := msg.Ack(); err != nil {
			c.log.Warn("ack failed (the message will be redelivered and dropped as a duplicate)", "seq", seq, "err", err)
		}
	}
}

// admit moves queued messages into the pool, in stream order, while the
// pool has room; c.mu is held. The pool only shrinks in Take, so whenever
// admit runs between two draws, the pool at the second draw is the same:
// what was there plus whole messages in order until it was full.
func (c *Consumer) admit() {
	moved := false
	for len(c.pool) < c.cfg.PoolPairs && len(c.queue) > 0 {
		q := c.queue[0]
		c.queue[0] = queued{}
		c.queue = c.queue[1:]
		moved = true
		c.position = max(c.position, q.seq)
		if q.batch == nil {
			continue
		}
		c.queuedPairs -= len(q.batch.Pairs)
		first := q.batch.Pairs[0]
		set := c.seenSet(first.ProducerID)
		if set.has(first.BatchSeq) {
			c.m.Duplicates.Inc()
			c.log.Debug("duplicate batch dropped", "producer", first.ProducerID, "batch", first.BatchSeq, "seq", q.seq)
			continue
		}
		set.add(first.BatchSeq)
		for _, p := range q.batch.Pairs {
			c.pool = append(c.pool, Entry{Pair: p, StreamSeq: q.seq})
		}
		if c.OnAck != nil {
			c.OnAck(q.batch, q.seq)
		}
	}
	if moved {
		c.m.PoolSize.Set(float64(len(c.pool)))
		c.cond.Broadcast()
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// check validates what Decode cannot know: the batch matches the stream's
// header, it belongs to the run, and its rows are the batch its subject
// and headers say it is (see Config.Run).
func (c *Consumer) check(b *schema.Batch, msg Message) error {
	if len(b.Pairs) == 0 {
		return errors.New("consumer: empty batch")
	}
	c.mu.Lock()
	h := c.header
	c.mu.Unlock()
	if h != nil && !h.SameStream(b.Header) {
		return fmt.Errorf("consumer: batch header %s differs from the run's contract %s", describeHeader(b.Header), describeHeader(*h))
	}
	// The subject is PREFIX.RUN.PRODUCER.
	producer, run := "", ""
	if i := strings.LastIndexByte(msg.Subject, '.'); i >= 0 {
		producer = msg.Subject[i+1:]
		if j := strings.LastIndexByte(msg.Subject[:i], '.'); j >= 0 {
			run = msg.Subject[j+1 : i]
		}
	}
	if producer == "" || run == "" {
		return fmt.Errorf("consumer: subject %q is not PREFIX.RUN.PRODUCER", msg.Subject)
	}
	if c.cfg.Run != "" && run != c.cfg.Run {
		return fmt.Errorf("consumer: subject %q is not of run %s", msg.Subject, c.cfg.Run)
	}
	f := b.Pairs[0]
	if msg.Header != nil {
		hs := msg.Header.Get(schema.HeaderBatchSeq)
		seq, err := strconv.ParseUint(hs, 10, 64)
		if err != nil {
			return fmt.Errorf("consumer: header %s is %q, want the batch sequence", schema.HeaderBatchSeq, truncate(hs, 24))
		}
		if f.BatchSeq != seq {
			return fmt.Errorf("consumer: row 0 is of batch %d, the message's %s header says %d", f.BatchSeq, schema.HeaderBatchSeq, seq)
		}
	}
	for i, p := range b.Pairs {
		switch {
		case p.RunID != run:
			return fmt.Errorf("consumer: row %d (sample %s) is of run %q, the subject %s of run %q", i, p.SampleID, p.RunID, msg.Subject, run)
		case p.ProducerID != producer:
			return fmt.Errorf("consumer: row %d (sample %s) claims producer %q on the subject %s of producer %q", i, p.SampleID, p.ProducerID, msg.Subject, producer)
		case p.BatchSeq != f.BatchSeq:
			return fmt.Errorf("consumer: row %d (sample %s) is of batch %d, row 0 of batch %d", i, p.SampleID, p.BatchSeq, f.BatchSeq)
		case p.Index != uint32(i):
			return fmt.Errorf("consumer: row %d is sample %s, index %d", i, p.SampleID, p.Index)
		}
	}
	return nil
}

// describeHeader is a header in a message: "pdm x4 HR 64x64 LR 16x16 kernel 21".
func describeHeader(h schema.Header) string {
	s := fmt.Sprintf("%q x%d HR %dx%d LR %dx%d kernel %d", h.Degradation, h.Scale, h.HRH, h.HRW, h.LRH, h.LRW, h.KernelSize)
	if h.Device != "" {
		s += " device " + h.Device
	}
	return s
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
// waiting until the pool holds at least n (with Config.Deterministic: until
// it is full, or the source has ended). It returns how long it waited, and
// ErrExhausted when the source has ended with fewer than n pairs left.
func (c *Consumer) Take(ctx context.Context, n int, r *rand.Rand) ([]Entry, time.Duration, error) {
	if n > c.cfg.PoolPairs {
		return nil, 0, fmt.Errorf("consumer: a batch of %d is larger than the pool (%d pairs)", n, c.cfg.PoolPairs)
	}
	t0 := time.Now()
	defer c.wakeOnDone(ctx)()
	c.mu.Lock()
	defer c.mu.Unlock()
	want := n
	if c.cfg.Deterministic {
		want = c.cfg.PoolPairs
	}
	for {
		c.admit()
		if len(c.pool) >= want || (c.ended && len(c.queue) == 0) {
			break
		}
		if c.failed != nil {
			return nil, time.Since(t0), c.failed
		}
		if err := ctx.Err(); err != nil {
			return nil, time.Since(t0), err
		}
		c.cond.Wait()
	}
	if len(c.pool) < n {
		return nil, time.Since(t0), fmt.Errorf("%w: %d pairs left, %d asked for", ErrExhausted, len(c.pool), n)
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
