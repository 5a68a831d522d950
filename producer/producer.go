// Package producer generates (x_ref, y_ref) training pairs with the current
// PDM weights and publishes them to NATS JetStream as Arrow record batches,
// one self-contained IPC stream per message (package schema).
//
// A producer crops HR images (a directory or an s3:// prefix), draws each
// sample from a seed derived from (run seed, producer id, batch sequence,
// row), degrades the batch, and publishes it asynchronously with the bytes
// in flight bounded. Its message id (run/producer/weights version/batch
// sequence) lets JetStream drop a batch published twice. It pauses while
// the trainer's consumer is further behind than its lag budget, follows the
// run's weights pointer (package registry) and swaps weights between
// batches, and keeps generating with the last good weights while the store
// or the pointer cannot be read.
package producer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/schema"
)

// Message headers besides Nats-Msg-Id (package schema names them).
const (
	HeaderBatchSeq = schema.HeaderBatchSeq
	HeaderPairs    = schema.HeaderPairs
	HeaderWeights  = schema.HeaderWeights
)

// DefaultMaxInFlightBytes bounds the bytes a producer has published and not
// yet seen acked: 16 MiB, eight messages of the default size. Unbounded,
// publishing outruns the broker: 128 MiB published at once got a
// connection closed by the server (seen in the W3 benchmark).
const DefaultMaxInFlightBytes = 16 << 20

// Config configures one producer.
type Config struct {
	Run         string // run id (registry.ValidRunID)
	ID          string // producer id, unique within the run (same charset)
	Seed        uint64 // the run's seed
	Stream      string // JetStream stream name
	Subject     string // subject prefix; the producer publishes to Subject.Run.ID
	Consumer    string // durable name of the trainer's consumer, watched for lag
	Degradation string // pdm, bicubic or gaussian
	HRSize      int    // side of the HR crops
	Scale       int    // SR factor (bicubic and gaussian; pdm: PDM.Scale)
	KernelSize  int    // gaussian: kernel side (odd)
	// PDM is the run's PDM config (required for the pdm degradation): the
	// run's contract must name it, and weights of any other config are
	// refused before anything is built from them.
	PDM *model.PDMConfig

	// BatchPairs is the number of pairs per message; 0 picks the number
	// that makes a message about TargetBytes.
	BatchPairs  int
	TargetBytes int // default 2 MiB

	MaxInFlightBytes int64         // bytes published and not yet acked (default DefaultMaxInFlightBytes)
	LagBudget        int           // pause while the consumer has more pending messages than this (default 16)
	LagPoll          time.Duration // the longest wait between lag readings while paused (default 200ms; the first is 10ms)
	WeightsPoll      time.Duration // how often to poll the weights pointer besides watching it (default 5s)
	// AckTimeout is how long a published batch waits for JetStream's ack
	// before it is published again with the same message id (the stream's
	// duplicate window drops it if the first one landed). An ack can be
	// lost when a cluster's stream leader goes down (default 15s).
	AckTimeout  time.Duration
	MaxBatches  int    // stop after this many batches (0: until ctx ends)
	Compression string // Arrow IPC body compression: "", "lz4" or "zstd"

	// Device runs the degradation (nil: model.CPU). The producer owns it
	// for the run but does not close it.
	Device model.Device
	// The producer holds its id within the run while it runs (a lease in
	// the registry's lease bucket), from before it resumes its batch
	// sequence: a second live process with the same id is refused, so two
	// never publish the same sample ids. LeaseWait is how long to wait for
	// another holder's lease to expire (0: twice registry.DefaultLeaseTTL;
	// negative: not at all); Holder names this process (zero:
	// registry.ThisProcess).
	LeaseWait time.Duration
	Holder    registry.Holder
}

