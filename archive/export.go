package archive

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

// ExportOptions says what part of the stream Export archives.
type ExportOptions struct {
	Stream string // stream name, default DefaultStream
	// Filter is the subject filter, default DefaultFilter (every run);
	// "pdmflow.pairs.RUN.>" archives one run.
	Filter string
	// FromSeq and ToSeq bound the stream sequences, both inclusive. 0 means
	// the first message, and the stream's last sequence when the export
	// starts: messages published during the export are never included.
	FromSeq, ToSeq uint64
	// Since and Until bound the stream timestamps, both inclusive (zero:
	// unbounded). They combine with FromSeq and ToSeq. The export stops at
	// the first message stamped after Until.
	Since, Until time.Time
	Log          *slog.Logger // nil: no logging
	// Progress, when set, is called after each message is stored with the
	// number stored so far and an estimate of the total (exact once the
	// export ends). Calls are never concurrent.
	Progress func(done, total int)
}

// writers is the number of message objects Export stores at once; it
// hides object-store latency (S3 round trips, fsync) behind the stream.
const writers = 4

// minPullBytes bounds the consumer's buffer: at least this much, or two
// of the stream's largest messages.
const minPullBytes = 64 << 20

// idleCheck is how long Export waits for a message before asking the
// server whether any is left (one could vanish to retention in between).
const idleCheck = 5 * time.Second

// Export copies the messages of stream o.Stream that match o.Filter, in the
// range o gives, into dst, then writes the manifest and returns it.
//
// It reads the stream in order with an ordered consumer (ephemeral, no
// acks: it changes nothing for other consumers) and streams through it:
// each message is stored under MessageKey(seq) with exactly its stream
// bytes. A message that schema.Decode refuses is stored too, with
// Message.Error set. The manifest is stored last, with a conditional put;
// until then dst holds an incomplete archive. On any error (a failed
// write, the stream going away, ctx ending) Export writes no manifest and
// returns an error naming the key concerned; running it again into the
// same dst rewrites the message objects.
//
// Export refuses a dst that already holds a manifest (ErrExists) and a
// range without any matching message (ErrEmpty).
func Export(ctx context.Context, js jetstream.JetStream, dst *store.Bucket, o ExportOptions) (*Manifest, error) {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Filter == "" {
		o.Filter = DefaultFilter
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := dst.Stat(ctx, ManifestKey); err == nil {
		return nil, fmt.Errorf("%w: %s holds %s; export into an empty destination", ErrExists, dst.URL(), ManifestKey)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("archive: export: %w", err)
	}
	log.Info("exporting", "stream", o.Stream, "filter", o.Filter, "to", dst.URL())
	e := &exporter{o: o, dst: dst, log: log, runs: map[string]bool{}, weights: map[Weights]bool{}}
	e.m = &Manifest{Format: Format, Stream: o.Stream, Filter: o.Filter}
	so := ScanOptions{Stream: o.Stream, Filter: o.Filter, FromSeq: o.FromSeq, ToSeq: o.ToSeq, Since: o.Since, Until: o.Until, Log: log}
	if err := e.run(ctx, func(ctx context.Context, jobs chan<- job) error {
		return Scan(ctx, js, so, func(ctx context.Context, d Delivered) error { return e.deliver(ctx, d, jobs) })
	}); err != nil {
		return nil, err
	}
	m := e.m
	if len(m.Messages) == 0 {
		return nil, fmt.Errorf("%w: no message of stream %s in the range matches %s and the time range", ErrEmpty, o.Stream, o.Filter)
	}
	first, last := m.Messages[0], m.Messages[len(m.Messages)-1]
	m.FirstSeq, m.LastSeq, m.FirstTime, m.LastTime = first.Seq, last.Seq, first.Time, last.Time
	m.Runs = make([]string, 0, len(e.runs))
	for r := range e.runs {
		m.Runs = append(m.Runs, r)
	}
	slices.Sort(m.Runs)
	m.Weights = make([]Weights, 0, len(e.weights))
	for w := range e.weights {
		m.Weights = append(m.Weights, w)
	}
	slices.SortFunc(m.Weights, func(a, b Weights) int {
		return cmp.Or(cmp.Compare(a.Run, b.Run), cmp.Compare(a.Version, b.Version), cmp.Compare(a.SHA256, b.SHA256))
	})
	m.Created = time.Now().UTC()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("archive: export: %w", err)
	}
	if err := dst.PutIfAbsent(ctx, ManifestKey, append(data, '\n')); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("%w: %s: another export finished there first", ErrExists, dst.URL())
		}
		return nil, fmt.Errorf("archive: export: writing the manifest (the archive stays incomplete): %w", err)
	}
	log.Info("export done", "to", dst.URL(), "messages", len(m.Messages), "pairs", m.Pairs, "bytes", m.Bytes, "first_seq", m.FirstSeq, "last_seq", m.LastSeq)
	return m, nil
}

