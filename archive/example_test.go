package archive_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/broker"
	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

// Export one run of the pair stream into a directory, then find a sample
// in the archive and decode it.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "archive-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A stream with two batches of run r1 and one of run r2.
	b, err := broker.Start(ctx, broker.Options{Dir: filepath.Join(dir, "jetstream"), Port: -1})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Shutdown()
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := consumer.EnsureStream(ctx, js, consumer.StreamConfig{Memory: true}); err != nil {
		log.Fatal(err)
	}
	for _, batch := range []struct {
		run  string
		seq  uint64
		rows int
	}{{"r1", 0, 4}, {"r2", 0, 2}, {"r1", 1, 4}} {
		msg, err := schema.Encode(testBatch(batch.run, "p0", batch.seq, batch.rows, 1), schema.EncodeOptions{})
		if err != nil {
			log.Fatal(err)
		}
		if _, err := js.Publish(ctx, "pdmflow.pairs."+batch.run+".p0", msg); err != nil {
			log.Fatal(err)
		}
	}

	dst, err := store.Open(ctx, filepath.Join(dir, "archive"), store.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer dst.Close()
	m, err := archive.Export(ctx, js, dst, archive.ExportOptions{Filter: "pdmflow.pairs.r1.>"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("archived seq %d..%d: %d messages, %d pairs of %v\n", m.FirstSeq, m.LastSeq, len(m.Messages), m.Pairs, m.Runs)

	r, err := archive.Open(ctx, dst)
	if err != nil {
		log.Fatal(err)
	}
	i, row, err := r.FindSample("r1/p0/1/2")
	if err != nil {
		log.Fatal(err)
	}
	batch, err := r.Batch(ctx, i)
	if err != nil {
		log.Fatal(err)
	}
	p := batch.Pairs[row]
	fmt.Printf("%s: stream seq %d, seed %d, weights v%d\n", p.SampleID, r.Manifest().Messages[i].Seq, p.Seed, p.WeightsVersion)
	// Output:
	// archived seq 1..3: 2 messages, 8 pairs of [r1]
	// r1/p0/1/2: stream seq 3, seed 1002, weights v1
}