func (c *Config) defaults() {
	if c.TargetBytes <= 0 {
		c.TargetBytes = 2 << 20
	}
	if c.MaxInFlightBytes <= 0 {
		c.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if c.LagBudget <= 0 {
		c.LagBudget = 16
	}
	if c.LagPoll <= 0 {
		c.LagPoll = 200 * time.Millisecond
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 15 * time.Second
	}
	if c.WeightsPoll <= 0 {
		c.WeightsPoll = 5 * time.Second
	}
	if c.KernelSize <= 0 {
		c.KernelSize = 21
	}
}

// Validate reports what cannot work.
func (c *Config) Validate() error {
	var errs []error
	if err := registry.ValidRunID(c.Run); err != nil {
		errs = append(errs, err)
	}
	if err := registry.ValidRunID(c.ID); err != nil {
		errs = append(errs, fmt.Errorf("producer id: %w", err))
	}
	if c.Stream == "" || c.Subject == "" {
		errs = append(errs, errors.New("stream and subject are required"))
	}
	switch c.Degradation {
	case DegradePDM:
		if c.PDM == nil {
			errs = append(errs, errors.New("the pdm degradation needs the run's PDM config"))
		} else if err := c.PDM.Validate(); err != nil {
			errs = append(errs, err)
		} else if c.HRSize%c.PDM.Scale != 0 || c.HRSize < c.PDM.Kernel.Size {
			errs = append(errs, fmt.Errorf("hr size %d must be a multiple of the PDM's scale %d and at least its kernel size %d", c.HRSize, c.PDM.Scale, c.PDM.Kernel.Size))
		}
	case DegradeBicubic, DegradeGaussian:
		if c.Scale < 2 || c.Scale > 4 {
			errs = append(errs, fmt.Errorf("scale %d: 2, 3 or 4", c.Scale))
		}
		if c.Degradation == DegradeGaussian && c.KernelSize%2 == 0 {
			errs = append(errs, fmt.Errorf("kernel size %d must be odd", c.KernelSize))
		}
	default:
		errs = append(errs, fmt.Errorf("degradation %q: pdm, bicubic or gaussian", c.Degradation))
	}
	if c.HRSize < 8 {
		errs = append(errs, fmt.Errorf("hr size %d is too small", c.HRSize))
	}
	if c.BatchPairs < 0 || c.MaxBatches < 0 {
		errs = append(errs, errors.New("batch pairs and max batches must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	return nil
}

// Contract is the run contract this producer's config makes: what its
// messages are. Run refuses to produce in a run whose trainer published
// another (registry.Contract.Diff names the differences).
func (c Config) Contract() (registry.Contract, error) {
	c.defaults()
	if err := c.Validate(); err != nil {
		return registry.Contract{}, err
	}
	k := registry.Contract{Run: c.Run, SchemaMajor: schema.Major, Scale: c.Scale, HRH: c.HRSize, HRW: c.HRSize, Degradation: c.Degradation}
	switch c.Degradation {
	case DegradePDM:
		k.Scale = c.PDM.Scale
		if !c.PDM.Kernel.Spatial {
			k.KernelSize = c.PDM.Kernel.Size
		}
		k.PDMConfig = c.PDM.SHA256()
	case DegradeGaussian:
		k.KernelSize = c.KernelSize
	}
	k.LRH, k.LRW = schema.LRSize(c.HRSize, c.HRSize, k.Scale)
	return k, nil
}

// SubjectFor is the subject a producer of run publishes to.
func SubjectFor(prefix, run, id string) string { return prefix + "." + run + "." + id }

// MsgID is the Nats-Msg-Id of a batch.
func MsgID(run, id string, weightsVersion, batchSeq uint64) string {
	return fmt.Sprintf("%s/%s/%d/%d", run, id, weightsVersion, batchSeq)
}

// Producer is one generating node.
type Producer struct {
	cfg     Config
	js      jetstream.JetStream
	reg     *registry.Registry // nil for bicubic and gaussian
	images  *dataset.Dataset
	log     *slog.Logger
	m       *metrics.Producer
	gen     generator
	weights registry.Pointer      // in use
	wanted  registry.Pointer      // newest seen
	updates chan registry.Pointer // from registry.Follow (nil without weights)
	// contract is the run's message header once checked (zero without a
	// registry).
	contract schema.Header
	nextTry  time.Time
	backoff  time.Duration

	seq     uint64 // next batch sequence
	started uint64 // first batch sequence of this Run

	// The last lag reading: its value, when, and the batch sequence then.
	lagVal  int
	lagAt   time.Time
	lagSeq  uint64
	lagRead bool

	mu           sync.Mutex
	cond         *sync.Cond
	inflight     int64    // bytes published and not yet acked
	inflightMsgs int      // their messages
	free         [][]byte // buffers of acked messages, for the next ones
	failed       error    // an ack error that publishing has to retry
}

// New makes a producer. reg is needed for the pdm degradation.
func New(cfg Config, js jetstream.JetStream, reg *registry.Registry, images *dataset.Dataset, log *slog.Logger, m *metrics.Producer) (*Producer, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Degradation == DegradePDM && reg == nil {
		return nil, errors.New("producer: the pdm degradation needs the weights registry")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.NewProducer(nil, cfg.ID)
	}
	p := &Producer{cfg: cfg, js: js, reg: reg, images: images, log: log.With("producer", cfg.ID), m: m}
	p.cond = sync.NewCond(&p.mu)
	p.gen = generator{degradation: cfg.Degradation, hrSize: cfg.HRSize, scale: cfg.Scale, kernelSize: cfg.KernelSize, dev: cfg.Device}
	if cfg.PDM != nil && cfg.Degradation == DegradePDM {
		p.gen.scale = cfg.PDM.Scale
	}
	return p, nil
}

// Weights is the pointer of the weights in use (zero before any).
func (p *Producer) Weights() registry.Pointer { return p.weights }

// NextBatch is the sequence number the next batch will get.
func (p *Producer) NextBatch() uint64 { return p.seq }

// Run generates and publishes until ctx ends or MaxBatches are acked. It
// continues the batch sequence where an earlier run of the same producer
// id left it in the stream, so a restarted producer neither repeats nor
// skips a batch. On return every published batch has been acked (or ctx
// ended first).
func (p *Producer) Run(ctx context.Context) error {
	defer p.gen.close()
	subject := SubjectFor(p.cfg.Subject, p.cfg.Run, p.cfg.ID)
	if err := p.checkContract(ctx); err != nil {
		return err
	}
	ctx, stop, err := p.holdID(ctx)
	if err != nil {
		return err
	}
	defer stop()
	if err := p.resumeSeq(ctx, subject); err != nil {
		return err
	}
	if p.cfg.Degradation == DegradePDM {
		p.updates = make(chan registry.Pointer, 1)
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go p.reg.Follow(fctx, 0, p.cfg.WeightsPoll, p.updates)
		if err := p.waitFirstWeights(ctx, p.updates); err != nil {
			return err
		}
	}
	p.log.Info("producing", "subject", subject, "degradation", p.cfg.Degradation, "hr", p.cfg.HRSize,
		"from_batch", p.seq, "weights_version", p.weights.Version, "device", p.gen.device().Describe())
	start := p.seq
	p.started = start
	for p.cfg.MaxBatches == 0 || p.seq < start+uint64(p.cfg.MaxBatches) {
		if err := ctx.Err(); err != nil {
			break
		}
		// Swap weights between batches.
		select {
		case ptr := <-p.updates:
			p.wanted = ptr
		default:
		}
		p.maybeReload(ctx)
		if err := p.waitLag(ctx); err != nil {
			break
		}
		if err := p.publishBatch(ctx, subject); err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
	}
	err = p.drain(ctx)
	if cause := context.Cause(ctx); errors.Is(cause, registry.ErrLeaseHeld) {
		return cause
	}
	return err
}

// holdID takes the lease of the producer's id (a producer without a
// registry, in benchmarks and tests, has none) and returns a context that
// ends when the lease is lost, with the cause, and the function that
// releases it.
func (p *Producer) holdID(ctx context.Context) (context.Context, func(), error) {
	if p.reg == nil {
		return ctx, func() {}, nil
	}
	wait := p.cfg.LeaseWait
	switch {
	case wait == 0:
		wait = 2 * registry.DefaultLeaseTTL
	case wait < 0:
		wait = 0
	}
	h := p.cfg.Holder
	if h == (registry.Holder{}) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		h = registry.ThisProcess(hex.EncodeToString(b[:]))
	}
	lease, err := registry.AcquireLease(ctx, p.js, p.cfg.Run, p.cfg.ID, h, 0, wait, p.log)
	if err != nil {
		return ctx, nil, fmt.Errorf("producer: %w", err)
	}
	lctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-lease.Lost():
			cancel(fmt.Errorf("producer: %w: lost the hold on producer id %s of run %s (another process took it, after this one's lease expired or as this host's successor); stopped so that two processes never publish the same sample ids",
				registry.ErrLeaseHeld, p.cfg.ID, p.cfg.Run))
		case <-lctx.Done():
		}
	}()
	return lctx, func() {
		cancel(nil)
		rctx, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer done()
		if err := lease.Release(rctx); err != nil {
			p.log.Warn("producer lease not released: it expires by itself", "err", err)
		}
	}, nil
}

// checkContract waits for the run's contract (published by its trainer)
// and refuses to produce when this producer's config makes other messages,
// naming every difference. A producer without a registry (benchmarks,
// tests) has no run to check against.
func (p *Producer) checkContract(ctx context.Context) error {
	if p.reg == nil {
		return nil
	}
	own, err := p.cfg.Contract()
	if err != nil {
		return err
	}
	run, err := p.reg.WaitContract(ctx, 500*time.Millisecond, func() {
		p.log.Info("waiting for the run's contract (its trainer publishes it when it starts)", "key", p.reg.ContractKey())
	})
	if err != nil {
		return fmt.Errorf("producer: the contract of run %s: %w", p.cfg.Run, err)
	}
	if d := run.Diff("the run's, from its trainer", own, "this producer's config"); len(d) > 0 {
		return fmt.Errorf("producer: %w: this producer's messages would not be the run's: %s (use the trainer's config, --hr-crop and --degradation)",
			registry.ErrContractMismatch, strings.Join(d, "; "))
	}
	p.contract = own.Header()
	return nil
}

// resumeSeq sets the next batch sequence after the last batch of this
// producer in the stream. Messages on its subject that are not its batches
// (published by someone else, or malformed) are skipped with a warning:
// the last message is tried first, then, if it is not one, every message
// of the subject is scanned (headers only) for the highest batch whose
// headers and rows are this producer's.
func (p *Producer) resumeSeq(ctx context.Context, subject string) error {
	st, err := p.js.Stream(ctx, p.cfg.Stream)
	if err != nil {
		return fmt.Errorf("producer: stream %s: %w", p.cfg.Stream, err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("producer: last batch of %s: %w", subject, err)
	}
	seq, why := p.ownBatch(msg.Header, msg.Data)
	if why != "" {
		p.log.Warn("skipping a message on this producer's subject that is not one of its batches", "subject", subject, "stream_seq", msg.Sequence, "why", why)
		var found bool
		if seq, found, err = p.scanOwnBatches(ctx, st, subject); err != nil {
			return err
		}
		if !found {
			p.log.Info("no batch of this producer in the stream: starting at batch 0")
			return nil
		}
	}
	p.seq = seq + 1
	p.log.Info("continuing an earlier run of this producer", "next_batch", p.seq)
	return nil
}

// ownBatch reports whether a stored message is a batch of this producer:
// its batch sequence and message id headers agree, and its rows are of
// this run, this producer and that batch (and the run's header, once the
// contract is known). It returns the batch sequence, or why not.
func (p *Producer) ownBatch(h nats.Header, data []byte) (uint64, string) {
	hs := h.Get(HeaderBatchSeq)
	seq, err := strconv.ParseUint(hs, 10, 64)
	if err != nil {
		return 0, fmt.Sprintf("no valid %s header (%q)", HeaderBatchSeq, clip(hs))
	}
	if seq == math.MaxUint64 {
		return 0, fmt.Sprintf("batch sequence %d leaves no next batch", seq)
	}
	wv, err := strconv.ParseUint(h.Get(HeaderWeights), 10, 64)
	if err != nil {
		return 0, fmt.Sprintf("no valid %s header", HeaderWeights)
	}
	if id, want := h.Get(jetstream.MsgIDHeader), MsgID(p.cfg.Run, p.cfg.ID, wv, seq); id != want {
		return 0, fmt.Sprintf("message id %q, want %q", clip(id), want)
	}
	if data == nil {
		return seq, "" // a headers-only read: the caller reads the payload
	}
	b, err := schema.Decode(data, schema.DecodeOptions{MaxMessageBytes: max(len(data), schema.DefaultMaxMessageBytes)})
	if err != nil {
		return 0, err.Error()
	}
	if p.contract != (schema.Header{}) && !p.contract.SameStream(b.Header) {
		return 0, fmt.Sprintf("header %+v is not the run's %+v", b.Header, p.contract)
	}
	for _, r := range b.Pairs {
		if r.RunID != p.cfg.Run || r.ProducerID != p.cfg.ID || r.BatchSeq != seq {
			return 0, fmt.Sprintf("row %s is not of batch %d of %s/%s", r.SampleID, seq, p.cfg.Run, p.cfg.ID)
		}
	}
	return seq, ""
}

func clip(s string) string {
	if len(s) > 48 {
		return s[:48] + "..."
	}
	return s
}

// scanOwnBatches reads the headers of every message of the subject and
// returns the highest batch sequence among the messages that are this
// producer's batches (checking the payload of the candidates, highest
// first).
func (p *Producer) scanOwnBatches(ctx context.Context, st jetstream.Stream, subject string) (uint64, bool, error) {
	oc, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, HeadersOnly: true})
	if err != nil {
		return 0, false, fmt.Errorf("producer: scanning %s: %w", subject, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, false, fmt.Errorf("producer: scanning %s: %w", subject, err)
	}
	total := info.State.Msgs
	type cand struct{ seq, streamSeq uint64 }
	var cands []cand
	for n := uint64(0); n < total; {
		batch, err := oc.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return 0, false, fmt.Errorf("producer: scanning %s: %w", subject, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			n++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			if seq, why := p.ownBatch(m.Headers(), nil); why == "" {
				cands = append(cands, cand{seq, meta.Sequence.Stream})
			}
			if meta.NumPending == 0 {
				n = total
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return 0, false, fmt.Errorf("producer: scanning %s: %w", subject, err)
		}
		if got == 0 {
			break
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].seq > cands[j].seq })
	for _, c := range cands {
		msg, err := st.GetMsg(ctx, c.streamSeq)
		if err != nil {
			return 0, false, fmt.Errorf("producer: reading stream seq %d of %s: %w", c.streamSeq, subject, err)
		}
		if seq, why := p.ownBatch(msg.Header, msg.Data); why == "" {
			return seq, true, nil
		} else {
			p.log.Warn("skipping a message on this producer's subject that is not one of its batches", "subject", subject, "stream_seq", c.streamSeq, "why", why)
		}
	}
	return 0, false, nil
}

func (p *Producer) waitFirstWeights(ctx context.Context, updates <-chan registry.Pointer) error {
	p.log.Info("waiting for the first PDM weights", "key", p.reg.Key())
	retry := time.NewTicker(500 * time.Millisecond)
	defer retry.Stop()
	for p.gen.pdm == nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ptr := <-updates:
			p.wanted = ptr
		case <-retry.C:
		}
		p.maybeReload(ctx)
	}
	return nil
}

