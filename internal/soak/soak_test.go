package soak

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/broker"
	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/internal/natsconn"
	"github.com/pdmflow/pdmflow/internal/s3test"
	"github.com/pdmflow/pdmflow/internal/safetensors"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
	"github.com/pdmflow/pdmflow/trainer"
)

const (
	envDuration = "PDMFLOW_SOAK"      // how long to inject faults (a Go duration); unset: skip
	envSeed     = "PDMFLOW_SOAK_SEED" // the seed of the faults (default: from the clock)
	run         = "soak"
)

// soakConfig is a small joint PDM config: steps of a few tens of
// milliseconds, so that many steps run between faults.
func soakConfig() *trainer.Config {
	c, _ := trainer.Preset("cpu-small")
	c.Name = "soak"
	c.Batch, c.HRCrop, c.Steps = 4, 24, 1<<30
	c.PDM.Kernel = model.KernelConfig{Size: 7, NC: 4, NF: 8, NB: 1, Conv: 1, Init: "box"}
	c.PDM.Noise = model.NoiseConfig{Mode: model.NoiseMixed, NC: 2, NF: 4, NB: 1, Conv: 3}
	c.Disc = model.DiscConfig{NF: 4, Out: 2, Stride: 1}
	c.SR.NF, c.SR.NB = 4, 1
	c.LogEvery, c.SampleEvery, c.CheckpointEvery = 0, 0, 5
	c.StreamPool = 16
	return c
}

// ledger records what the trainer's consumer admitted and what it trained.
type ledger struct {
	mu      sync.Mutex
	acked   map[string]uint64 // sample id -> stream sequence it was admitted from
	trained map[string]int
	forged  []string // trained pairs whose seed is not their producer's
	steps   int
}

func (l *ledger) onAck(b *schema.Batch, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range b.Pairs {
		l.acked[p.SampleID] = seq
	}
}

