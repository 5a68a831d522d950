package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/consumer"
)

// ArchiveSource replays the messages of an exported archive that come after
// stream sequence after, in their recorded order, as a consumer.Source:
// set StreamOptions.OpenSource to
//
//	func(_ context.Context, after uint64) (consumer.Source, error) { return trainer.ArchiveSource(r, after), nil }
//
// A message whose bytes fail their checksum, or are missing, stops the run
// (a Permanent error): training on anything but the recorded bytes would
// not be a replay. A store that does not answer is retried.
func ArchiveSource(r *archive.Reader, after uint64) consumer.Source {
	msgs := r.Manifest().Messages
	i := 0
	for i < len(msgs) && msgs[i].Seq <= after {
		i++
	}
	return &archiveSource{r: r, next: i}
}

type archiveSource struct {
	r    *archive.Reader
	next int
}

func (s *archiveSource) Fetch(ctx context.Context, max int, handle func(consumer.Message)) error {
	msgs := s.r.Manifest().Messages
	for n := 0; n < max && s.next < len(msgs); n++ {
		m := msgs[s.next]
		data, err := s.r.Read(ctx, s.next)
		if errors.Is(err, archive.ErrCorrupt) || errors.Is(err, archive.ErrIncomplete) {
			return consumer.Permanent(fmt.Errorf("trainer: replaying stream seq %d: %w", m.Seq, err))
		}
		if err != nil {
			// The store is away: the consumer retries.
			return fmt.Errorf("trainer: replaying stream seq %d: %w", m.Seq, err)
		}
		s.next++
		var hdr nats.Header
		if m.Header != nil {
			hdr = nats.Header{}
			for k, v := range m.Header {
				hdr.Set(k, v)
			}
		}
		handle(consumer.Message{Seq: m.Seq, Subject: m.Subject, Header: hdr, Data: data, Delivered: 1, Pending: uint64(len(msgs) - s.next)})
	}
	if s.next == len(msgs) {
		return io.EOF
	}
	return nil
}
