package pairset

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/schema"
)

// Progress, when set, is called after each message with the messages done
// and an estimate of the total.
type Progress func(done, total int)

// FromStream writes the messages of a stream range (archive.Scan) into w,
// in stream order, then closes w. A message schema.Decode refuses is
// recorded with w.Skip and the export goes on. On error w is aborted: the
// destination holds no manifest.
func FromStream(ctx context.Context, js jetstream.JetStream, o archive.ScanOptions, w Writer, progress Progress) (*Manifest, error) {
	done := 0
	err := archive.Scan(ctx, js, o, func(ctx context.Context, d archive.Delivered) error {
		if err := add(ctx, w, Origin{Seq: d.Seq, Time: d.Time, Subject: d.Subject}, d.Data); err != nil {
			return err
		}
		done++
		if progress != nil {
			progress(done, done+d.Left)
		}
		return nil
	})
	if err != nil {
		w.Abort()
		return nil, err
	}
	return w.Close(ctx)
}

// FromArchive writes every message of an archive into w, in stream order,
// then closes w; messages the archive recorded as undecodable are skipped
// with their error. On error w is aborted.
func FromArchive(ctx context.Context, r *archive.Reader, w Writer, progress Progress) (*Manifest, error) {
	msgs := r.Manifest().Messages
	for i, m := range msgs {
		o := Origin{Seq: m.Seq, Time: m.Time, Subject: m.Subject}
		if m.Error != "" {
			w.Skip(o, fmt.Errorf("%s", m.Error))
		} else {
			data, err := r.Read(ctx, i)
			if err != nil {
				w.Abort()
				return nil, err
			}
			if err := add(ctx, w, o, data); err != nil {
				w.Abort()
				return nil, err
			}
		}
		if progress != nil {
			progress(i+1, len(msgs))
		}
	}
	return w.Close(ctx)
}

// add decodes one message and adds its batch, or records it as skipped.
func add(ctx context.Context, w Writer, o Origin, data []byte) error {
	b, err := schema.Decode(data, schema.DecodeOptions{})
	if err != nil {
		w.Skip(o, err)
		return nil
	}
	return w.Add(ctx, o, b)
}