func (l *ledger) onTrained(cfg *trainer.Config) func(int, []consumer.Entry) {
	return func(step int, es []consumer.Entry) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.steps++
		for _, e := range es {
			p := e.Pair
			l.trained[p.SampleID]++
			if p.RunID != run || p.Seed != producer.SampleSeed(cfg.Seed, p.ProducerID, p.BatchSeq, p.Index) {
				l.forged = append(l.forged, p.SampleID)
			}
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestSoak: see the package documentation.
func TestSoak(t *testing.T) {
	d := os.Getenv(envDuration)
	if d == "" {
		t.Skipf("%s is not set: this soak runs a trainer and producers for minutes while injecting faults; run `make soak` (or set %s=90s)", envDuration, envDuration)
	}
	dur, err := time.ParseDuration(d)
	if err != nil || dur <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 90s or 5m", envDuration, d)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(envSeed); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: want a number", envSeed, s)
		}
	}
	t.Logf("soak: seed %d (%s=%d replays this choice of faults), faults for %s", seed, envSeed, seed, dur)
	// The faults are drawn from seed: each step draws its own generator
	// first, so that the choice of faults does not depend on how earlier
	// ones turned out.
	steprng := rand.New(rand.NewPCG(seed, 0x50a6))
	pcg := rand.NewPCG(seed, 1)
	rng := rand.New(pcg)
	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() && os.Getenv("PDMFLOW_SOAK_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}

	// The broker: its store and port stay the same across restarts.
	jsDir, port := t.TempDir(), freePort(t)
	var b *broker.Broker
	startBroker := func() {
		t.Helper()
		var err error
		for try := 0; try < 50; try++ { // the port may take a moment to be free again
			if b, err = broker.Start(ctx, broker.Options{Dir: jsDir, Port: port}); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("starting the broker: %v", err)
	}
	startBroker()
	defer func() { b.Shutdown() }()
	url := b.ClientURL()
	connect := func(name string) (*nats.Conn, jetstream.JetStream, error) {
		nc, err := natsconn.Config{URL: url, Name: name}.Connect(ctx, nil)
		if err != nil {
			return nil, nil, err
		}
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(time.Minute))
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return nc, js, nil
	}

	s3 := s3test.StartWith(t, s3test.Options{KeepAlive: true})
	s3cfg := store.Config{Endpoint: s3.Endpoint, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Insecure: true, Timeout: 3 * time.Second}
	openStore := func() (*store.Bucket, error) {
		return store.Open(ctx, "s3://"+s3.Bucket+"/weights", s3cfg)
	}

	cfg := soakConfig()
	dataDir := t.TempDir()
	hrDir, lrDir := filepath.Join(dataDir, "hr"), filepath.Join(dataDir, "lr")
	testutil.WriteImages(t, hrDir, 3, 48, 40, 1)
	testutil.WriteImages(t, lrDir, 4, 16, 14, 2)
	images, err := dataset.Load(hrDir, cfg.HRCrop, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The trainer.
	ncT, jsT, err := connect("soak-trainer")
	if err != nil {
		t.Fatal(err)
	}
	defer ncT.Close()
	sc := consumer.StreamConfig{Run: run}
	sc.Defaults()
	stream, err := consumer.EnsureStream(ctx, jsT, sc)
	if err != nil {
		t.Fatal(err)
	}
	stT, err := openStore()
	if err != nil {
		t.Fatal(err)
	}
	defer stT.Close()
	regT, err := registry.Open(ctx, jsT, stT, run, log)
	if err != nil {
		t.Fatal(err)
	}
	l := &ledger{acked: map[string]uint64{}, trained: map[string]int{}}
	tm := metrics.NewTrainer(nil)
	out := t.TempDir()
	durable := "trainer-" + run
	tr, err := trainer.New(cfg, trainer.Options{LRDir: lrDir, Out: out, Log: log, Stream: &trainer.StreamOptions{
		JS: jsT,
		Consumer: consumer.Config{Stream: sc.Name, Durable: durable, Subject: producer.SubjectFor(sc.Subject, run, "*"),
			PoolPairs: cfg.PoolPairs(), Run: run},
		Registry: regT, PublishEvery: 5, Metrics: tm, OnAck: l.onAck, OnTrained: l.onTrained(cfg),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tctx, stopTrainer := context.WithCancel(ctx)
	terr := make(chan error, 1)
	go func() { terr <- tr.Run(tctx) }()
	steps := func() int { return int(promtest.ToFloat64(tm.Steps)) }

	// Producers, each under a supervisor that starts it again when it stops
	// (as a restart policy would), until the soak ends.
	type incarnation struct {
		nc     *nats.Conn
		cancel context.CancelFunc
		done   chan struct{}
	}
	type supervised struct {
		id     string
		mu     sync.Mutex
		cur    *incarnation
		pause  chan time.Duration // a kill: how long to stay down
		starts int
		errs   []string
	}
	pctx, stopProducers := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	prods := []*supervised{{id: "p0"}, {id: "p1"}}
	for _, p := range prods {
		p.pause = make(chan time.Duration, 1)
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for pctx.Err() == nil {
				nc, js, err := connect("soak-" + p.id)
				if err == nil {
					var st *store.Bucket
					if st, err = openStore(); err == nil {
						var reg *registry.Registry
						if reg, err = registry.Open(pctx, js, st, run, log); err == nil {
							var pr *producer.Producer
							pr, err = producer.New(producer.Config{Run: run, ID: p.id, Seed: cfg.Seed, Stream: sc.Name, Subject: sc.Subject,
								Consumer: durable, Degradation: cfg.Degradation, PDM: &cfg.PDM, HRSize: cfg.HRCrop,
								BatchPairs: cfg.Batch, LagBudget: 4, WeightsPoll: 200 * time.Millisecond, AckTimeout: 2 * time.Second},
								js, reg, images, log, nil)
							if err == nil {
								ictx, icancel := context.WithCancel(pctx)
								in := &incarnation{nc: nc, cancel: icancel, done: make(chan struct{})}
								p.mu.Lock()
								p.cur, p.starts = in, p.starts+1
								p.mu.Unlock()
								err = pr.Run(ictx)
								icancel()
								close(in.done)
							}
						}
						st.Close()
					}
					nc.Close()
				}
				if err != nil && pctx.Err() == nil && !errors.Is(err, context.Canceled) {
					p.mu.Lock()
					p.errs = append(p.errs, err.Error())
					p.mu.Unlock()
				}
				wait := 300 * time.Millisecond
				select {
				case wait = <-p.pause:
				default:
				}
				select {
				case <-pctx.Done():
				case <-time.After(wait):
				}
			}
		}()
	}
	kill := func(p *supervised, down time.Duration) {
		p.mu.Lock()
		in := p.cur
		p.mu.Unlock()
		if in == nil {
			return
		}
		select {
		case p.pause <- down:
		default:
		}
		in.nc.Close() // whatever it had not flushed is gone
		in.cancel()
		<-in.done
	}

	// The attacker: an unrestricted client publishing what it likes.
	ncX, jsX, err := connect("soak-attacker")
	if err != nil {
		t.Fatal(err)
	}
	defer ncX.Close()
	contract := cfg.Contract(run)
	good := contract.Header()
	var badSeqs []uint64       // stored messages the trainer must refuse
	var rogueVersions []uint64 // weights versions of another config
	faults := map[string]int{}
	forge := func(h schema.Header, runID, prod string, batch uint64) *schema.Batch {
		b := &schema.Batch{Header: h}
		for i := 0; i < cfg.Batch; i++ {
			p := schema.Pair{
				SampleID: schema.FormatSampleID(runID, prod, batch, uint32(i)), RunID: runID, ProducerID: prod,
				BatchSeq: batch, Index: uint32(i), Seed: 999, SourceImage: "forged.png", CropW: int32(h.HRW), CropH: int32(h.HRH),
				XRef: make([]uint8, 3*h.HRH*h.HRW), YRef: make([]float32, 3*h.LRH*h.LRW),
			}
			if h.KernelSize > 0 {
				p.Kernel = make([]float32, h.KernelSize*h.KernelSize)
				p.Kernel[len(p.Kernel)/2] = 1
			}
			if h.Degradation == schema.DegradationPDM {
				p.WeightsVersion, p.WeightsSHA256 = 1, fmt.Sprintf("%064x", 7)
			}
			b.Pairs = append(b.Pairs, p)
		}
		return b
	}
	publishBad := func(subject string, data []byte, batchSeq string) {
		m := nats.NewMsg(subject)
		m.Data = data
		if batchSeq != "" {
			m.Header.Set(schema.HeaderBatchSeq, batchSeq)
			m.Header.Set(schema.HeaderWeights, "1")
		}
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		ack, err := jsX.PublishMsg(pctx, m)
		if err == nil {
			badSeqs = append(badSeqs, ack.Sequence)
		}
	}
	subjects := []string{"p0", "p1", "ghost"}
	malformed := func() {
		prod := subjects[rng.IntN(len(subjects))]
		subject := producer.SubjectFor(sc.Subject, run, prod)
		batch := uint64(rng.IntN(1000))
		enc := func(b *schema.Batch) []byte {
			data, err := schema.Encode(b, schema.EncodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
		seq := strconv.FormatUint(batch, 10)
		switch v := rng.IntN(7); v {
		case 0: // garbage
			data := make([]byte, 1+rng.IntN(4096))
			for i := range data {
				data[i] = byte(rng.UintN(256))
			}
			publishBad(subject, data, seq)
			faults["garbage"]++
		case 1: // a truncated message
			data := enc(forge(good, run, prod, batch))
			publishBad(subject, data[:rng.IntN(len(data))], seq)
			faults["truncated"]++
		case 2: // another degradation
			h := good
			h.Degradation = schema.DegradationGaussian
			publishBad(subject, enc(forge(h, run, prod, batch)), seq)
			faults["other degradation"]++
		case 3: // another HR size
			h := good
			h.HRH, h.HRW, h.LRH, h.LRW = 2*h.HRH, 2*h.HRW, 2*h.LRH, 2*h.LRW
			publishBad(subject, enc(forge(h, run, prod, batch)), seq)
			faults["other size"]++
		case 4: // rows of another producer
			other := "p1"
			if prod == "p1" {
				other = "p0"
			}
			publishBad(subject, enc(forge(good, run, other, batch)), seq)
			faults["rows of another producer"]++
		case 5: // rows of another run
			publishBad(subject, enc(forge(good, "elsewhere", prod, batch)), seq)
			faults["rows of another run"]++
		case 6: // rows of another batch than the header says
			publishBad(subject, enc(forge(good, run, prod, batch)), strconv.FormatUint(batch+1, 10))
			faults["batch header mismatch"]++
		}
	}
	replayCopy := func() {
		info, err := stream.Info(ctx)
		if err != nil || info.State.Msgs == 0 {
			return
		}
		seq := info.State.FirstSeq + rng.Uint64N(info.State.LastSeq-info.State.FirstSeq+1)
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			return
		}
		cp := nats.NewMsg(m.Subject)
		cp.Data = m.Data
		for k, v := range m.Header {
			cp.Header[k] = v
		}
		cp.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("replay-%d-%d", seq, rng.Uint64()))
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		if _, err := jsX.PublishMsg(pctx, cp); err == nil {
			faults["replayed copy of a stored message"]++
		}
	}
	rogueWeights := func() {
		st, err := openStore()
		if err != nil {
			return
		}
		defer st.Close()
		reg, err := registry.Open(ctx, jsX, st, run, log)
		if err != nil {
			return
		}
		other := cfg.PDM
		other.Kernel.NF = 4 + rng.IntN(20)
		if other.Kernel.NF == cfg.PDM.Kernel.NF {
			other.Kernel.NF++
		}
		p, err := model.NewPDM(other, tensor.Float32, rng.Uint64())
		if err != nil {
			t.Fatal(err)
		}
		data, err := model.EncodeWeights(model.KindPDM, p.Cfg, nil, nil, p.Modules()...)
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		defer pcancel()
		if ptr, err := reg.Publish(pctx, data, -1); err == nil {
			rogueVersions = append(rogueVersions, ptr.Version)
			faults["weights of another config"]++
		}
	}

	// Wait for the pipeline to run, then inject faults until the deadline.
	waitSteps := func(n int, within time.Duration) bool {
		deadline := time.Now().Add(within)
		for steps() < n {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
		return true
	}
	if !waitSteps(10, 2*time.Minute) {
		t.Fatalf("the pipeline did not start: %d steps", steps())
	}
	begin, stepsAtBegin := time.Now(), steps()
	for time.Since(begin) < dur {
		pcg.Seed(steprng.Uint64(), steprng.Uint64())
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		switch k := rng.IntN(10); {
		case k < 4:
			malformed()
		case k == 4:
			replayCopy()
		case k == 5 || k == 6:
			p := prods[rng.IntN(len(prods))]
			kill(p, time.Duration(100+rng.IntN(1500))*time.Millisecond)
			faults["producer killed"]++
		case k == 7:
			b.Shutdown()
			time.Sleep(time.Duration(100+rng.IntN(1500)) * time.Millisecond)
			startBroker()
			faults["broker restarted"]++
		case k == 8:
			s3.Stop()
			time.Sleep(time.Duration(500+rng.IntN(3000)) * time.Millisecond)
			s3.Restart()
			faults["store stopped"]++
		case k == 9:
			rogueWeights()
		}
	}
	stepsAtEnd := steps()
	// Training goes on after the last fault.
	if !waitSteps(stepsAtEnd+20, 2*time.Minute) {
		t.Errorf("training did not go on after the faults: %d steps, %d when they ended", steps(), stepsAtEnd)
	}
	stopTrainer()
	if err := <-terr; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("the trainer stopped: %v", err)
	}
	stopProducers()
	pwg.Wait()

	// The accounting.
	pool, position := checkpoint(t, out)
	inPool := map[string]bool{}
	for _, id := range pool {
		inPool[id] = true
	}
	type batchKey struct {
		producer string
		batch    uint64
	}
	rogue := map[uint64]bool{}
	for _, v := range rogueVersions {
		rogue[v] = true
	}
	rogueRows := 0
	genuine := map[batchKey]uint64{} // first stream copy of every genuine batch
	genuineIDs := map[string]bool{}
	var checked, lost int
	var lostIDs []string
	perProducer := map[string][]uint64{}
	msgs := readStream(t, ctx, stream)
	for _, m := range msgs {
		b, err := schema.Decode(m.data, schema.DecodeOptions{MaxMessageBytes: len(m.data)})
		if err != nil || !good.SameStream(b.Header) {
			continue
		}
		prod := m.subject[strings.LastIndexByte(m.subject, '.')+1:]
		ok := m.header.Get(schema.HeaderBatchSeq) == strconv.FormatUint(b.Pairs[0].BatchSeq, 10)
		for i, p := range b.Pairs {
			ok = ok && p.RunID == run && p.ProducerID == prod && p.BatchSeq == b.Pairs[0].BatchSeq && p.Index == uint32(i) &&
				p.Seed == producer.SampleSeed(cfg.Seed, prod, p.BatchSeq, p.Index)
		}
		if !ok {
			continue
		}
		k := batchKey{prod, b.Pairs[0].BatchSeq}
		if _, dup := genuine[k]; dup {
			continue
		}
		genuine[k] = m.seq
		perProducer[prod] = append(perProducer[prod], k.batch)
		if rogue[b.Pairs[0].WeightsVersion] {
			rogueRows++
		}
		for _, p := range b.Pairs {
			genuineIDs[p.SampleID] = true
			if m.seq > position {
				continue // after the checkpoint: a resumed trainer reads it
			}
			checked++
			if l.trained[p.SampleID] == 0 && !inPool[p.SampleID] {
				lost++
				lostIDs = append(lostIDs, fmt.Sprintf("%s (seq %d)", p.SampleID, m.seq))
			}
		}
	}
	duplicated := 0
	for id, n := range l.trained {
		if n > 1 || (n == 1 && inPool[id]) {
			duplicated++
		}
	}
	notGenuine := 0
	for id := range l.trained {
		if !genuineIDs[id] {
			notGenuine++
		}
	}
	// Every producer's genuine batches are 0, 1, 2, ... without a gap.
	for prod, bs := range perProducer {
		sort.Slice(bs, func(i, j int) bool { return bs[i] < bs[j] })
		for i, v := range bs {
			if v != uint64(i) {
				t.Errorf("producer %s: batch %d missing from the stream (next there: %d)", prod, i, v)
				break
			}
		}
	}
	var badBefore int
	for _, s := range badSeqs {
		if s <= position {
			badBefore++
		}
	}
	bad := int(promtest.ToFloat64(tm.BadMessages))
	var nfaults int
	var kinds []string
	for k, n := range faults {
		nfaults += n
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	for _, p := range prods {
		if len(p.errs) > 0 {
			t.Logf("producer %s: %d starts; stops with an error (restarted): %q", p.id, p.starts, p.errs[:min(3, len(p.errs))])
		}
	}
	t.Logf("soak: seed %d, %s of faults: %d faults (%s)", seed, dur, nfaults, strings.Join(kinds, ", "))
	t.Logf("soak: %d steps (%d during the faults), %d stream messages, %d genuine batches; %d pairs checked up to the checkpoint's position %d: lost %d, duplicated %d, trained but not genuine %d, forged trained %d; bad messages terminated %d (%d injected before the position); duplicate batches dropped %v; weights versions published %v, %d of another config",
		steps(), stepsAtEnd-stepsAtBegin, len(msgs), len(genuine), checked, position, lost, duplicated, notGenuine, len(l.forged), bad, badBefore,
		promtest.ToFloat64(tm.Duplicates), promtest.ToFloat64(tm.WeightsVersion), len(rogueVersions))
	if lost > 0 {
		t.Errorf("%d acked good pairs lost, e.g. %v", lost, lostIDs[:min(5, len(lostIDs))])
	}
	if duplicated > 0 {
		t.Errorf("%d pairs trained twice (or trained and still in the pool)", duplicated)
	}
	if notGenuine > 0 || len(l.forged) > 0 {
		t.Errorf("%d trained pairs are not the stream's genuine ones, %d forged", notGenuine, len(l.forged))
	}
	if bad < badBefore {
		t.Errorf("the trainer terminated %d bad messages; %d were injected before its position", bad, badBefore)
	}
	if checked == 0 || stepsAtEnd-stepsAtBegin < 10 {
		t.Errorf("too little was trained during the faults: %d steps, %d pairs checked", stepsAtEnd-stepsAtBegin, checked)
	}
	if rogueRows > 0 {
		t.Errorf("%d genuine batches were made with weights of another config", rogueRows)
	}
}

// stored is one stream message.
type stored struct {
	seq     uint64
	subject string
	header  nats.Header
	data    []byte
}

// readStream reads every message of st.
func readStream(t *testing.T, ctx context.Context, st jetstream.Stream) []stored {
	t.Helper()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		out = append(out, stored{seq: seq, subject: m.Subject, header: m.Header, data: m.Data})
	}
	return out
}

// checkpoint reads the sample ids in the trainer's checkpointed pool and
// its stream position.
func checkpoint(t *testing.T, out string) ([]string, uint64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, trainer.CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	pos, err := strconv.ParseUint(f.Metadata["pdmflow.stream.position"], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint stream position: %v", err)
	}
	pool, ok := f.Get("stream.pool.arrow")
	if !ok {
		return nil, pos
	}
	batch, err := schema.Decode(pool.Data, schema.DecodeOptions{MaxMessageBytes: len(pool.Data)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range batch.Pairs {
		ids = append(ids, p.SampleID)
	}
	return ids, pos
}
