package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/broker"
	"github.com/pdmflow/pdmflow/internal/natsconn"
	"github.com/pdmflow/pdmflow/internal/s3test"
	"github.com/pdmflow/pdmflow/internal/safetensors"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
	"github.com/pdmflow/pdmflow/trainer"
)

func tinyConfig(steps int) *trainer.Config {
	c, _ := trainer.Preset("cpu-small")
	c.Name = "tiny"
	c.Batch, c.HRCrop, c.Steps = 4, 24, steps
	c.PDM.Kernel = model.KernelConfig{Size: 7, NC: 4, NF: 8, NB: 1, Conv: 1, Init: "box"}
	c.PDM.Noise = model.NoiseConfig{Mode: model.NoiseMixed, NC: 2, NF: 4, NB: 1, Conv: 3}
	c.Disc = model.DiscConfig{NF: 4, Out: 2, Stride: 1}
	c.SR.NF, c.SR.NB = 4, 1
	c.LogEvery, c.SampleEvery, c.CheckpointEvery = 0, 0, 5
	return c
}

// ledger records what the consumer acked and what the trainer trained.
type ledger struct {
	mu       sync.Mutex
	acked    map[string]int    // sample id -> times acked into the pool
	seqs     map[string]uint64 // sample id -> stream sequence of its last ack
	trained  map[string]int    // sample id -> times trained
	versions map[uint64]int    // weights version -> rows
	steps    map[int][]string  // step -> sample ids
	byStep   map[int]struct{}  // steps seen
	hashes   map[uint64]string // weights version -> sha256 seen in rows
	bad      []string
}

func newLedger() *ledger {
	return &ledger{acked: map[string]int{}, seqs: map[string]uint64{}, trained: map[string]int{}, versions: map[uint64]int{},
		steps: map[int][]string{}, byStep: map[int]struct{}{}, hashes: map[uint64]string{}}
}

func (l *ledger) onAck(b *schema.Batch, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range b.Pairs {
		l.acked[p.SampleID]++
		l.seqs[p.SampleID] = seq
		l.versions[p.WeightsVersion]++
		if h, ok := l.hashes[p.WeightsVersion]; ok && h != p.WeightsSHA256 {
			l.bad = append(l.bad, fmt.Sprintf("version %d seen with two hashes", p.WeightsVersion))
		}
		l.hashes[p.WeightsVersion] = p.WeightsSHA256
	}
}

func (l *ledger) onTrained(step int, es []consumer.Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range es {
		l.trained[e.Pair.SampleID]++
		l.steps[step] = append(l.steps[step], e.Pair.SampleID)
	}
}

// forgetAfter drops what steps >= step trained: work a crashed trainer did
// after its last checkpoint, which the restarted trainer redoes.
func (l *ledger) forgetAfter(step int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s, ids := range l.steps {
		if s >= step {
			for _, id := range ids {
				l.trained[id]--
			}
			delete(l.steps, s)
		}
	}
}