// maybeReload loads the newest pointer seen if it is newer than the
// weights in use and its retry time has come. A failure keeps the current
// weights and backs off (up to 30 s) before the next try.
func (p *Producer) maybeReload(ctx context.Context) {
	if p.wanted.Version <= p.weights.Version || time.Now().Before(p.nextTry) {
		return
	}
	t0 := time.Now()
	first := p.weights.Version == 0
	if err := p.load(ctx, p.wanted); err != nil {
		p.backoff = min(max(2*p.backoff, 500*time.Millisecond), 30*time.Second)
		p.nextTry = time.Now().Add(p.backoff)
		p.m.ReloadFailures.Inc()
		p.log.Warn("cannot load new weights, keeping the last good ones", "version", p.wanted.Version,
			"in_use", p.weights.Version, "retry_in", p.backoff, "err", err)
		if !first || !p.loadEarlier(ctx, p.wanted) {
			return
		}
	} else {
		p.backoff = 0 // after a fallback the refused version keeps its backoff
	}
	p.m.Reloads.Inc()
	p.m.WeightsVersion.Set(float64(p.weights.Version))
	p.m.ReloadSeconds.Observe(time.Since(t0).Seconds())
	lvl := slog.LevelDebug
	if first {
		lvl = slog.LevelInfo
	}
	p.log.Log(ctx, lvl, "loaded weights", "version", p.weights.Version, "step", p.weights.Step, "sha256", p.weights.SHA256[:12], "seconds", time.Since(t0).Seconds())
}

