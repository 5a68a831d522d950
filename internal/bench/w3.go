package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/broker"
	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/internal/natsconn"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/store"
)

// W3's streams on the embedded broker. Both use consumer.EnsureStream's
// settings (file storage, limits retention); each run purges its messages.
const (
	w3Run        = "bench"
	w3Stream     = "BENCH_PAIRS"
	w3Subject    = "bench.pairs"
	w3RawStream  = "BENCH_RAW"
	w3RawSubject = "bench.raw"
	w3StreamMax  = 1 << 30
	// w3Timeout bounds one run, so that a stuck stream fails the benchmark
	// instead of hanging it.
	w3Timeout = 5 * time.Minute
)

// w3 is the pipeline workload: an embedded JetStream server with file
// storage in a temporary directory, one connection, random HR images in
// memory, and the encoded messages of the first pipeline run, which the
// raw runs publish again.
type w3 struct {
	s      Shapes
	dir    string
	b      *broker.Broker
	nc     *nats.Conn          // the consuming side's connection
	js     jetstream.JetStream // the consumers'
	pubNC  *nats.Conn          // the publishing side's connection
	pubJS  jetstream.JetStream // the producer's
	rawJS  jetstream.JetStream // raw runs' publishing (their own async publish state)
	pairs  jetstream.Stream
	raw    jetstream.Stream
	images *dataset.Dataset
	ppm    int      // pairs per message
	msgs   [][]byte // the first pipeline run's messages
	// Their headers and producer: rawRun, delivery and publishRun publish
	// them as the producer did (without the message id, so that a stream
	// does not drop a later run's copy as a duplicate), on a subject of
	// the same producer and run, so that the consumer admits them.
	msgHdrs []nats.Header
	msgProd string
	seq     int // runs so far, for unique subjects and durable names

	// On a device (w3dev.go): the device, the registry its PDM producers
	// load their weights from, and the phase whose first run stores the
	// messages that the others publish again (the pipeline on the CPU).
	dev   model.Device
	reg   *registry.Registry
	st    *store.Bucket
	first func(ctx context.Context, iter int) (time.Duration, error)
}

// newW3 prepares W3: on the CPU (dev nil) a bicubic producer's pipeline
// against JetStream alone; on a device see w3dev.go.
func newW3(ctx context.Context, s Shapes, dev model.Device) (_ *workload, err error) {
	w := &w3{s: s, ppm: s.pairsPerMessage(), dev: dev}
	if dev != nil {
		w.ppm = s.pdmPairsPerMessage()
	}
	if w.dir, err = os.MkdirTemp("", "pdmflow-bench-w3-"); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if w.b, err = broker.Start(ctx, broker.Options{Dir: filepath.Join(w.dir, "jetstream"), Port: -1}); err != nil {
		return nil, err
	}
	// Two connections, as between a producer's process and a trainer's:
	// every phase publishes on pubNC and consumes on nc.
	if w.nc, err = (natsconn.Config{URL: w.b.ClientURL(), Name: "pdmflow-bench-consumer"}).Connect(ctx, nil); err != nil {
		return nil, err
	}
	if w.pubNC, err = (natsconn.Config{URL: w.b.ClientURL(), Name: "pdmflow-bench-publisher"}).Connect(ctx, nil); err != nil {
		return nil, err
	}
	if w.pubJS, err = jetstream.New(w.pubNC); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if w.js, err = jetstream.New(w.nc); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	// JetStream alone publishes with the producer's bound on what is in
	// flight (DefaultMaxInFlightBytes, as messages of the aimed-at size).
	maxPending := max(1, int(producer.DefaultMaxInFlightBytes/int64(s.MsgBytes)))
	if w.rawJS, err = jetstream.New(w.pubNC, jetstream.WithPublishAsyncMaxPending(maxPending)); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if w.pairs, err = consumer.EnsureStream(ctx, w.js, consumer.StreamConfig{Name: w3Stream, Subject: w3Subject, MaxBytes: w3StreamMax}); err != nil {
		return nil, err
	}
	if w.raw, err = consumer.EnsureStream(ctx, w.js, consumer.StreamConfig{Name: w3RawStream, Subject: w3RawSubject, MaxBytes: w3StreamMax}); err != nil {
		return nil, err
	}
	w.images = randomImages(s.HR, 3)
	if dev != nil {
		return w.deviceWorkload(ctx)
	}
	w.first = w.pipeline
	return &workload{
		phases:   []phase{{name: "pipeline", fn: w.pipeline}, {name: "raw", fn: w.rawRun}, {name: "delivery", fn: w.delivery}},
		pairs:    s.Messages * w.ppm,
		msgBytes: w.meanMsgBytes,
		ppm:      w.ppm,
		close:    w.close,
	}, nil
}

