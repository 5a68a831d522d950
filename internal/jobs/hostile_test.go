package jobs

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/broker"
	"github.com/pdmflow/pdmflow/internal/natsconn"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/schema"
)

// hostileBatch is a valid message of n rows with the given header, rows
// of run/producer/batch, each with seed 999 (no producer draws that seed
// for these rows: the test looks for it among what was trained).
func hostileBatch(h schema.Header, run, prod string, batch uint64, n int) *schema.Batch {
	b := &schema.Batch{Header: h}
	for i := 0; i < n; i++ {
		p := schema.Pair{
			SampleID: schema.FormatSampleID(run, prod, batch, uint32(i)), RunID: run, ProducerID: prod,
			BatchSeq: batch, Index: uint32(i), Seed: 999, SourceImage: "x.png", CropW: int32(h.HRW), CropH: int32(h.HRH),
			XRef: make([]uint8, 3*h.HRH*h.HRW), YRef: make([]float32, 3*h.LRH*h.LRW),
		}
		if h.KernelSize > 0 {
			p.Kernel = make([]float32, h.KernelSize*h.KernelSize)
			p.Kernel[len(p.Kernel)/2] = 1
		}
		if h.Degradation == schema.DegradationPDM {
			p.WeightsVersion, p.WeightsSHA256 = 1, fmt.Sprintf("%064x", 1)
		}
		b.Pairs = append(b.Pairs, p)
	}
	return b
}

func publishRaw(t *testing.T, js jetstream.JetStream, subject string, data []byte, batchSeq string) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = data
	if batchSeq != "" {
		m.Header.Set(schema.HeaderBatchSeq, batchSeq)
		m.Header.Set(schema.HeaderWeights, "1")
		m.Header.Set(jetstream.MsgIDHeader, "forged-"+subject+"-"+batchSeq+"-"+strconv.Itoa(len(data)))
	}
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// TestHostileMessagesDoNotWedgeTheRun publishes, before a run starts,
// what a confused or hostile client could: a first batch of another
// degradation, one of another HR size, rows on one producer's subject
// claiming another producer's first batch, rows of another run, and stray
// bytes on a producer's subject. The run's contract comes from the
// trainer's config: the trainer terminates and counts each of them, trains
// every step on the real pairs only (no forged row, nothing lost or
// trained twice), and the producer whose subject holds the stray message
// starts anyway.
func TestHostileMessagesDoNotWedgeTheRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := broker.Start(ctx, broker.Options{Dir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const run = "hostile"
	cfg := tinyConfig(12)
	sc := consumer.StreamConfig{Run: run}
	sc.Defaults()
	if _, err := consumer.EnsureStream(ctx, js, sc); err != nil {
		t.Fatal(err)
	}
	subj := func(p string) string { return producer.SubjectFor(sc.Subject, run, p) }
	s, lr := cfg.HRCrop, cfg.HRCrop/cfg.Scale()
	good := schema.Header{Scale: cfg.Scale(), HRH: s, HRW: s, LRH: lr, LRW: lr, KernelSize: cfg.PDM.Kernel.Size, Degradation: schema.DegradationPDM}
	gauss := good
	gauss.Degradation = schema.DegradationGaussian
	bigger := good
	bigger.HRH, bigger.HRW, bigger.LRH, bigger.LRW = 2*s, 2*s, 2*lr, 2*lr
	enc := func(b *schema.Batch) []byte {
		data, err := schema.Encode(b, schema.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	publishRaw(t, js, subj("px"), enc(hostileBatch(gauss, run, "px", 0, 4)), "0")
	publishRaw(t, js, subj("py"), enc(hostileBatch(bigger, run, "py", 0, 4)), "0")
	publishRaw(t, js, subj("p0"), enc(hostileBatch(good, run, "p1", 0, 4)), "0")
	publishRaw(t, js, subj("pz"), enc(hostileBatch(good, "other", "pz", 0, 4)), "0")
	publishRaw(t, js, subj("p0"), []byte("stray bytes"), "")

	hr, lrDir := pipelineData(t)
	out := t.TempDir()
	l := newLedger()
	promReg := prometheus.NewRegistry()
	forged := 0
	err = Pipeline(ctx, PipelineOptions{
		Config: cfg, Run: run, HR: hr, LR: lrDir, Out: out, Producers: 2,
		NATS: natsconn.Config{URL: b.ClientURL()}, Stream: sc, Registry: promReg,
		PublishEvery: 4, LagBudget: 3, Log: testLog(t),
		OnAck: l.onAck,
		OnTrained: func(step int, es []consumer.Entry) {
			l.onTrained(step, es)
			for _, e := range es {
				if e.Pair.Seed == 999 {
					forged++
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pool, pos := poolAtCheckpoint(t, out)
	l.check(t, pool, pos)
	if got := len(l.steps); got != cfg.Steps {
		t.Errorf("trained %d steps, want %d", got, cfg.Steps)
	}
	if forged > 0 {
		t.Errorf("%d forged rows were trained", forged)
	}
	if v := counterValue(t, promReg, "pdmflow_trainer_bad_messages_total"); v != 5 {
		t.Errorf("bad messages %v, want 5 (every hostile message, once)", v)
	}
	if v := counterValue(t, promReg, "pdmflow_trainer_duplicate_batches_total"); v != 0 {
		t.Errorf("duplicate batches %v, want 0: a real batch was dropped as a duplicate of a forged one", v)
	}
}
