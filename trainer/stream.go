package trainer

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/internal/safetensors"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/schema"
)

// StreamOptions make the trainer a consumer of the pair stream: the SR step
// trains on streamed (x_ref, y_ref) pairs, the PDM step recomputes fake LR
// from the streamed x_ref with the current weights, and every PublishEvery
// steps the PDM weights are published through the registry.
type StreamOptions struct {
	JS jetstream.JetStream
	// Consumer configures the consumer; its Header is set from the
	// trainer's config (the run's contract), whatever it holds.
	Consumer consumer.Config
	// Registry, when set, is the run's: the trainer publishes the run's
	// contract there before it consumes anything (refusing to start when
	// the run has another one), and the PDM weights every PublishEvery
	// steps (pdm runs). nil for replays, which must touch neither.
	Registry     *registry.Registry
	PublishEvery int // steps between weights publishes (default 50)
	Metrics      *metrics.Trainer
	// OnTrained, when set, is called with the pairs of every SR step, for
	// accounting in tests.
	OnTrained func(step int, pairs []consumer.Entry)
	// OnAck is passed to the consumer (see consumer.Consumer.OnAck).
	OnAck func(b *schema.Batch, streamSeq uint64)
	// OpenSource, when set, replaces the durable JetStream consumer (JS and
	// Consumer's stream, durable and subject are then unused): it returns
	// the messages after stream sequence after (a replay of an exported
	// archive, say; see ArchiveSource).
	OpenSource func(ctx context.Context, after uint64) (consumer.Source, error)
}

// Checkpoint metadata and tensors of the stream state.
const (
	metaStreamPos    = "pdmflow.stream.position"
	metaStreamHeader = "pdmflow.stream.header"
	metaStreamSeen   = "pdmflow.stream.seen"
	metaPublished    = "pdmflow.weights.published_step"
	metaVersionSteps = "pdmflow.weights.version_steps"
	tensorPool       = "stream.pool.arrow"
	tensorPoolSeqs   = "stream.pool.seqs"
)

// streamState encodes the consumer's state into checkpoint metadata and
// tensors. The pool is kept as one Arrow IPC message (package schema).
func streamState(st consumer.State) (map[string]string, []safetensors.Tensor, error) {
	meta := map[string]string{metaStreamPos: strconv.FormatUint(st.Position, 10)}
	seen, _ := json.Marshal(st.Seen)
	meta[metaStreamSeen] = string(seen)
	if st.Header == nil {
		return meta, nil, nil
	}
	h, _ := json.Marshal(st.Header)
	meta[metaStreamHeader] = string(h)
	if len(st.Pool) == 0 {
		return meta, nil, nil
	}
	b := &schema.Batch{Header: *st.Header, Pairs: make([]schema.Pair, len(st.Pool))}
	seqs := make([]byte, 8*len(st.Pool))
	for i, e := range st.Pool {
		b.Pairs[i] = e.Pair
		binary.LittleEndian.PutUint64(seqs[8*i:], e.StreamSeq)
	}
	data, err := schema.Encode(b, schema.EncodeOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("trainer: checkpoint of the shuffle pool: %w", err)
	}
	return meta, []safetensors.Tensor{
		{Name: tensorPool, DType: safetensors.U8, Shape: []int{len(data)}, Data: data},
		{Name: tensorPoolSeqs, DType: safetensors.I64, Shape: []int{len(st.Pool)}, Data: seqs},
	}, nil
}

// loadStreamState reads what streamState wrote (a zero state when the
// checkpoint has none).
func loadStreamState(f *safetensors.File) (consumer.State, error) {
	var st consumer.State
	pos, ok := f.Metadata[metaStreamPos]
	if !ok {
		return st, nil
	}
	var err error
	if st.Position, err = strconv.ParseUint(pos, 10, 64); err != nil {
		return st, fmt.Errorf("trainer: checkpoint stream position %q: %w", pos, err)
	}
	if err := json.Unmarshal([]byte(f.Metadata[metaStreamSeen]), &st.Seen); err != nil {
		return st, fmt.Errorf("trainer: checkpoint dedup state: %w", err)
	}
	if h, ok := f.Metadata[metaStreamHeader]; ok {
		st.Header = &schema.Header{}
		if err := json.Unmarshal([]byte(h), st.Header); err != nil {
			return st, fmt.Errorf("trainer: checkpoint stream header: %w", err)
		}
	}
	pool, ok := f.Get(tensorPool)
	if !ok {
		return st, nil
	}
	seqs, ok := f.Get(tensorPoolSeqs)
	if !ok {
		return st, errors.New("trainer: checkpoint has a pool without its sequence numbers")
	}
	// Decoded values may alias what they are decoded from: a copy keeps the
	// pool from holding on to the whole checkpoint.
	b, err := schema.Decode(bytes.Clone(pool.Data), schema.DecodeOptions{MaxMessageBytes: len(pool.Data)})
	if err != nil {
		return st, fmt.Errorf("trainer: checkpoint shuffle pool: %w", err)
	}
	if len(seqs.Data) != 8*len(b.Pairs) {
		return st, fmt.Errorf("trainer: checkpoint pool has %d pairs and %d sequence numbers", len(b.Pairs), len(seqs.Data)/8)
	}
	for i, p := range b.Pairs {
		st.Pool = append(st.Pool, consumer.Entry{Pair: p, StreamSeq: binary.LittleEndian.Uint64(seqs.Data[8*i:])})
	}
	return st, nil
}

