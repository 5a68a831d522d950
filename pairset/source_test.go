package pairset_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/pairset"
	"github.com/pdmflow/pdmflow/schema"
)

// TestFromStreamAndFromArchive publishes testStream on a real JetStream
// (the undecodable message included), exports it straight from the stream
// as Parquet and through an archive as BasicSR, and checks that both hold
// the stream's pairs, the same ones, with the bad message listed.
func TestFromStreamAndFromArchive(t *testing.T) {
	ctx := context.Background()
	_, js := testutil.JetStream(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: archive.DefaultStream, Subjects: []string{"pdmflow.pairs.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	msgs, bad := testStream()
	var seqs []uint64
	for i, m := range msgs {
		if i == len(msgs)-2 {
			ack, err := js.Publish(ctx, bad.Subject, []byte("not an Arrow stream"))
			if err != nil {
				t.Fatal(err)
			}
			bad.Seq = ack.Sequence
		}
		data, err := schema.Encode(m.b, schema.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := js.Publish(ctx, m.o.Subject, data)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	pairs, _, _ := uniquePairs(msgs)

	// Straight from the stream, every run.
	pq := openDir(t, t.TempDir())
	w, err := pairset.NewParquet(ctx, pq, pairset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	m, err := pairset.FromStream(ctx, js, archive.ScanOptions{}, w, func(done, total int) {
		calls++
		if done > total {
			t.Errorf("progress %d of %d", done, total)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Pairs != len(pairs) || m.Duplicates != 3 || len(m.Skipped) != 1 || m.Skipped[0].Seq != bad.Seq || calls != len(msgs)+1 {
		t.Errorf("from the stream: %d pairs, %d duplicates, skipped %+v, %d progress calls; want %d, 3, seq %d, %d",
			m.Pairs, m.Duplicates, m.Skipped, calls, len(pairs), bad.Seq, len(msgs)+1)
	}

	// One run only, through an archive.
	ar := openDir(t, t.TempDir())
	if _, err := archive.Export(ctx, js, ar, archive.ExportOptions{Filter: "pdmflow.pairs.run-b.>"}); err != nil {
		t.Fatal(err)
	}
	r, err := archive.Open(ctx, ar)
	if err != nil {
		t.Fatal(err)
	}
	bs := openDir(t, t.TempDir())
	wb, err := pairset.NewBasicSR(ctx, bs, pairset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err = pairset.FromArchive(ctx, r, wb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Pairs != 4 || len(m.Skipped) != 0 || len(m.Runs) != 1 || m.Runs[0] != "run-b" {
		t.Errorf("run-b from the archive: %+v", m)
	}
	for _, p := range pairs {
		if p.RunID != "run-b" {
			continue
		}
		name, _ := pairset.Name(p.SampleID)
		if hr := decodePNG(t, bs, "HR/"+name+".png"); !bytes.Equal(hr.Pix, p.XRef) {
			t.Errorf("%s differs", name)
		}
	}

	// A range the stream does not hold: an error, and no manifest.
	empty := openDir(t, t.TempDir())
	w, err = pairset.NewParquet(ctx, empty, pairset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pairset.FromStream(ctx, js, archive.ScanOptions{FromSeq: seqs[len(seqs)-1] + 5}, w, nil); err == nil {
		t.Error("an empty range exported")
	}
	if _, err := pairset.ReadManifest(ctx, empty); err == nil {
		t.Error("a manifest after a failed export")
	}
}
