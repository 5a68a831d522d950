package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/store"
)

// StagesTarget is what W3 on a device aims at: the producer (generation
// and publishing together) at no less than this fraction of generation
// alone.
const StagesTarget = 0.8

// Stages are W3 on a device: what one producer, generating on the device
// with the PDM degradation at W1's networks, delivers into the embedded
// JetStream, against its two stages alone.
//
//   - producer: the producer publishing to JetStream (file storage), with
//     its in-flight bound and no consumer to wait for;
//   - generation: the same producer with every publish acked at once and
//     nothing sent (its generate path: crops, latents, the device's Run,
//     the message laid out);
//   - publish: the producer's messages published alone (PublishAsync with
//     the producer's in-flight bound) until every one is acked.
//
// The producer and generation runs are timed from their first publish to
// the producer's return (every message acked): a fresh producer's start
// (weights loaded, the device sampler allocated) and its first message's
// generation are left out, so TimedPairs is one message fewer than a run
// generates.
type Stages struct {
	Messages     int `json:"messages_per_run"`
	PairsPerMsg  int `json:"pairs_per_message"`
	MessageBytes int `json:"message_bytes"` // mean encoded size
	TimedPairs   int `json:"timed_pairs"`   // pairs in the producer's and generation's timed part

	ProducerTimes       []float64 `json:"producer_times_s"`
	ProducerSeconds     float64   `json:"producer_median_s"`
	ProducerPairsPerSec float64   `json:"producer_pairs_per_s"`
	ProducerMiBPerSec   float64   `json:"producer_mib_per_s"`

	GenerationTimes       []float64 `json:"generation_times_s"`
	GenerationSeconds     float64   `json:"generation_median_s"`
	GenerationPairsPerSec float64   `json:"generation_pairs_per_s"`
	GenerationMiBPerSec   float64   `json:"generation_mib_per_s"`

	PublishTimes       []float64 `json:"publish_times_s"`
	PublishSeconds     float64   `json:"publish_median_s"`
	PublishPairsPerSec float64   `json:"publish_pairs_per_s"`
	PublishMiBPerSec   float64   `json:"publish_mib_per_s"`

	// Ratio is the producer's pairs/s over generation's alone, the median
	// of the runs' ratios (the two run back to back); RunRatios are those.
	Ratio     float64   `json:"producer_over_generation"`
	RunRatios []float64 `json:"producer_over_generation_per_run"`
	// Limit is the slower stage alone: "generation" or "publishing".
	Limit string `json:"limit"`
}

// newStages computes Stages from the phases' times (seconds per run) and
// the pairs each run moves.
func newStages(prod []float64, prodPairs int, gen []float64, genPairs int, pub []float64, pubPairs int, msgBytes, ppm int) *Stages {
	st := &Stages{PairsPerMsg: ppm, MessageBytes: msgBytes, TimedPairs: prodPairs,
		ProducerTimes: prod, GenerationTimes: gen, PublishTimes: pub}
	if ppm > 0 {
		st.Messages = pubPairs / ppm
	}
	mib := func(pairsPerSec float64) float64 {
		if ppm == 0 {
			return 0
		}
		return pairsPerSec / float64(ppm) * float64(msgBytes) / (1 << 20)
	}
	st.ProducerSeconds, st.GenerationSeconds, st.PublishSeconds = median(prod), median(gen), median(pub)
	st.ProducerPairsPerSec = float64(prodPairs) / st.ProducerSeconds
	st.GenerationPairsPerSec = float64(genPairs) / st.GenerationSeconds
	st.PublishPairsPerSec = float64(pubPairs) / st.PublishSeconds
	st.ProducerMiBPerSec, st.GenerationMiBPerSec, st.PublishMiBPerSec = mib(st.ProducerPairsPerSec), mib(st.GenerationPairsPerSec), mib(st.PublishPairsPerSec)
	if prodPairs == genPairs {
		st.RunRatios = runRatios(prod, gen)
	} else {
		st.RunRatios = make([]float64, min(len(prod), len(gen)))
		for i := range st.RunRatios {
			st.RunRatios[i] = float64(prodPairs) / prod[i] / (float64(genPairs) / gen[i])
		}
	}
	st.Ratio = median(st.RunRatios)
	st.Limit = "generation"
	if st.PublishPairsPerSec < st.GenerationPairsPerSec {
		st.Limit = "publishing"
	}
	return st
}

// Met reports whether the producer reaches StagesTarget of generation alone.
func (st *Stages) Met() bool { return st.Ratio >= StagesTarget }

// RatioRange is the smallest and largest per-run ratio.
func (st *Stages) RatioRange() (lo, hi float64) {
	if len(st.RunRatios) == 0 {
		return 0, 0
	}
	return slices.Min(st.RunRatios), slices.Max(st.RunRatios)
}