// randomImages is an HR set in memory: four images of random pixels,
// twice the crop side hr square, drawn from seed.
func randomImages(hr int, seed uint64) *dataset.Dataset {
	r := rand.New(rand.NewPCG(seed, seed))
	side := 2 * hr
	d := &dataset.Dataset{Dir: "memory"}
	for i := 0; i < 4; i++ {
		pix := make([]uint8, 3*side*side)
		for j := range pix {
			pix[j] = uint8(r.IntN(256))
		}
		d.Items = append(d.Items, dataset.Item{Path: fmt.Sprintf("bench%d.png", i), W: side, H: side, Pix: pix})
	}
	return d
}

func (w *w3) close() {
	if w.nc != nil {
		w.nc.Close()
	}
	if w.pubNC != nil {
		w.pubNC.Close()
	}
	if w.st != nil {
		w.st.Close()
	}
	if w.b != nil {
		w.b.Shutdown()
	}
	os.RemoveAll(w.dir)
}

// producerConfig is the pipeline's producer: bicubic on the CPU, the PDM
// (weights from w.reg) on a device; consumer is the durable it watches
// for lag ("" for none).
func (w *w3) producerConfig(id, consumer string) producer.Config {
	c := producer.Config{
		Run: w3Run, ID: id, Seed: 1, Stream: w3Stream, Subject: w3Subject, Consumer: consumer,
		Degradation: producer.DegradeBicubic, HRSize: w.s.HR, Scale: w.s.Scale,
		BatchPairs: w.ppm, MaxBatches: w.s.Messages,
	}
	if w.dev != nil {
		pdm := w.s.PDMConfig()
		c.Degradation, c.Device, c.PDM = producer.DegradePDM, w.dev, &pdm
	}
	return c
}

func (w *w3) meanMsgBytes() int {
	if len(w.msgs) == 0 {
		return 0
	}
	n := 0
	for _, m := range w.msgs {
		n += len(m)
	}
	return n / len(w.msgs)
}

// poolPairs is the consumer's shuffle pool, sized as jobs.Pipeline sizes
// the trainer's.
func (w *w3) poolPairs() int { return max(4*w.s.Batch, 2*w.ppm) }

