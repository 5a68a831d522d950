// Package metrics defines the Prometheus metrics of pdmflow's long-running
// services (producers and the trainer) and serves them over HTTP.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Producer holds one producer's metrics (labelled with its id, so several
// producers can share a registry).
type Producer struct {
	Pairs          prometheus.Counter
	Batches        prometheus.Counter
	Bytes          prometheus.Counter
	PublishErrors  prometheus.Counter
	AckLatency     prometheus.Histogram
	InFlightBytes  prometheus.Gauge
	Stalls         prometheus.Counter
	StallSeconds   prometheus.Counter
	ConsumerLag    prometheus.Gauge
	WeightsVersion prometheus.Gauge
	Reloads        prometheus.Counter
	ReloadFailures prometheus.Counter
	ReloadSeconds  prometheus.Histogram
	GenerateSecs   prometheus.Histogram
}

// NewProducer registers a producer's metrics on reg (nil: not registered).
func NewProducer(reg prometheus.Registerer, id string) *Producer {
	l := prometheus.Labels{"producer": id}
	f := factory{reg, l}
	return &Producer{
		Pairs:          f.counter("pdmflow_producer_pairs_total", "Pairs generated and published (acked by JetStream)."),
		Batches:        f.counter("pdmflow_producer_batches_total", "Batches (messages) published and acked."),
		Bytes:          f.counter("pdmflow_producer_bytes_total", "Message bytes published and acked."),
		PublishErrors:  f.counter("pdmflow_producer_publish_errors_total", "Publish attempts that failed and were retried."),
		AckLatency:     f.histogram("pdmflow_producer_publish_ack_seconds", "Time from publish to JetStream ack.", prometheus.ExponentialBuckets(0.001, 2, 14)),
		InFlightBytes:  f.gauge("pdmflow_producer_inflight_bytes", "Bytes published and not yet acked."),
		Stalls:         f.counter("pdmflow_producer_stalls_total", "Times the producer paused because the trainer's consumer lag was over budget."),
		StallSeconds:   f.counter("pdmflow_producer_stall_seconds_total", "Time spent paused for backpressure."),
		ConsumerLag:    f.gauge("pdmflow_producer_consumer_lag_messages", "The trainer consumer's pending plus unacked messages, as last seen."),
		WeightsVersion: f.gauge("pdmflow_producer_weights_version", "Version of the PDM weights in use (0: none)."),
		Reloads:        f.counter("pdmflow_producer_weights_reloads_total", "Weights versions loaded."),
		ReloadFailures: f.counter("pdmflow_producer_weights_reload_failures_total", "Weights reloads that failed (the last good weights stay in use)."),
		ReloadSeconds:  f.histogram("pdmflow_producer_weights_reload_seconds", "Time to download, verify and load new weights.", prometheus.ExponentialBuckets(0.01, 2, 12)),
		GenerateSecs:   f.histogram("pdmflow_producer_generate_seconds", "Time to generate one batch (crops and degradation).", prometheus.ExponentialBuckets(0.005, 2, 14)),
	}
}

// Trainer holds the trainer's metrics.
type Trainer struct {
	Steps          prometheus.Counter
	Pairs          prometheus.Counter
	DataWait       prometheus.Histogram
	StepSeconds    prometheus.Histogram
	Messages       prometheus.Counter
	Redeliveries   prometheus.Counter
	Duplicates     prometheus.Counter
	BadMessages    prometheus.Counter
	LostMessages   prometheus.Counter
	ConsumerLag    prometheus.Gauge
	PoolSize       prometheus.Gauge
	WeightsVersion prometheus.Gauge
	Publishes      prometheus.Counter
	PublishErrors  prometheus.Counter
	Losses         *prometheus.GaugeVec
	// ValPSNR and ValSSIM are the last validation's scores.
	ValPSNR, ValSSIM prometheus.Gauge
	// PairAge is the age, in training steps, of the weights that made each
	// streamed pair when the SR step trains on it.
	PairAge prometheus.Histogram
	// Diversity is the learned degradation distribution's health
	// (package diversity's Monitor and, with a truth, its distances).
	Diversity *prometheus.GaugeVec
	// DiversityWarnings counts the monitor's warnings as they begin, by kind.
	DiversityWarnings *prometheus.CounterVec
}

