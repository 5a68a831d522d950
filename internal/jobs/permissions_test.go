package jobs

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/broker"
	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/store"
	"github.com/pdmflow/pdmflow/trainer"
)

// permissionsFile is the per-producer permissions example of
// docs/operations.md.
func permissionsFile(t *testing.T) string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", "deploy", "compose", "nats", "permissions.conf")
}

// TestPerProducerPermissions runs a trainer and two producers, each
// logged in as its own user of deploy/compose/nats/permissions.conf (the
// file docs/operations.md shows), through a whole run: everything a
// producer does (the contract, resuming past a stray message on its
// subject, the lag, the weights pointer, publishing) works within its
// permissions, and what it must not do is refused: publishing on another
// producer's subject, writing the weights pointer or the contract,
// deleting the stream.
func TestPerProducerPermissions(t *testing.T) {
	for k, v := range map[string]string{
		"PDMFLOW_TRAINER_PASSWORD": "pw-trainer-1", "PDMFLOW_HOST_A_PASSWORD": "pw-a-2",
		"PDMFLOW_HOST_B_PASSWORD": "pw-b-3", "PDMFLOW_OPS_PASSWORD": "pw-ops-4",
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := broker.Start(ctx, broker.Options{Dir: t.TempDir(), Port: -1, AuthFile: permissionsFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	var errMu sync.Mutex
	var asyncErrs []string // permission violations and other async errors
	connect := func(user, password string) (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		nc, err := nats.Connect(b.ClientURL(), nats.UserInfo(user, password), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			errMu.Lock()
			defer errMu.Unlock()
			asyncErrs = append(asyncErrs, user+": "+err.Error())
		}))
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return nc, js
	}
	if _, err := nats.Connect(b.ClientURL()); err == nil {
		t.Fatal("a client without credentials connected")
	}
	_, jsT := connect("trainer", "pw-trainer-1")
	ncA, jsA := connect("host-a", "pw-a-2")
	_, jsB := connect("host-b", "pw-b-3")
	_, jsOps := connect("ops", "pw-ops-4")

	const run = "r1"
	cfg := tinyConfig(40)
	sc := consumer.StreamConfig{Run: run}
	sc.Defaults()
	stream, err := consumer.EnsureStream(ctx, jsT, sc)
	if err != nil {
		t.Fatal(err)
	}
	streamName := stream.CachedInfo().Config.Name
	st, err := store.Open(ctx, "file://"+t.TempDir(), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	regT, err := registry.Open(ctx, jsT, st, run, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A stray message on host-a's subject: host-a scans past it.
	publishRaw(t, jsOps, producer.SubjectFor(sc.Subject, run, "host-a"), []byte("stray"), "")

	hr, lr := pipelineData(t)
	durable := "trainer-" + run
	tr, err := trainer.New(cfg, trainer.Options{LRDir: lr, Out: t.TempDir(), Log: testLog(t), Stream: &trainer.StreamOptions{
		JS: jsT,
		Consumer: consumer.Config{Stream: streamName, Durable: durable, Subject: producer.SubjectFor(sc.Subject, run, "*"),
			PoolPairs: cfg.PoolPairs(), Run: run},
		Registry: regT, PublishEvery: 4,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	terr := make(chan error, 1)
	go func() { terr <- tr.Run(ctx) }()

	images, err := dataset.Load(hr, cfg.HRCrop, nil)
	if err != nil {
		t.Fatal(err)
	}
	pctx, stopProducers := context.WithCancel(ctx)
	defer stopProducers()
	var wg sync.WaitGroup
	perr := make([]error, 2)
	for i, p := range []struct {
		id string
		js jetstream.JetStream
	}{{"host-a", jsA}, {"host-b", jsB}} {
		// Producers start once the trainer has made the KV bucket: they
		// may read it, not create it.
		var reg *registry.Registry
		for reg == nil {
			if reg, err = registry.Open(ctx, p.js, st, run, nil); err != nil {
				if ctx.Err() != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		prod, err := producer.New(producer.Config{Run: run, ID: p.id, Seed: cfg.Seed, Stream: streamName, Subject: sc.Subject,
			Consumer: durable, Degradation: cfg.Degradation, PDM: &cfg.PDM, HRSize: cfg.HRCrop, BatchPairs: cfg.Batch, LagBudget: 3},
			p.js, reg, images, testLog(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			perr[i] = prod.Run(pctx)
		}()
	}
	if err := <-terr; err != nil {
		t.Fatalf("trainer: %v", err)
	}
	stopProducers()
	wg.Wait()
	for i, err := range perr {
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("producer %d: %v", i, err)
		}
	}
	if tr.Step() != cfg.Steps {
		t.Fatalf("the trainer did %d steps, want %d", tr.Step(), cfg.Steps)
	}
	for _, id := range []string{"host-a", "host-b"} {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(producer.SubjectFor(sc.Subject, run, id)))
		if err != nil {
			t.Fatal(err)
		}
		if n := info.State.Msgs; n < 2 {
			t.Errorf("%s has %d messages in the stream: it did not produce within its permissions", id, n)
		}
	}
	errMu.Lock()
	for _, e := range asyncErrs {
		t.Errorf("during the run: %s", e)
	}
	asyncErrs = nil
	errMu.Unlock()

	// What host-a must not do.
	short, done := context.WithTimeout(ctx, 2*time.Second)
	defer done()
	before, _ := stream.Info(ctx)
	if _, err := jsA.Publish(short, producer.SubjectFor(sc.Subject, run, "host-b"), []byte("not mine")); err == nil {
		t.Error("host-a published on host-b's subject")
	}
	_ = ncA.Publish(producer.SubjectFor(sc.Subject, run, "host-b"), []byte("not mine either"))
	_ = ncA.Flush()
	if after, _ := stream.Info(ctx); after.State.LastSeq != before.State.LastSeq {
		t.Errorf("the stream grew from seq %d to %d by host-a's publishes on host-b's subject", before.State.LastSeq, after.State.LastSeq)
	}
	// Nor hold another producer's id.
	if l, err := registry.AcquireLease(short, jsA, run, "host-b", registry.Holder{Host: "x", PID: 1, Instance: "x"}, 0, 0, nil); err == nil {
		l.Release(ctx)
		t.Error("host-a took host-b's producer id")
	}
	kvA, err := jsA.KeyValue(ctx, registry.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{run + ".latest", run + ".contract"} {
		wctx, wdone := context.WithTimeout(ctx, 2*time.Second)
		if _, err := kvA.Put(wctx, key, []byte(`{}`)); err == nil {
			t.Errorf("host-a wrote %s", key)
		}
		wdone()
	}
	dctx, ddone := context.WithTimeout(ctx, 2*time.Second)
	defer ddone()
	if err := jsA.DeleteStream(dctx, streamName); err == nil {
		t.Error("host-a deleted the stream")
	}
	if err := jsA.DeleteConsumer(dctx, streamName, durable); err == nil {
		t.Error("host-a deleted the trainer's consumer")
	}
}
