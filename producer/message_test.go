package producer

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/schema"
)

// TestProducerMessages runs producers whose ids give headers of every
// length modulo 8 and reads their messages back as a consumer does:
//   - every payload arrives 8-byte aligned in the client's buffer (the
//     padding header), so that Decode can use it in place;
//   - with more batches than buffers kept for reuse, every message is still
//     the batch its seeds make (a buffer reused while its message was in
//     flight would show here).
func TestProducerMessages(t *testing.T) {
	ctx := context.Background()
	_, js := testutil.JetStream(t)
	if _, err := consumer.EnsureStream(ctx, js, consumer.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	images := testImages(t)
	const batches = maxFreeBuffers + 8
	total := 0
	for _, id := range []string{"p", "p1", "p22", "p333", "p4444", "p55555", "p666666", "p7777777"} {
		cfg := Config{Run: "run1", ID: id, Stream: "PDMFLOW_PAIRS", Subject: "pdmflow.pairs",
			Degradation: DegradeBicubic, Scale: 4, HRSize: 16, BatchPairs: 3, MaxBatches: batches}
		if id != "p" {
			cfg.MaxBatches = 1
		}
		p, err := New(cfg, js, nil, images, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(ctx); err != nil {
			t.Fatal(err)
		}
		total += cfg.MaxBatches
	}
	c, err := js.CreateConsumer(ctx, "PDMFLOW_PAIRS", jetstream.ConsumerConfig{Durable: "check", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for seen < total {
		batch, err := c.Fetch(total-seen, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for msg := range batch.Messages() {
			seen++
			data := msg.Data()
			if a := uintptr(unsafe.Pointer(&data[0])) % 8; a != 0 {
				t.Errorf("%s: payload at an address %d mod 8 (headers %v)", msg.Subject(), a, msg.Headers())
			}
			b, err := schema.Decode(data, schema.DecodeOptions{})
			if err != nil {
				t.Fatalf("%s: %v", msg.Subject(), err)
			}
			again, err := Regenerate(images, nil, b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range b.Pairs {
				if d := Diff(b.Pairs[i], again.Pairs[i]); d != nil {
					t.Fatalf("%s: row %d is not what its seed makes: %v", b.Pairs[i].SampleID, i, d)
				}
			}
			_ = msg.Ack()
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
	}
	if seen != total {
		t.Fatalf("read %d messages, want %d", seen, total)
	}
}