// startStream creates the consumer from the restored state and starts its
// fetch loop.
func (t *Trainer) startStream(ctx context.Context) error {
	so := t.opt.Stream
	if so.PublishEvery <= 0 {
		so.PublishEvery = 50
	}
	if so.Metrics == nil {
		so.Metrics = metrics.NewTrainer(nil)
	}
	t.m = so.Metrics
	// The pool is filled before every draw, so that the pairs a step trains
	// on depend only on the stream's order and the step's seed: a replay of
	// the same messages trains identically (docs/reproducibility.md).
	cfg := so.Consumer
	cfg.Deterministic = true
	cfg.PoolPairs = t.cfg.PoolPairs()
	// What every message must be comes from this config, never from the
	// stream: a first batch of another shape or degradation is refused
	// like any other bad message instead of deciding what the run is.
	contract := t.cfg.Contract(cfg.Run)
	h := contract.Header()
	cfg.Header = &h
	if so.Registry != nil {
		// The producers' leases of their ids live in a bucket made here,
		// before the contract they wait for, so that producers need no
		// right to create it.
		if so.JS != nil {
			if _, err := registry.EnsureLeaseBucket(ctx, so.JS, 0, so.Registry.Replicas()); err != nil {
				return fmt.Errorf("trainer: %w", err)
			}
		}
		if err := so.Registry.PublishContract(ctx, contract); err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
	}
	var c *consumer.Consumer
	var err error
	if so.OpenSource != nil {
		var src consumer.Source
		if src, err = so.OpenSource(ctx, t.streamRestored.Position); err != nil {
			return err
		}
		c, err = consumer.NewFromSource(src, cfg, t.streamRestored, t.log, so.Metrics)
	} else {
		c, err = consumer.New(ctx, so.JS, cfg, t.streamRestored, t.log, so.Metrics)
	}
	if err != nil {
		return err
	}
	c.OnAck = so.OnAck
	t.cons = c
	t.consDone = make(chan struct{})
	cctx, cancel := context.WithCancel(context.Background())
	t.consStop = cancel
	go func() {
		defer close(t.consDone)
		_ = c.Run(cctx)
	}()
	return nil
}

func (t *Trainer) stopStream() {
	if t.consStop != nil {
		t.consStop()
		<-t.consDone
		t.consStop = nil
	}
}

// streamBatch takes a batch of pairs from the pool into hrBuf (x_ref) and
// lrBuf (y_ref, quantised to 8 bits as the SR step consumes it).
func (t *Trainer) streamBatch(ctx context.Context) ([]consumer.Entry, error) {
	c := t.cfg
	b, s, hs := c.Batch, c.HRCrop, c.LRCrop()
	entries, wait, err := t.cons.Take(ctx, b, t.stepRand(t.step^0x5e1ec7))
	if err != nil {
		return nil, err
	}
	t.m.DataWait.Observe(wait.Seconds())
	t.acc.add("wait_s", wait.Seconds())
	for i, e := range entries {
		hr := t.hrBuf[i*3*s*s : (i+1)*3*s*s]
		for j, v := range e.Pair.XRef {
			hr[j] = float32(v) / 255
		}
		copy(t.lrBuf[i*3*hs*hs:(i+1)*3*hs*hs], e.Pair.YRef)
	}
	return entries, nil
}

// publish sends the PDM weights to the registry. A failure is logged and
// counted, and the next step tries again: training does not stop because
// the store is away.
func (t *Trainer) publish(ctx context.Context) {
	so := t.opt.Stream
	if so == nil || so.Registry == nil || t.PDM == nil {
		return
	}
	if t.published >= 0 && t.step-t.published < so.PublishEvery && !t.publishRetry {
		return
	}
	if t.publishRetry && time.Now().Before(t.publishNext) {
		return
	}
	out := t.OutPDM()
	b, err := model.EncodeWeights(model.KindPDM, out.Cfg, nil, nil, out.Modules()...)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var ptr registry.Pointer
		ptr, err = so.Registry.Publish(pctx, b, t.step)
		cancel()
		if err == nil {
			t.published, t.publishRetry = t.step, false
			if t.versionSteps == nil {
				t.versionSteps = map[uint64]int{}
			}
			t.versionSteps[ptr.Version] = t.step
			t.m.Publishes.Inc()
			t.m.WeightsVersion.Set(float64(ptr.Version))
			lvl := slog.LevelDebug
			if ptr.Version == 1 {
				lvl = slog.LevelInfo
			}
			t.log.Log(ctx, lvl, "published PDM weights", "version", ptr.Version, "step", t.step, "sha256", ptr.SHA256[:12])
			return
		}
	}
	t.m.PublishErrors.Inc()
	t.publishBackoff = min(max(2*t.publishBackoff, time.Second), time.Minute)
	t.publishRetry, t.publishNext = true, time.Now().Add(t.publishBackoff)
	t.log.Warn("cannot publish PDM weights; training goes on, producers keep their weights", "step", t.step, "retry_in", t.publishBackoff, "err", err)
}
