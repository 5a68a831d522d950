package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig describes the JetStream stream that carries pairs.
//
// Each run has a stream of its own by default, PDMFLOW_PAIRS_RUN holding
// Subject.RUN.>, so that its retention limits are its own: another run's
// producers never push its unread messages out. A stream made by an
// earlier pdmflow for every run (PDMFLOW_PAIRS, Subject.>) is used when it
// is there (EnsureStream finds it by subject).
type StreamConfig struct {
	Name string // default "PDMFLOW_PAIRS_" + Run, or "PDMFLOW_PAIRS" without a run
	// Run is the run the stream is for: it holds Subject.Run.> (without a
	// run, Subject.>: every run's).
	Run             string
	Subject         string        // subject prefix, default "pdmflow.pairs"
	Replicas        int           // default 1 (3 on a 3-node cluster)
	MaxBytes        int64         // retention limit in bytes (default 8 GiB); the oldest messages go first
	MaxAge          time.Duration // retention limit in time (0: none)
	MaxMsgs         int64         // retention limit in messages (0: none)
	DuplicateWindow time.Duration // Nats-Msg-Id dedup window (default 10 min)
	MaxMsgSize      int32         // default 8 MiB
	Memory          bool          // memory storage instead of files (tests only)
}

// Defaults fills zero fields.
func (c *StreamConfig) Defaults() {
	if c.Name == "" {
		c.Name = DefaultStreamName(c.Run)
	}
	if c.Subject == "" {
		c.Subject = "pdmflow.pairs"
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 8 << 30
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
	if c.MaxMsgSize <= 0 {
		c.MaxMsgSize = 8 << 20
	}
}

// DefaultStreamName is the stream of a run: "PDMFLOW_PAIRS_" + run, or
// "PDMFLOW_PAIRS" (a stream of every run) for "".
func DefaultStreamName(run string) string {
	if run == "" {
		return "PDMFLOW_PAIRS"
	}
	return "PDMFLOW_PAIRS_" + run
}

// Subjects is what the stream holds: Subject.Run.* (one subject per
// producer, nothing else, so that every message in it is the trainer's to
// read and a gap in its sequence is a loss), or Subject.> without a run.
func (c StreamConfig) Subjects() string {
	if c.Run == "" {
		return c.Subject + ".>"
	}
	return c.Subject + "." + c.Run + ".*"
}

// OpenStream finds the stream of c (after Defaults): the one named c.Name,
// or else the one that holds c's subjects (a stream shared by every run,
// made by an earlier pdmflow). It creates nothing.
func OpenStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) (jetstream.Stream, error) {
	c.Defaults()
	s, err := js.Stream(ctx, c.Name)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("consumer: stream %s: %w", c.Name, err)
	}
	name, serr := js.StreamNameBySubject(ctx, c.Subjects())
	if serr != nil || name == "" {
		return nil, fmt.Errorf("consumer: stream %s: %w (and no stream holds %s)", c.Name, err, c.Subjects())
	}
	if s, err = js.Stream(ctx, name); err != nil {
		return nil, fmt.Errorf("consumer: stream %s (holding %s): %w", name, c.Subjects(), err)
	}
	return s, nil
}

// EnsureStream creates the stream, or leaves an existing one as its
// operator configured it: a producer or trainer started with defaults must
// not shrink its retention or lower its replicas. The one change made to an
// existing stream is raising its replicas when c asks for more. It uses the
// limits retention policy: a work-queue stream would delete acked messages
// and make replay impossible. Retention does not push back on producers;
// they watch the consumer's lag instead.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) (jetstream.Stream, error) {
	c.Defaults()
	s, err := OpenStream(ctx, js, c)
	if err == nil {
		cur := s.CachedInfo().Config
		if c.Replicas <= cur.Replicas {
			return s, nil
		}
		cur.Replicas = c.Replicas
		if s, err = js.UpdateStream(ctx, cur); err != nil {
			return nil, fmt.Errorf("consumer: raising the replicas of stream %s to %d: %w", cur.Name, c.Replicas, err)
		}
		return s, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, err
	}
	storage := jetstream.FileStorage
	if c.Memory {
		storage = jetstream.MemoryStorage
	}
	cfg := jetstream.StreamConfig{
		Name:        c.Name,
		Description: "pdmflow: (x_ref, y_ref) pair batches as Arrow IPC streams",
		Subjects:    []string{c.Subjects()},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxBytes:    c.MaxBytes,
		MaxAge:      c.MaxAge,
		MaxMsgs:     c.MaxMsgs,
		MaxMsgSize:  c.MaxMsgSize,
		Duplicates:  c.DuplicateWindow,
		Storage:     storage,
		Replicas:    c.Replicas,
	}
	s, err = js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Created by another process since the lookup above.
		s, err = js.Stream(ctx, c.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer: stream %s: %w", c.Name, err)
	}
	return s, nil
}