// deviceWorkload makes W3's phases on a device: the producer, generation
// alone and publishing alone (Stages), then the pipeline into the consumer
// and JetStream alone as on the CPU (Raw), all with a PDM producer at
// W1's networks generating on w.dev. The weights are published once to a
// registry on the embedded broker with a file store.
func (w *w3) deviceWorkload(ctx context.Context) (*workload, error) {
	if w.s.Messages < 2 {
		return nil, fmt.Errorf("bench: w3 on a device needs at least 2 messages per run, not %d", w.s.Messages)
	}
	var err error
	if w.st, err = store.Open(ctx, filepath.Join(w.dir, "weights"), store.Config{}); err != nil {
		return nil, err
	}
	if w.reg, err = registry.Open(ctx, w.js, w.st, w3Run, nil); err != nil {
		return nil, err
	}
	p, err := model.NewPDM(w.s.PDMConfig(), tensor.Float32, 1)
	if err != nil {
		return nil, err
	}
	data, err := model.EncodeWeights(model.KindPDM, p.Cfg, nil, nil, p.Modules()...)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if _, err := w.reg.Publish(ctx, data, 0); err != nil {
		return nil, err
	}
	// The producers check the run's contract, as a trainer would set it.
	contract, err := w.producerConfig("p0", "").Contract()
	if err != nil {
		return nil, err
	}
	if err := w.reg.PublishContract(ctx, contract); err != nil {
		return nil, err
	}
	timedPairs := (w.s.Messages - 1) * w.ppm
	prod := w.produce(false)
	w.first = prod
	return &workload{
		phases: []phase{
			{name: "producer", fn: prod, pairs: timedPairs},
			{name: "generation", fn: w.produce(true), pairs: timedPairs},
			{name: "publish", fn: w.publishRun},
			{name: "pipeline", fn: w.pipeline},
			{name: "raw", fn: w.rawRun},
		},
		pairs:    w.s.Messages * w.ppm,
		msgBytes: w.meanMsgBytes,
		ppm:      w.ppm,
		close:    w.close,
	}, nil
}

// produce returns a run of a fresh producer on the device publishing
// Messages messages to JetStream (discard: to nowhere, each acked at
// once), timed from its first publish to its return. The first real run
// keeps the stored messages for the other phases.
func (w *w3) produce(discard bool) func(context.Context, int) (time.Duration, error) {
	return func(ctx context.Context, _ int) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, w3Timeout)
		defer cancel()
		w.seq++
		clock := &pubClock{JetStream: w.pubJS, discard: discard}
		prod, err := producer.New(w.producerConfig(fmt.Sprintf("g%d", w.seq), ""), clock, w.reg, w.images, nil, nil)
		if err != nil {
			return 0, err
		}
		err = prod.Run(ctx)
		end := time.Now()
		if err != nil {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		first, msgs := clock.stats()
		if msgs != w.s.Messages {
			return 0, fmt.Errorf("bench: the producer published %d messages, want %d", msgs, w.s.Messages)
		}
		if !discard {
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
		}
		return end.Sub(first), nil
	}
}

// publishRun is publishing alone: the stored messages published as
// rawRun publishes them (PublishAsync, the producer's in-flight bound)
// with no consumer, from the first publish to the last ack.
func (w *w3) publishRun(ctx context.Context, iter int) (time.Duration, error) {
	if err := w.ensureMsgs(ctx, iter); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, w3Timeout)
	defer cancel()
	w.seq++
	t0 := time.Now()
	acked, err := w.publishStored(ctx, fmt.Sprintf("%s.%d", w3RawSubject, w.seq))
	if err != nil {
		return 0, err
	}
	if err := acked(); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if err := w.raw.Purge(ctx); err != nil {
		return 0, fmt.Errorf("bench: purge: %w", err)
	}
	return d, nil
}

// pubClock is the producer's JetStream with its publishes timed: it notes
// the first publish and counts them, and with discard sends nothing and
// acks each publish at once. Everything else is the broker's.
type pubClock struct {
	jetstream.JetStream
	discard bool

	mu    sync.Mutex
	first time.Time
	msgs  int
}

func (c *pubClock) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	c.mu.Lock()
	if c.msgs == 0 {
		c.first = time.Now()
	}
	c.msgs++
	c.mu.Unlock()
	if !c.discard {
		return c.JetStream.PublishMsgAsync(m, opts...)
	}
	ok := make(chan *jetstream.PubAck, 1)
	ok <- &jetstream.PubAck{Stream: w3Stream}
	return ackedFuture{msg: m, ok: ok}, nil
}

func (c *pubClock) stats() (time.Time, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first, c.msgs
}

// ackedFuture is a publish acked before it was sent.
type ackedFuture struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
}

func (f ackedFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f ackedFuture) Err() <-chan error            { return nil }
func (f ackedFuture) Msg() *nats.Msg               { return f.msg }