// loadEarlier is for a producer without weights whose newest pointer names
// weights it refuses: it loads the newest earlier version the pointer's
// history holds that it accepts, so that it can produce (a trainer without
// pairs would never publish better weights). It reports whether it did.
func (p *Producer) loadEarlier(ctx context.Context, refused registry.Pointer) bool {
	hist, err := p.reg.History(ctx)
	if err != nil {
		return false
	}
	for _, ptr := range hist {
		if ptr.Version >= refused.Version {
			continue
		}
		if err := p.load(ctx, ptr); err != nil {
			p.log.Warn("cannot load earlier weights either", "version", ptr.Version, "err", err)
			continue
		}
		p.log.Warn("starting with the newest earlier weights this producer accepts; the newer ones stay refused until the trainer publishes again",
			"version", ptr.Version, "refused", refused.Version)
		return true
	}
	return false
}

// load downloads, verifies and loads the weights ptr names. Their config
// is compared with the producer's own before anything is built from it:
// weights of another config (a wrong or hostile object) cost a download
// and a header parse, and the producer keeps the weights it has.
func (p *Producer) load(ctx context.Context, ptr registry.Pointer) error {
	b, err := p.reg.Fetch(ctx, ptr)
	if err != nil {
		return err
	}
	w, err := model.DecodeWeights(ptr.Key, b, model.KindPDM)
	if err != nil {
		return err
	}
	cfg, err := w.PDMConfig()
	if err != nil {
		return err
	}
	if d := cfg.Diff("the weights'", *p.cfg.PDM, "this producer's"); len(d) > 0 {
		return fmt.Errorf("producer: weights version %d (%s) are of another PDM config than this producer's: %s",
			ptr.Version, ptr.Key, strings.Join(d, "; "))
	}
	pdm, err := w.PDM()
	if err != nil {
		return err
	}
	if err := p.gen.setWeights(pdm); err != nil {
		return fmt.Errorf("producer: weights version %d on %s: %w", ptr.Version, p.gen.device().Name(), err)
	}
	p.weights = ptr
	return nil
}