// pipeline is one run of the pipeline: a producer (bicubic degradation,
// Messages batches of ppm pairs, asynchronous publishing with its
// in-flight bound and lag checks) and a consumer (fetch, decode, validate,
// dedup, shuffle pool) from which batches of Batch pairs are taken until
// every pair has arrived. The time runs from the producer's start to the
// last Take; creating the consumer before and purging the stream after are
// not timed.
func (w *w3) pipeline(ctx context.Context, _ int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, w3Timeout)
	defer cancel()
	w.seq++
	id := fmt.Sprintf("p%d", w.seq)
	subject := producer.SubjectFor(w3Subject, w3Run, id)
	durable := "bench-" + id
	cons, err := consumer.New(ctx, w.js, consumer.Config{Stream: w3Stream, Durable: durable, Subject: subject, PoolPairs: w.poolPairs()}, consumer.State{}, nil, nil)
	if err != nil {
		return 0, err
	}
	defer w.js.DeleteConsumer(context.WithoutCancel(ctx), w3Stream, durable)
	prod, err := producer.New(w.producerConfig(id, durable), w.pubJS, w.reg, w.images, nil, nil)
	if err != nil {
		return 0, err
	}
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = cons.Run(runCtx) // returns when runCtx ends
	}()
	prodDone := make(chan error, 1)
	t0 := time.Now()
	go func() {
		err := prod.Run(runCtx)
		if err != nil {
			stop(fmt.Errorf("producer: %w", err))
		}
		prodDone <- err
	}()
	total := w.s.Messages * w.ppm
	r := rand.New(rand.NewPCG(uint64(w.seq), 4))
	for got := 0; got < total; {
		es, _, err := cons.Take(runCtx, min(w.s.Batch, total-got), r)
		if err != nil {
			if cause := context.Cause(runCtx); cause != nil {
				err = cause
			}
			stop(err)
			wg.Wait()
			return 0, fmt.Errorf("after %d of %d pairs: %w", got, total, err)
		}
		got += len(es)
	}
	d := time.Since(t0)
	perr := <-prodDone // every batch was taken, so every batch was acked
	stop(nil)
	// Deleting the consumer ends its pending fetch at once.
	_ = w.js.DeleteConsumer(ctx, w3Stream, durable)
	wg.Wait()
	if perr != nil {
		return 0, perr
	}
	if w.msgs == nil {
		if w.msgs, w.msgHdrs, w.msgProd, err = storedMessages(ctx, w.pairs); err != nil {
			return 0, err
		}
		if len(w.msgs) != w.s.Messages {
			return 0, fmt.Errorf("bench: the stream holds %d messages, want %d", len(w.msgs), w.s.Messages)
		}
	}
	if err := w.pairs.Purge(ctx); err != nil {
		return 0, fmt.Errorf("bench: purge: %w", err)
	}
	return d, nil
}

// storedMessages reads every message of st: the payloads, the headers and
// the producer (the last token of the subject; one producer made them).
func storedMessages(ctx context.Context, st jetstream.Stream) ([][]byte, []nats.Header, string, error) {
	info, err := st.Info(ctx)
	if err != nil {
		return nil, nil, "", fmt.Errorf("bench: %w", err)
	}
	var out [][]byte
	var hdrs []nats.Header
	var prod string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			return nil, nil, "", fmt.Errorf("bench: message %d: %w", seq, err)
		}
		out = append(out, m.Data)
		h := nats.Header{}
		for k, v := range m.Header {
			if k != jetstream.MsgIDHeader {
				h[k] = v
			}
		}
		hdrs = append(hdrs, h)
		prod = m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	}
	return out, hdrs, prod, nil
}

// rawRun is JetStream alone: the first pipeline run's messages published
// with PublishAsync (at most as many in flight as a producer allows) into a
// stream of the same settings and consumed by a
// pull consumer with the trainer consumer's settings and fetch size, each
// message acked and not decoded. The time runs from the first publish to
// the last message received with every publish acked.
func (w *w3) rawRun(ctx context.Context, iter int) (time.Duration, error) {
	if err := w.ensureMsgs(ctx, iter); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, w3Timeout)
	defer cancel()
	w.seq++
	subject := fmt.Sprintf("%s.%d", w3RawSubject, w.seq)
	durable := fmt.Sprintf("raw-%d", w.seq)
	c, err := w.js.CreateConsumer(ctx, w3RawStream, jetstream.ConsumerConfig{
		Durable: durable, FilterSubject: subject + ".>", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 2 * time.Minute, MaxDeliver: 10, MaxAckPending: 64, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return 0, fmt.Errorf("bench: raw consumer: %w", err)
	}
	defer w.js.DeleteConsumer(context.WithoutCancel(ctx), w3RawStream, durable)
	fetch := max(1, w.poolPairs()/w.ppm)
	n := len(w.msgs)
	got := make(chan error, 1)
	t0 := time.Now()
	go func() {
		received := 0
		for received < n {
			if err := ctx.Err(); err != nil {
				got <- err
				return
			}
			batch, err := c.Fetch(min(fetch, n-received), jetstream.FetchMaxWait(time.Second))
			if err != nil {
				got <- err
				return
			}
			for msg := range batch.Messages() {
				_ = msg.Data()
				if err := msg.Ack(); err != nil {
					got <- err
					return
				}
				received++
			}
			if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
				got <- err
				return
			}
		}
		got <- nil
	}()
	acked, err := w.publishStored(ctx, subject)
	if err != nil {
		return 0, err
	}
	if err := acked(); err != nil {
		return 0, err
	}
	if err := <-got; err != nil {
		return 0, fmt.Errorf("bench: raw consume: %w", err)
	}
	d := time.Since(t0)
	if err := w.raw.Purge(ctx); err != nil {
		return 0, fmt.Errorf("bench: purge: %w", err)
	}
	return d, nil
}