// exporter is the state of one Export.
type exporter struct {
	o   ExportOptions
	dst *store.Bucket
	log *slog.Logger

	m       *Manifest
	runs    map[string]bool
	weights map[Weights]bool

	mu    sync.Mutex // guards done, total and the Progress calls
	done  int
	total int
}

type job struct {
	seq  uint64
	key  string
	data []byte
}

// run reads the range from it and stores each message, with writers
// goroutines doing the puts. It returns the first error.
func (e *exporter) run(parent context.Context, read func(context.Context, chan<- job) error) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain after a failure
				}
				if err := e.dst.Put(ctx, j.key, j.data); err != nil {
					cancel(fmt.Errorf("archive: export: storing stream seq %d (no manifest written, the archive is incomplete): %w", j.seq, err))
					continue
				}
				e.stored()
			}
		})
	}
	readErr := read(ctx, jobs)
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err // a write failed, or parent ended
	}
	if readErr != nil {
		return readErr
	}
	if e.o.Progress != nil {
		e.mu.Lock()
		e.o.Progress(e.done, e.done)
		e.mu.Unlock()
	}
	return nil
}

func (e *exporter) stored() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.done++
	if e.o.Progress != nil {
		e.o.Progress(e.done, max(e.total, e.done))
	}
}

// deliver records a message of the range and queues it on jobs.
func (e *exporter) deliver(ctx context.Context, d Delivered, jobs chan<- job) error {
	e.record(d.Seq, d.Time, d.Subject, d.Header, d.Data)
	e.mu.Lock()
	e.total = len(e.m.Messages) + d.Left
	e.mu.Unlock()
	select {
	case jobs <- job{seq: d.Seq, key: MessageKey(d.Seq), data: d.Data}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// record adds a message to the manifest.
func (e *exporter) record(seq uint64, t time.Time, subject string, hdr nats.Header, data []byte) {
	sum := sha256.Sum256(data)
	msg := Message{
		Seq: seq, Time: t.UTC(), Subject: subject, Key: MessageKey(seq),
		Bytes: len(data), SHA256: hex.EncodeToString(sum[:]),
		Header: map[string]string{},
	}
	// The headers a trainer checks the rows against (not the filler).
	for _, k := range []string{jetstream.MsgIDHeader, schema.HeaderBatchSeq, schema.HeaderPairs, schema.HeaderWeights} {
		if v := hdr.Get(k); v != "" {
			msg.Header[k] = v
		}
	}
	e.m.Bytes += int64(len(data))
	b, err := schema.Decode(data, schema.DecodeOptions{})
	if err != nil {
		msg.Error = err.Error()
		e.log.Warn("undecodable message archived with its error", "seq", seq, "subject", subject, "err", err)
		e.m.Messages = append(e.m.Messages, msg)
		return
	}
	first := b.Pairs[0] // Decode refuses empty batches
	msg.Run, msg.Producer, msg.BatchSeq, msg.Pairs = first.RunID, first.ProducerID, first.BatchSeq, len(b.Pairs)
	msg.WeightsVersion, msg.WeightsSHA256 = first.WeightsVersion, first.WeightsSHA256
	if e.m.Header == nil {
		h := b.Header
		e.m.Header = &h
	}
	e.m.Pairs += len(b.Pairs)
	for _, p := range b.Pairs {
		e.runs[p.RunID] = true
		if p.WeightsVersion != 0 {
			e.weights[Weights{Run: p.RunID, Version: p.WeightsVersion, SHA256: p.WeightsSHA256}] = true
		}
	}
	e.m.Messages = append(e.m.Messages, msg)
}