// batchPairs is the number of pairs per message.
func (p *Producer) batchPairs() int {
	if p.cfg.BatchPairs > 0 {
		return p.cfg.BatchPairs
	}
	ls := (p.cfg.HRSize-1)/p.gen.scale + 1
	ks := p.gen.header().KernelSize
	per := 3*p.cfg.HRSize*p.cfg.HRSize + 4*3*ls*ls + 4*ks*ks + 128
	return max(1, p.cfg.TargetBytes/per)
}

// publishBatch generates batch p.seq and publishes it asynchronously.
func (p *Producer) publishBatch(ctx context.Context, subject string) error {
	n := p.batchPairs()
	t0 := time.Now()
	buf := p.takeBuffer()
	b, data, err := p.gen.generate(p.images, n, batchMeta{
		run: p.cfg.Run, producer: p.cfg.ID, runSeed: p.cfg.Seed, batchSeq: p.seq,
		weightsVersion: p.weights.Version, weightsSHA: p.weights.SHA256,
	}, buf)
	if err != nil {
		return fmt.Errorf("producer: batch %d: %w", p.seq, err)
	}
	recycle := true // data is the message buffer, free again once acked
	if p.cfg.Compression != "" {
		c, err := schema.Encode(b, schema.EncodeOptions{Compression: p.cfg.Compression})
		if err != nil {
			return fmt.Errorf("producer: batch %d: %w", p.seq, err)
		}
		p.putBuffer(data)
		data, recycle = c, false
	}
	p.m.GenerateSecs.Observe(time.Since(t0).Seconds())
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, MsgID(p.cfg.Run, p.cfg.ID, p.weights.Version, p.seq))
	msg.Header.Set(HeaderBatchSeq, strconv.FormatUint(p.seq, 10))
	msg.Header.Set(HeaderPairs, strconv.Itoa(n))
	msg.Header.Set(HeaderWeights, strconv.FormatUint(p.weights.Version, 10))
	alignPayload(msg)
	if err := p.acquire(ctx, int64(len(data))); err != nil {
		return err
	}
	p.send(ctx, msg, n, recycle)
	p.seq++
	return nil
}

