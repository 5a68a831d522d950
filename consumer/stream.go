package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig describes the JetStream stream that carries pairs.
type StreamConfig struct {
	Name            string        // default "PDMFLOW_PAIRS"
	Subject         string        // subject prefix, default "pdmflow.pairs"; the stream holds Subject.>
	Replicas        int           // default 1 (3 on a 3-node cluster)
	MaxBytes        int64         // retention limit in bytes (default 8 GiB); the oldest messages go first
	MaxAge          time.Duration // retention limit in time (0: none)
	DuplicateWindow time.Duration // Nats-Msg-Id dedup window (default 10 min)
	MaxMsgSize      int32         // default 8 MiB
	Memory          bool          // memory storage instead of files (tests only)
}

// Defaults fills zero fields.
func (c *StreamConfig) Defaults() {
	if c.Name == "" {
		c.Name = "PDMFLOW_PAIRS"
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

// EnsureStream creates the stream, or leaves an existing one as its
// operator configured it: a producer or trainer started with defaults must
// not shrink its retention or lower its replicas. The one change made to an
// existing stream is raising its replicas when c asks for more. It uses the
// limits retention policy: a work-queue stream would delete acked messages
// and make replay impossible. Retention does not push back on producers;
// they watch the consumer's lag instead.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) (jetstream.Stream, error) {
	c.Defaults()
	if s, err := js.Stream(ctx, c.Name); err == nil {
		cur := s.CachedInfo().Config
		if c.Replicas <= cur.Replicas {
			return s, nil
		}
		cur.Replicas = c.Replicas
		if s, err = js.UpdateStream(ctx, cur); err != nil {
			return nil, fmt.Errorf("consumer: raising the replicas of stream %s to %d: %w", c.Name, c.Replicas, err)
		}
		return s, nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("consumer: stream %s: %w", c.Name, err)
	}
	storage := jetstream.FileStorage
	if c.Memory {
		storage = jetstream.MemoryStorage
	}
	cfg := jetstream.StreamConfig{
		Name:        c.Name,
		Description: "pdmflow: (x_ref, y_ref) pair batches as Arrow IPC streams",
		Subjects:    []string{c.Subject + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxBytes:    c.MaxBytes,
		MaxAge:      c.MaxAge,
		MaxMsgSize:  c.MaxMsgSize,
		Duplicates:  c.DuplicateWindow,
		Storage:     storage,
		Replicas:    c.Replicas,
	}
	s, err := js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Created by another process since the lookup above.
		s, err = js.Stream(ctx, c.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer: stream %s: %w", c.Name, err)
	}
	return s, nil
}