// poolAtCheckpoint reads the sample ids left in the final checkpoint's
// shuffle pool and its stream position.
func poolAtCheckpoint(t *testing.T, out string) ([]string, uint64) {
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

// check asserts the accounting: no sample trained twice, every trained
// sample was acked, and every acked sample is trained, or in the pool of
// the last checkpoint, or after that checkpoint's stream position (where a
// restarted trainer will get it again).
func (l *ledger) check(t *testing.T, pool []string, position uint64) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bad {
		t.Error(b)
	}
	inPool := map[string]bool{}
	for _, id := range pool {
		if inPool[id] {
			t.Errorf("sample %s twice in the pool", id)
		}
		inPool[id] = true
	}
	var missing []string
	for id, n := range l.trained {
		if n > 1 {
			t.Errorf("sample %s trained %d times", id, n)
		}
		if n == 1 && l.acked[id] == 0 {
			t.Errorf("sample %s trained but never acked", id)
		}
		if n == 1 && inPool[id] {
			t.Errorf("sample %s trained and still in the pool", id)
		}
	}
	for id := range l.acked {
		if l.trained[id] == 0 && !inPool[id] && l.seqs[id] <= position {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d acked samples neither trained nor in the pool, e.g. %v ", len(missing), missing[:min(5, len(missing))])
	}
}

func pipelineData(t *testing.T) (hr, lr string) {
	dir := t.TempDir()
	hr, lr = filepath.Join(dir, "hr"), filepath.Join(dir, "lr")
	testutil.WriteImages(t, hr, 3, 48, 40, 1)
	testutil.WriteImages(t, lr, 4, 16, 14, 2)
	return hr, lr
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// TestPipelineEndToEnd runs two producers and the trainer through an
// embedded JetStream server with the weights in a real S3 server
// (versitygw), and checks the accounting and the weights versions.
func TestPipelineEndToEnd(t *testing.T) {
	s3 := s3test.Start(t)
	hr, lr := pipelineData(t)
	out := t.TempDir()
	l := newLedger()
	cfg := tinyConfig(30)
	var prods []*producer.Producer
	err := Pipeline(context.Background(), PipelineOptions{
		Config: cfg, Run: "e2e", HR: hr, LR: lr, Out: out, Producers: 2,
		Store:        "s3://" + s3.Bucket + "/weights",
		S3:           store.Config{Endpoint: s3.Endpoint, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Insecure: true},
		PublishEvery: 4, LagBudget: 3, Log: testLog(t),
		OnAck: l.onAck, OnTrained: l.onTrained,
		OnProducers: func(ps []*producer.Producer) { prods = ps },
	})
	if err != nil {
		t.Fatal(err)
	}
	pool, pos := poolAtCheckpoint(t, out)
	l.check(t, pool, pos)
	if got := len(l.steps); got != cfg.Steps {
		t.Errorf("trained %d steps, want %d", got, cfg.Steps)
	}
	// Published versions: 1 at step 0, then every 4 steps.
	maxVersion := uint64(1 + cfg.Steps/4)
	var versions []uint64
	for v := range l.versions {
		versions = append(versions, v)
		if v < 1 || v > maxVersion {
			t.Errorf("rows with weights version %d, which the trainer never published (1..%d)", v, maxVersion)
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	if len(versions) < 2 {
		t.Errorf("the producers' weights version never advanced: versions in rows %v", versions)
	}
	for _, p := range prods {
		if p.Weights().Version < 2 {
			t.Errorf("a producer ended on weights version %d", p.Weights().Version)
		}
	}
	// The published objects are in S3 under their hash.
	st, err := store.Open(context.Background(), "s3://"+s3.Bucket+"/weights", store.Config{Endpoint: s3.Endpoint, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for v, sum := range l.hashes {
		if _, err := store.GetVerified(context.Background(), st, store.WeightsKey(sum), sum); err != nil {
			t.Errorf("weights version %d: %v", v, err)
		}
	}
	t.Logf("versions in rows: %v; %d samples acked, %d trained", versions, len(l.acked), len(l.trained))
}

// TestPipelineResumeLosesNothing interrupts the trainer mid-run and
// restarts it from its checkpoint, with producers stopped and restarted
// too: no acked sample is lost or trained twice.
func TestPipelineResumeLosesNothing(t *testing.T) {
	hr, lr := pipelineData(t)
	out := t.TempDir()
	l := newLedger()
	cfg := tinyConfig(24)
	ctx, cancel := context.WithCancel(context.Background())
	stopAt := 11
	opts := PipelineOptions{
		Config: cfg, Run: "resume", HR: hr, LR: lr, Out: out, Producers: 2,
		PublishEvery: 4, LagBudget: 3, Log: testLog(t),
		OnAck: l.onAck,
		OnTrained: func(step int, es []consumer.Entry) {
			l.onTrained(step, es)
			if step == stopAt {
				cancel()
			}
		},
	}
	err := Pipeline(ctx, opts)
	if err == nil || ctx.Err() == nil {
		t.Fatalf("first run: err %v, want an interruption", err)
	}
	// Samples acked after the interrupted trainer's last checkpoint are not
	// in it: the restarted consumer gets them again after the checkpoint's
	// stream position.
	opts.OnTrained = l.onTrained
	if err := Pipeline(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	pool, pos := poolAtCheckpoint(t, out)
	l.check(t, pool, pos)
	if got := len(l.steps); got != cfg.Steps {
		t.Errorf("trained %d distinct steps, want %d", got, cfg.Steps)
	}
}

// The crash test runs the producers and the trainer in a child process
// (this test binary, re-executed) against a broker in the parent, kills the
// child with SIGKILL mid-run, restarts the pipeline from the checkpoint,
// and checks the accounting across both runs.
const crashChildEnv = "PDMFLOW_TEST_CRASH_CHILD"

// TestPipelineCrashChild is the child's side; it does nothing in a normal
// run.
func TestPipelineCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		t.Skip("helper of TestPipelineKilledTrainerLosesNothing; runs only in its child process")
	}
	var c struct{ URL, HR, LR, Out, Ledger string }
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(c.Ledger, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// Each line is one write(2): the kernel has it even if this process is
	// killed right after.
	emit := func(format string, a ...any) { f.WriteString(fmt.Sprintf(format, a...)) }
	err = Pipeline(context.Background(), PipelineOptions{
		Config: tinyConfig(1000), Run: "crash", HR: c.HR, LR: c.LR, Out: c.Out, Producers: 2,
		NATS: natsconn.Config{URL: c.URL}, PublishEvery: 4, LagBudget: 3,
		OnAck: func(b *schema.Batch, seq uint64) {
			for _, p := range b.Pairs {
				emit("ack %s %d\n", p.SampleID, seq)
			}
		},
		OnTrained: func(step int, es []consumer.Entry) {
			for _, e := range es {
				emit("train %d %s\n", step, e.Pair.SampleID)
			}
		},
	})
	t.Fatalf("the child's pipeline returned (%v); it should have been killed", err)
}

func TestPipelineKilledTrainerLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a child process")
	}
	ctx := context.Background()
	b, err := broker.Start(ctx, broker.Options{Dir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	hr, lr := pipelineData(t)
	out := t.TempDir()
	ledgerFile := filepath.Join(t.TempDir(), "ledger")
	spec, _ := json.Marshal(map[string]string{"URL": b.ClientURL(), "HR": hr, "LR": lr, "Out": out, "Ledger": ledgerFile})
	cmd := exec.Command(os.Args[0], "-test.run=^TestPipelineCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(spec))
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once it has checkpointed (every 5 steps) a few times.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, ok := checkpointStep(out); ok && st >= 15 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the child did not reach step 15 in time:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond) // let it run on past the checkpoint
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	l := newLedger()
	data, err := os.ReadFile(ledgerFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var id string
		var n uint64
		switch {
		case strings.HasPrefix(line, "ack "):
			fmt.Sscanf(line, "ack %s %d", &id, &n)
			l.onAck(&schema.Batch{Pairs: []schema.Pair{{SampleID: id, WeightsVersion: 1, WeightsSHA256: "x"}}}, n)
		case strings.HasPrefix(line, "train "):
			fmt.Sscanf(line, "train %d %s", &n, &id)
			l.onTrained(int(n), []consumer.Entry{{Pair: schema.Pair{SampleID: id}}})
		}
	}
	ck, ok := checkpointStep(out)
	if !ok {
		t.Fatal("no checkpoint after the kill")
	}
	// What the killed trainer did after its checkpoint is redone.
	l.forgetAfter(ck)
	t.Logf("killed after its checkpoint at step %d; %d samples acked, %d steps trained before it", ck, len(l.acked), len(l.steps))

	cfg := tinyConfig(ck + 10)
	err = Pipeline(ctx, PipelineOptions{
		Config: cfg, Run: "crash", HR: hr, LR: lr, Out: out, Producers: 2,
		NATS: natsconn.Config{URL: b.ClientURL()}, PublishEvery: 4, LagBudget: 3, Log: testLog(t),
		OnAck: func(b *schema.Batch, seq uint64) {
			for _, p := range b.Pairs {
				l.onAck(&schema.Batch{Pairs: []schema.Pair{{SampleID: p.SampleID, WeightsVersion: 1, WeightsSHA256: "x"}}}, seq)
			}
		},
		OnTrained: l.onTrained,
	})
	if err != nil {
		t.Fatal(err)
	}
	pool, pos := poolAtCheckpoint(t, out)
	l.check(t, pool, pos)
	if got := len(l.steps); got != cfg.Steps {
		t.Errorf("%d distinct steps trained, want %d", got, cfg.Steps)
	}
}

// checkpointStep reads the step of the checkpoint in out.
func checkpointStep(out string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(out, trainer.CheckpointFile))
	if err != nil {
		return 0, false
	}
	f, err := safetensors.Decode(b)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(f.Metadata["pdmflow.step"])
	return n, err == nil
}