// maxFreeBuffers bounds the message buffers a producer keeps for reuse:
// more than the messages in flight at once at the default bound.
const maxFreeBuffers = 16

// takeBuffer returns the buffer of an acked message, or nil.
func (p *Producer) takeBuffer() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return nil
	}
	b := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return b
}

// putBuffer keeps b for a later message.
func (p *Producer) putBuffer(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < maxFreeBuffers {
		p.free = append(p.free, b[:0])
	}
}

// HeaderPad is a header of filler characters that rounds the NATS header
// block of a message up to a multiple of 8 bytes. A NATS client receives a
// message's headers and payload in one allocation, headers first; with
// the payload 8-byte aligned there, the consumer decodes its Arrow buffers
// in place instead of copying the message to align them.
const HeaderPad = schema.HeaderPad

// alignPayload adds HeaderPad to msg so that its encoded header block
// ("NATS/1.0\r\n", "Key: value\r\n" per value, "\r\n") is a multiple of
// 8 bytes long.
func alignPayload(msg *nats.Msg) {
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range msg.Header {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	n += len(HeaderPad) + len(": ") + len("\r\n")
	pad := 8 - n%8 // 1..8 characters: a header value is never empty
	msg.Header.Set(HeaderPad, "........"[:pad])
}

// acquire waits until size more bytes may be in flight (one message is
// always allowed, whatever its size).
func (p *Producer) acquire(ctx context.Context, size int64) error {
	defer p.wakeOnDone(ctx)()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inflight > 0 && p.inflight+size > p.cfg.MaxInFlightBytes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.cond.Wait()
	}
	p.inflight += size
	p.inflightMsgs++
	p.m.InFlightBytes.Set(float64(p.inflight))
	return nil
}

