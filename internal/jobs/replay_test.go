package jobs

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/internal/natsconn"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/store"
	"github.com/pdmflow/pdmflow/trainer"
)

// TestReplayIsBitIdentical runs the live pipeline (two producers whose
// weights the trainer updates every 4 steps), exports the run's stream to
// an archive, and trains again from the archive (on two threads and on
// one) and from the stream itself with the recorded config: every logged
// loss and every weight of the four runs is the same, bit for bit.
func TestReplayIsBitIdentical(t *testing.T) {
	b, js := testutil.JetStream(t)
	hr, lr := pipelineData(t)
	orig := t.TempDir()
	// 24 steps: the producers may run ahead of the trainer by the lag budget
	// plus the consumer's pool and read-ahead (about 11 messages here), so
	// a shorter run can be produced in full before the first new weights.
	cfg := tinyConfig(24)
	cfg.LogEvery = 1
	ctx := context.Background()
	err := Pipeline(ctx, PipelineOptions{
		Config: cfg, Run: "rep", HR: hr, LR: lr, Out: orig, Producers: 2,
		NATS: natsconn.Config{URL: b.ClientURL()}, PublishEvery: 4, LagBudget: 3, Log: testLog(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	arch, err := store.Open(ctx, t.TempDir(), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer arch.Close()
	m, err := archive.Export(ctx, js, arch, archive.ExportOptions{Stream: consumer.DefaultStreamName("rep"), Filter: producer.SubjectFor("pdmflow.pairs", "rep", ">")})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Weights) < 2 {
		t.Errorf("the archive records weights versions %v; the producers should have reloaded", m.Weights)
	}
	rcfg, err := trainer.LoadConfig(filepath.Join(orig, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if rcfg.StreamPool == 0 {
		t.Fatal("config.yaml does not record the stream pool size")
	}
	r, err := archive.Open(ctx, arch)
	if err != nil {
		t.Fatal(err)
	}
	fromArchive := t.TempDir()
	replay(t, rcfg, lr, fromArchive, &trainer.StreamOptions{
		OpenSource: func(_ context.Context, after uint64) (consumer.Source, error) {
			return trainer.ArchiveSource(r, after), nil
		},
	})
	// On one thread instead of two: the same bits.
	oneThread := t.TempDir()
	prev := kernels.SetWorkers(1)
	replay(t, rcfg, lr, oneThread, &trainer.StreamOptions{
		OpenSource: func(_ context.Context, after uint64) (consumer.Source, error) {
			return trainer.ArchiveSource(r, after), nil
		},
	})
	kernels.SetWorkers(prev)
	fromStream := t.TempDir()
	replay(t, rcfg, lr, fromStream, &trainer.StreamOptions{JS: js, Consumer: consumer.Config{
		Stream: consumer.DefaultStreamName("rep"), Durable: "replay-rep", Run: "rep", Subject: producer.SubjectFor("pdmflow.pairs", "rep", "*"), PoolPairs: rcfg.PoolPairs(),
	}})
	// The comparison can fail: another trainer seed draws other pairs.
	other := *rcfg
	other.Seed++
	otherOut := t.TempDir()
	replay(t, &other, lr, otherOut, &trainer.StreamOptions{
		OpenSource: func(_ context.Context, after uint64) (consumer.Source, error) {
			return trainer.ArchiveSource(r, after), nil
		},
	})
	regenerateAll(t, r, hr, filepath.Join(orig, "store"))
	if d := sameRun(t, orig, otherOut); len(d) == 0 {
		t.Error("a replay with another seed logged the same losses and weights")
	}
	rows, err := trainer.LossLog(filepath.Join(orig, trainer.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != cfg.Steps {
		t.Fatalf("the original run logged %d rows, want %d", len(rows), cfg.Steps)
	}
	for _, out := range []string{fromArchive, oneThread, fromStream} {
		if d := sameRun(t, orig, out); len(d) > 0 {
			t.Errorf("%s differs from the original run: %v", out, d)
		}
	}
}

// sameRun lists how two training outputs differ (trainer.CompareOutputs:
// every logged loss and every weight tensor, bit for bit).
func sameRun(t *testing.T, a, b string) []string {
	t.Helper()
	d, err := trainer.CompareOutputs(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func replay(t *testing.T, cfg *trainer.Config, lr, out string, so *trainer.StreamOptions) {
	t.Helper()
	tr, err := trainer.New(cfg, trainer.Options{LRDir: lr, Out: out, Log: testLog(t), Stream: so})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// regenerateAll recomputes every batch of the archive from its rows' seeds,
// the HR set and the weights fetched by hash: bit-identical to the record.
func regenerateAll(t *testing.T, r *archive.Reader, hr, storeDir string) {
	t.Helper()
	ctx := context.Background()
	images, err := dataset.Load(hr, 24, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, storeDir, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pdms := map[string]*model.PDM{}
	rows := 0
	for i := range r.Manifest().Messages {
		rec, err := r.Batch(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		sha := rec.Pairs[0].WeightsSHA256
		if pdms[sha] == nil {
			if pdms[sha], err = producer.WeightsBySHA(ctx, st, sha); err != nil {
				t.Fatal(err)
			}
		}
		got, err := producer.Regenerate(images, pdms[sha], rec)
		if err != nil {
			t.Fatal(err)
		}
		for j, p := range rec.Pairs {
			if d := producer.Diff(p, got.Pairs[j]); d != nil {
				t.Errorf("%s: regenerated differs: %v", p.SampleID, d)
			}
			rows++
		}
	}
	if len(pdms) < 2 {
		t.Errorf("regenerated with %d weights versions; the producers reloaded, so want at least 2", len(pdms))
	}
	// Regeneration does not depend on the thread count.
	prev := kernels.SetWorkers(1)
	rec0, err := r.Batch(ctx, len(r.Manifest().Messages)-1)
	if err != nil {
		t.Fatal(err)
	}
	got1, err := producer.Regenerate(images, pdms[rec0.Pairs[0].WeightsSHA256], rec0)
	kernels.SetWorkers(prev)
	if err != nil {
		t.Fatal(err)
	}
	for j, p := range rec0.Pairs {
		if d := producer.Diff(p, got1.Pairs[j]); d != nil {
			t.Errorf("%s regenerated on one thread differs: %v", p.SampleID, d)
		}
	}
	// Another HR set (here, images of another size) is refused.
	other := t.TempDir()
	testutil.WriteImages(t, other, 3, 56, 44, 99)
	images2, err := dataset.Load(other, 24, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := r.Batch(ctx, 0)
	if _, err := producer.Regenerate(images2, pdms[rec.Pairs[0].WeightsSHA256], rec); err == nil {
		t.Error("regenerating from another HR set did not fail")
	}
	t.Logf("regenerated %d rows of %d messages with %d weights versions", rows, len(r.Manifest().Messages), len(pdms))
}

// TestResumeIsBitIdentical interrupts a replay at step 5 and restarts it
// from its checkpoint: the resumed run continues at the recorded stream
// position and ends bit-identical to an uninterrupted run (so no sample is
// trained twice or skipped either).
func TestResumeIsBitIdentical(t *testing.T) {
	b, js := testutil.JetStream(t)
	hr, lr := pipelineData(t)
	ctx := context.Background()
	cfg := tinyConfig(12)
	cfg.LogEvery = 1
	if err := Pipeline(ctx, PipelineOptions{
		Config: cfg, Run: "res", HR: hr, LR: lr, Out: t.TempDir(), Producers: 2,
		NATS: natsconn.Config{URL: b.ClientURL()}, PublishEvery: 4, LagBudget: 3, Log: testLog(t),
	}); err != nil {
		t.Fatal(err)
	}
	arch, err := store.Open(ctx, t.TempDir(), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer arch.Close()
	if _, err := archive.Export(ctx, js, arch, archive.ExportOptions{Stream: consumer.DefaultStreamName("res")}); err != nil {
		t.Fatal(err)
	}
	r, err := archive.Open(ctx, arch)
	if err != nil {
		t.Fatal(err)
	}
	src := func(_ context.Context, after uint64) (consumer.Source, error) {
		return trainer.ArchiveSource(r, after), nil
	}
	cfg.StreamPool = 16
	whole := t.TempDir()
	replay(t, cfg, lr, whole, &trainer.StreamOptions{OpenSource: src})

	cut := t.TempDir()
	trained := map[string]int{}
	cctx, cancel := context.WithCancel(ctx)
	tr, err := trainer.New(cfg, trainer.Options{LRDir: lr, Out: cut, Log: testLog(t), Stream: &trainer.StreamOptions{
		OpenSource: src,
		OnTrained: func(step int, es []consumer.Entry) {
			for _, e := range es {
				trained[e.Pair.SampleID]++
			}
			if step == 4 {
				cancel() // the trainer checkpoints after step 5 and stops
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(cctx); err == nil {
		t.Fatal("the interrupted run did not report its interruption")
	}
	tr.Close()
	tr, err = trainer.New(cfg, trainer.Options{LRDir: lr, Out: cut, Log: testLog(t), Stream: &trainer.StreamOptions{
		OpenSource: src,
		OnTrained: func(step int, es []consumer.Entry) {
			if step < 5 {
				t.Errorf("the resumed run trained step %d again", step)
			}
			for _, e := range es {
				trained[e.Pair.SampleID]++
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for id, n := range trained {
		if n > 1 {
			t.Errorf("sample %s trained %d times", id, n)
		}
	}
	if len(trained) != cfg.Steps*cfg.Batch {
		t.Errorf("%d samples trained, want %d", len(trained), cfg.Steps*cfg.Batch)
	}
	if d := sameRun(t, whole, cut); len(d) > 0 {
		t.Errorf("the resumed run differs from the uninterrupted one: %v", d)
	}
}