// delivery is the pipeline without the producer's generation: the first
// pipeline run's encoded messages published as rawRun publishes them, into
// pdmflow's consumer (fetch, decode, validation, dedup, shuffle pool) from
// which batches are taken until every pair has arrived. Against rawRun it
// is the cost of the decoding side; against pipeline, the producer's.
func (w *w3) delivery(ctx context.Context, iter int) (time.Duration, error) {
	if err := w.ensureMsgs(ctx, iter); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, w3Timeout)
	defer cancel()
	w.seq++
	subject := fmt.Sprintf("%s.%d", w3RawSubject, w.seq)
	durable := fmt.Sprintf("delivery-%d", w.seq)
	cons, err := consumer.New(ctx, w.js, consumer.Config{Stream: w3RawStream, Durable: durable, Subject: subject + ".>", PoolPairs: w.poolPairs()}, consumer.State{}, nil, nil)
	if err != nil {
		return 0, err
	}
	defer w.js.DeleteConsumer(context.WithoutCancel(ctx), w3RawStream, durable)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = cons.Run(runCtx)
	}()
	total := len(w.msgs) * w.ppm
	t0 := time.Now()
	acked, err := w.publishStored(ctx, subject)
	if err != nil {
		return 0, err
	}
	r := rand.New(rand.NewPCG(uint64(w.seq), 5))
	for got := 0; got < total; {
		es, _, err := cons.Take(runCtx, min(w.s.Batch, total-got), r)
		if err != nil {
			return 0, fmt.Errorf("bench: delivery after %d of %d pairs: %w", got, total, err)
		}
		got += len(es)
	}
	if err := acked(); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	stop()
	_ = w.js.DeleteConsumer(ctx, w3RawStream, durable)
	wg.Wait()
	if err := w.raw.Purge(ctx); err != nil {
		return 0, fmt.Errorf("bench: purge: %w", err)
	}
	return d, nil
}

// ensureMsgs runs the first phase once (the pipeline on the CPU) if the
// stored messages that rawRun and delivery publish have not been read yet.
func (w *w3) ensureMsgs(ctx context.Context, iter int) error {
	if w.msgs != nil {
		return nil
	}
	_, err := w.first(ctx, iter)
	return err
}

// publishStored publishes the stored messages with their headers to
// prefix.RUN.PRODUCER with PublishAsync and returns a function that waits
// for every ack.
func (w *w3) publishStored(ctx context.Context, prefix string) (func() error, error) {
	futs := make([]jetstream.PubAckFuture, 0, len(w.msgs))
	subject := producer.SubjectFor(prefix, w3Run, w.msgProd)
	for i, m := range w.msgs {
		f, err := w.rawJS.PublishMsgAsync(&nats.Msg{Subject: subject, Header: w.msgHdrs[i], Data: m})
		if err != nil {
			return nil, fmt.Errorf("bench: publish: %w", err)
		}
		futs = append(futs, f)
	}
	return func() error {
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("bench: publish: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}, nil
}