// wakeOnDone wakes the goroutines waiting on p.cond when ctx ends; call
// the returned function when done waiting.
func (p *Producer) wakeOnDone(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
}

func (p *Producer) release(size int64) {
	p.mu.Lock()
	p.inflight -= size
	p.inflightMsgs--
	p.m.InFlightBytes.Set(float64(p.inflight))
	p.cond.Broadcast()
	p.mu.Unlock()
}

// send publishes msg asynchronously and, in the background, waits for its
// ack; a failed publish is retried with the same message id (so the
// server drops it if the first attempt did land) until it is acked or ctx
// ends.
func (p *Producer) send(ctx context.Context, msg *nats.Msg, pairs int, recycle bool) {
	size := int64(len(msg.Data))
	t0 := time.Now()
	fut, err := p.js.PublishMsgAsync(msg, jetstream.WithStallWait(5*time.Second))
	go func() {
		defer p.release(size)
		backoff := 100 * time.Millisecond
		for {
			if err == nil {
				timeout := time.NewTimer(p.cfg.AckTimeout)
				select {
				case <-fut.Ok():
					timeout.Stop()
					if recycle {
						// The client copied the message when it was
						// published; nothing republishes it now.
						p.putBuffer(msg.Data)
					}
					p.m.AckLatency.Observe(time.Since(t0).Seconds())
					p.m.Batches.Inc()
					p.m.Pairs.Add(float64(pairs))
					p.m.Bytes.Add(float64(size))
					return
				case err = <-fut.Err():
					timeout.Stop()
				case <-timeout.C:
					err = fmt.Errorf("no ack within %v", p.cfg.AckTimeout)
				case <-ctx.Done():
					timeout.Stop()
					return
				}
			}
			p.m.PublishErrors.Inc()
			p.log.Warn("publish failed, retrying", "msg_id", msg.Header.Get(jetstream.MsgIDHeader), "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			t0 = time.Now()
			fut, err = p.js.PublishMsgAsync(msg, jetstream.WithStallWait(5*time.Second))
		}
	}()
}

// drain waits until every published batch is acked or ctx ends.
func (p *Producer) drain(ctx context.Context) error {
	defer p.wakeOnDone(ctx)()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inflight > 0 {
		if ctx.Err() != nil {
			return nil
		}
		p.cond.Wait()
	}
	return nil
}

// waitLag pauses while the trainer's consumer has more than LagBudget
// messages pending or unacked, counting this producer's messages still in
// flight. Without a consumer (the trainer has not started) it allows
// LagBudget batches from this producer.
func (p *Producer) waitLag(ctx context.Context) error {
	stalled := false
	var since time.Time
	defer func() {
		if stalled {
			p.m.StallSeconds.Add(time.Since(since).Seconds())
		}
	}()
	// Reading the lag is a JetStream API round trip. Between readings (at
	// most LagPoll apart) it is estimated as the last reading plus this
	// producer's batches published since: the trainer only lowers it, and
	// other producers' batches show at the next reading, as they would have
	// between two readings anyway.
	if p.lagRead && time.Since(p.lagAt) < p.cfg.LagPoll && p.lagVal+int(p.seq-p.lagSeq) <= p.cfg.LagBudget {
		return nil
	}
	// While paused, the lag is read again after 10 ms, then at doubling
	// intervals up to LagPoll: a trainer that catches up at once does not
	// leave the producer idle for a whole LagPoll.
	wait := min(p.cfg.LagPoll, 10*time.Millisecond)
	for {
		lag, err := p.lag(ctx)
		if err != nil {
			p.log.Debug("cannot read consumer lag", "err", err)
		}
		p.lagVal, p.lagAt, p.lagSeq, p.lagRead = lag, time.Now(), p.seq, err == nil
		p.m.ConsumerLag.Set(float64(lag))
		if lag <= p.cfg.LagBudget {
			return nil
		}
		if !stalled {
			stalled, since = true, time.Now()
			p.m.Stalls.Inc()
			p.log.Debug("trainer is behind, pausing", "lag", lag, "budget", p.cfg.LagBudget)
		}
		// Paused: keep up with the weights, so that the next batch uses
		// the newest.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ptr := <-p.updates:
			p.wanted = ptr
			p.maybeReload(ctx)
		case <-time.After(wait):
		}
		wait = min(2*wait, p.cfg.LagPoll)
	}
}

func (p *Producer) lag(ctx context.Context) (int, error) {
	if p.cfg.Consumer == "" {
		return 0, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p.mu.Lock()
	inflight := p.inflightMsgs
	p.mu.Unlock()
	c, err := p.js.Consumer(cctx, p.cfg.Stream, p.cfg.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return int(p.seq - p.started), nil
	}
	if err != nil {
		return inflight, err
	}
	info := c.CachedInfo()
	return int(info.NumPending) + info.NumAckPending + inflight, nil
}