// NewTrainer registers the trainer's metrics on reg (nil: not registered).
func NewTrainer(reg prometheus.Registerer) *Trainer {
	f := factory{reg, nil}
	t := &Trainer{
		Steps:          f.counter("pdmflow_trainer_steps_total", "Training steps completed."),
		Pairs:          f.counter("pdmflow_trainer_pairs_total", "Streamed pairs the SR step trained on."),
		DataWait:       f.histogram("pdmflow_trainer_data_wait_seconds", "Time each step waited for streamed pairs.", prometheus.ExponentialBuckets(0.0001, 4, 12)),
		StepSeconds:    f.histogram("pdmflow_trainer_step_seconds", "Time of one training step, data wait included.", prometheus.ExponentialBuckets(0.01, 2, 14)),
		Messages:       f.counter("pdmflow_trainer_messages_total", "Stream messages consumed into the shuffle pool."),
		Redeliveries:   f.counter("pdmflow_trainer_redeliveries_total", "Messages delivered more than once by JetStream."),
		Duplicates:     f.counter("pdmflow_trainer_duplicate_batches_total", "Batches dropped because their samples were already seen."),
		BadMessages:    f.counter("pdmflow_trainer_bad_messages_total", "Messages that failed to decode or validate (terminated, not retried)."),
		LostMessages:   f.counter("pdmflow_trainer_lost_messages_total", "Unread messages the stream's retention removed, accepted with --accept-loss (without it the trainer stops)."),
		ConsumerLag:    f.gauge("pdmflow_trainer_consumer_lag_messages", "Messages in the stream not yet delivered to the trainer."),
		PoolSize:       f.gauge("pdmflow_trainer_pool_pairs", "Pairs waiting in the shuffle pool."),
		WeightsVersion: f.gauge("pdmflow_trainer_weights_version", "Last PDM weights version published."),
		Publishes:      f.counter("pdmflow_trainer_weights_publishes_total", "PDM weights versions published."),
		PublishErrors:  f.counter("pdmflow_trainer_weights_publish_errors_total", "Weights publishes that failed (retried later)."),
		Losses:         prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pdmflow_trainer_loss", Help: "Losses averaged over the last reporting interval."}, []string{"name"}),
		ValPSNR:        f.gauge("pdmflow_trainer_val_psnr_db", "Mean RGB PSNR of the SR network on the validation pairs at the last validation."),
		ValSSIM:        f.gauge("pdmflow_trainer_val_ssim", "Mean RGB SSIM of the SR network on the validation pairs at the last validation."),
		PairAge: f.histogram("pdmflow_trainer_pair_age_steps", "Age in training steps of the weights that made each streamed pair, when the SR step trains on it (the step minus its weights version's).",
			[]float64{0, 1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500}),
		Diversity: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pdmflow_trainer_diversity",
			Help: "The learned degradation distribution at the last report: kernel width and its spread, pair ratio, fill, aliasing energy, noise level spread; with a truth file, Wasserstein-1 distances and spread ratios."}, []string{"name"}),
		DiversityWarnings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pdmflow_trainer_diversity_warnings_total",
			Help: "Warnings of the distribution monitor as they began: collapse of the kernel width or noise level spread, one kernel for every z, sparse or aliasing kernels."}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(t.Losses, t.Diversity, t.DiversityWarnings)
	}
	return t
}

type factory struct {
	reg    prometheus.Registerer
	labels prometheus.Labels
}

func (f factory) register(c prometheus.Collector) {
	if f.reg != nil {
		f.reg.MustRegister(c)
	}
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: f.labels})
	f.register(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: f.labels})
	f.register(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, ConstLabels: f.labels, Buckets: buckets})
	f.register(h)
	return h
}

// Serve serves reg on addr at /metrics (and /healthz) until ctx ends. It
// returns once the listener is up; the server runs in the background and
// errors after that are logged. An empty addr serves nothing.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) (string, error) {
	if addr == "" {
		return "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics: listening on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return ln.Addr().String(), nil
}
