package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ScanOptions says which messages of a stream Scan delivers.
type ScanOptions struct {
	Stream string // stream name, default DefaultStream
	// Filter is the subject filter, default DefaultFilter (every run).
	Filter string
	// FromSeq and ToSeq bound the stream sequences, both inclusive. 0 means
	// the first message, and the stream's last sequence when the scan
	// starts: messages published during the scan are never included.
	FromSeq, ToSeq uint64
	// Since and Until bound the stream timestamps, both inclusive (zero:
	// unbounded). The scan stops at the first message stamped after Until.
	Since, Until time.Time
	Log          *slog.Logger // nil: no logging
}

// Delivered is one message Scan hands over.
type Delivered struct {
	Seq     uint64    // stream sequence
	Time    time.Time // stream timestamp
	Subject string
	Header  nats.Header
	Data    []byte // the exact stream bytes; the callee may keep them
	// Left is how many messages of the range the stream still holds after
	// this one (an estimate: the filter and the time bound can lower it).
	Left int
}

// Scan reads the messages of stream o.Stream matching o.Filter in the range
// o gives, in stream order, and calls fn with each; it stops at the first
// error fn returns. It reads through an ordered consumer (ephemeral, no
// acks: it changes nothing for other consumers), holding at most the
// consumer's buffer (bounded in bytes) besides what fn keeps.
//
// Scan returns ErrEmpty, without calling fn, when the stream holds no
// message in the sequence range; a range whose messages all miss the
// filter or the time bounds returns nil after no call.
func Scan(ctx context.Context, js jetstream.JetStream, o ScanOptions, fn func(context.Context, Delivered) error) error {
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
	if o.ToSeq != 0 && o.FromSeq > o.ToSeq {
		return fmt.Errorf("archive: from-seq %d is after to-seq %d", o.FromSeq, o.ToSeq)
	}
	if !o.Since.IsZero() && !o.Until.IsZero() && o.Until.Before(o.Since) {
		return fmt.Errorf("archive: until %s is before since %s", o.Until.Format(time.RFC3339Nano), o.Since.Format(time.RFC3339Nano))
	}
	st, err := js.Stream(ctx, o.Stream)
	if err != nil {
		return fmt.Errorf("archive: stream %s: %w", o.Stream, err)
	}
	info := st.CachedInfo()
	state := info.State
	end := state.LastSeq
	if o.ToSeq != 0 {
		end = min(end, o.ToSeq)
	}
	if o.FromSeq > 0 && o.FromSeq < state.FirstSeq {
		log.Warn("the stream no longer holds the start of the range: the scan starts at its first message",
			"stream", o.Stream, "from_seq", o.FromSeq, "first_seq", state.FirstSeq)
	}
	if state.Msgs == 0 || end < max(o.FromSeq, state.FirstSeq) {
		return fmt.Errorf("%w: stream %s holds seq %d..%d, the range asks for %d..%d", ErrEmpty, o.Stream, state.FirstSeq, state.LastSeq, o.FromSeq, end)
	}
	pullBytes := minPullBytes
	if mms := int(info.Config.MaxMsgSize); mms > 0 {
		pullBytes = max(pullBytes, 2*mms)
	}
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{o.Filter}}
	switch {
	case o.FromSeq > 0:
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, o.FromSeq
	case !o.Since.IsZero():
		since := o.Since
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := js.OrderedConsumer(ctx, o.Stream, cc)
	if err != nil {
		return fmt.Errorf("archive: consumer on %s: %w", o.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(pullBytes))
	if err != nil {
		return fmt.Errorf("archive: consumer on %s: %w", o.Stream, err)
	}
	defer func() {
		it.Stop()
		// Best effort: the server drops it after 5 idle minutes anyway.
		if ci := cons.CachedInfo(); ci != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = js.DeleteConsumer(dctx, o.Stream, ci.Name)
			cancel()
		}
	}()
	log.Info("scanning", "stream", o.Stream, "filter", o.Filter, "from_seq", max(o.FromSeq, state.FirstSeq), "to_seq", end)
	return scan(ctx, cons, it, o, end, fn)
}

// scan walks the range of an open consumer.
func scan(ctx context.Context, cons jetstream.Consumer, it jetstream.MessagesContext, o ScanOptions, end uint64, fn func(context.Context, Delivered) error) error {
	// Nothing delivered and nothing pending: no message matches at all,
	// and Next would wait forever.
	ci, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("archive: consumer info: %w", err)
	}
	if ci.Delivered.Consumer == 0 && ci.NumPending == 0 {
		return nil
	}
	for {
		nctx, ncancel := context.WithTimeout(ctx, idleCheck)
		msg, err := it.Next(jetstream.NextContext(nctx))
		ncancel()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				ci, err := cons.Info(ctx)
				if err != nil {
					return fmt.Errorf("archive: consumer info: %w", err)
				}
				if ci.NumPending == 0 {
					return nil // what was pending went away (retention)
				}
				continue
			}
			return fmt.Errorf("archive: reading stream %s: %w", o.Stream, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("archive: message on %s without JetStream metadata: %w", msg.Subject(), err)
		}
		seq, t := meta.Sequence.Stream, meta.Timestamp
		if seq > end || (!o.Until.IsZero() && t.After(o.Until)) {
			return nil
		}
		if o.Since.IsZero() || !t.Before(o.Since) {
			d := Delivered{Seq: seq, Time: t, Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data(),
				Left: int(min(meta.NumPending, end-seq))}
			if err := fn(ctx, d); err != nil {
				return err
			}
		}
		if seq == end || meta.NumPending == 0 {
			return nil
		}
	}
}
