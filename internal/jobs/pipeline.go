package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/broker"
	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/internal/natsconn"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
	"github.com/pdmflow/pdmflow/trainer"
)

// PipelineOptions configure a whole run in one process: an embedded
// JetStream server (unless NATS.URL is set), a blob store, K producers and
// the trainer, connected exactly as in a distributed deployment.
type PipelineOptions struct {
	Config    *trainer.Config
	Run       string // run id
	HR, LR    string // HR source (dir or s3://) and real LR images
	Out       string // trainer output; the embedded broker and file store live under it too
	Producers int    // default 2
	NATS      natsconn.Config
	Store     string // blob store URL (default file://Out/store)
	S3        store.Config
	Stream    consumer.StreamConfig
	// PublishEvery is the number of steps between weights publishes.
	PublishEvery int
	// LagBudget bounds how many messages producers run ahead of the trainer.
	LagBudget int
	// BatchPairs is the pairs per message (default: the trainer's batch).
	BatchPairs int
	Registry   *prometheus.Registry // metrics (nil: none)
	Log        *slog.Logger
	Progress   io.Writer
	// Hooks for tests: accounting of what was acked and what was trained.
	OnAck     func(b *schema.Batch, streamSeq uint64)
	OnTrained func(step int, pairs []consumer.Entry)
	// OnProducers, when set, is called with the producers once they exist.
	OnProducers func([]*producer.Producer)
	// Truth is the real LR set's truth file (trainer.Options.Truth).
	Truth string
	// Val scores the SR network while it trains (trainer.Options.Val).
	Val *trainer.ValOptions
	// Version is recorded in the trainer's run.json.
	Version string
	// Observer watches the trainer (trainer.Options.Observer).
	Observer trainer.Observer
	// InitSR and VGG are trainer.Options.InitSR and VGG.
	InitSR, VGG string
}

// Pipeline runs producers and the trainer until the trainer has done its
// steps (or ctx ends), then stops the producers.
func Pipeline(ctx context.Context, o PipelineOptions) error {
	cfg := o.Config
	if o.Producers <= 0 {
		o.Producers = 2
	}
	if o.PublishEvery <= 0 {
		o.PublishEvery = cmp.Or(cfg.PublishEvery, 25)
	}
	if o.LagBudget <= 0 {
		o.LagBudget = cmp.Or(cfg.LagBudget, 4)
	}
	if o.BatchPairs <= 0 {
		o.BatchPairs = cfg.Batch
	}
	if o.Store == "" {
		o.Store = "file://" + filepath.Join(o.Out, "store")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := registry.ValidRunID(o.Run); err != nil {
		return err
	}
	o.Stream.Run = o.Run
	o.Stream.Defaults()
	nc := o.NATS
	if nc.URL == "" {
		b, err := broker.Start(ctx, broker.Options{Dir: filepath.Join(o.Out, "jetstream"), Port: -1,
			Log: slog.New(minLevel{o.Log.Handler(), slog.LevelWarn}).With("component", "broker")})
		if err != nil {
			return err
		}
		defer b.Shutdown()
		nc.URL = b.ClientURL()
		o.Log.Info("embedded JetStream server started", "url", nc.URL)
	}
	if nc.Name == "" {
		nc.Name = "pdmflow-run-" + o.Run
	}
	conn, err := nc.Connect(ctx, o.Log)
	if err != nil {
		return err
	}
	defer conn.Close()
	js, err := jetstream.New(conn, jetstream.WithPublishAsyncTimeout(time.Minute))
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	pairs, err := consumer.EnsureStream(ctx, js, o.Stream)
	if err != nil {
		return err
	}
	o.Stream.Name = pairs.CachedInfo().Config.Name
	st, err := store.Open(ctx, o.Store, o.S3)
	if err != nil {
		return err
	}
	defer st.Close()
	reg, err := registry.Open(ctx, js, st, o.Run, o.Log)
	if err != nil {
		return err
	}
	images, err := dataset.LoadSource(ctx, o.HR, cfg.HRCrop, o.S3, o.Log)
	if err != nil {
		return err
	}
	durable := "trainer-" + o.Run
	var promReg prometheus.Registerer
	if o.Registry != nil {
		promReg = prometheus.WrapRegistererWith(prometheus.Labels{"run": o.Run}, o.Registry)
	}
	var pm []*producer.Producer
	for i := 0; i < o.Producers; i++ {
		var m *metrics.Producer
		id := fmt.Sprintf("p%d", i)
		if promReg != nil {
			m = metrics.NewProducer(promReg, id)
		}
		p, err := producer.New(producer.Config{
			Run: o.Run, ID: id, Seed: cfg.Seed, Stream: o.Stream.Name, Subject: o.Stream.Subject,
			Consumer: durable, Degradation: cfg.Degradation, PDM: &cfg.PDM, HRSize: cfg.HRCrop, Scale: cfg.Scale(),
			BatchPairs: o.BatchPairs, LagBudget: o.LagBudget,
		}, js, reg, images, o.Log, m)
		if err != nil {
			return err
		}
		pm = append(pm, p)
	}
	if o.OnProducers != nil {
		o.OnProducers(pm)
	}
	var tm *metrics.Trainer
	if promReg != nil {
		tm = metrics.NewTrainer(promReg)
	}
	if cfg.StreamPool == 0 {
		// At least two producer batches; recorded in config.yaml, which a
		// replay of this run's stream uses.
		c := *cfg
		c.StreamPool = max(4*cfg.Batch, 2*o.BatchPairs)
		cfg = &c
	}
	t, err := trainer.New(cfg, trainer.Options{LRDir: o.LR, Out: o.Out, Log: o.Log, Progress: o.Progress, Truth: o.Truth, Val: o.Val, Version: o.Version, Observer: o.Observer, InitSR: o.InitSR, VGG: o.VGG, Stream: &trainer.StreamOptions{
		JS: js,
		Consumer: consumer.Config{
			Stream: o.Stream.Name, Durable: durable, Subject: producer.SubjectFor(o.Stream.Subject, o.Run, "*"),
			PoolPairs: cfg.PoolPairs(), Run: o.Run,
		},
		Registry: reg, PublishEvery: o.PublishEvery, Metrics: tm, OnAck: o.OnAck, OnTrained: o.OnTrained,
	}})
	if err != nil {
		return err
	}
	defer t.Close()

	// A producer that fails stops the trainer (which checkpoints): without
	// its data the run cannot go on as configured.
	tctx, stopTrainer := context.WithCancelCause(ctx)
	defer stopTrainer(nil)
	pctx, stopProducers := context.WithCancel(ctx)
	defer stopProducers()
	var wg sync.WaitGroup
	for i, p := range pm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(pctx); err != nil && !errors.Is(err, context.Canceled) {
				o.Log.Error("producer failed", "producer", i, "err", err)
				stopTrainer(fmt.Errorf("jobs: producer p%d: %w", i, err))
			}
		}()
	}
	terr := t.Run(tctx)
	stopProducers()
	wg.Wait()
	if cause := context.Cause(tctx); terr != nil && cause != nil && ctx.Err() == nil {
		return cause
	}
	return terr
}

// minLevel drops records below its level: the embedded server's start-up
// banner is noise in a one-command run.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(as), m.level}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{m.Handler.WithGroup(name), m.level}
}
