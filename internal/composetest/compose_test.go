package composetest

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/consumer"
)

// composeFiles are the compose files a test runs: docker-compose.yml and,
// unless PDMFLOW_COMPOSE_LOCAL=0, the override with the FROM-scratch
// images, plus extra.
func composeFiles(extra ...string) []string {
	files := []string{"docker-compose.yml"}
	local := os.Getenv(envLocal) != "0"
	if local {
		files = append(files, "docker-compose.local.yml")
	}
	for _, f := range extra {
		files = append(files, f)
		if local {
			files = append(files, strings.TrimSuffix(f, ".yml")+".local.yml")
		}
	}
	return files
}

// The deployment's settings in the tests: the tiny config
// (deploy/compose/config/e2e.yaml), a trainer that runs until it is stopped,
// frequent weights publishes, and small messages, so that every fault
// lands among many messages and several weights versions.
var testSettings = []string{
	"PDMFLOW_CONFIG=e2e",
	"PDMFLOW_STEPS=1000000",
	"PDMFLOW_PUBLISH_EVERY=10",
	"PDMFLOW_BATCH_PAIRS=8",
	"PDMFLOW_LAG_BUDGET=8",
}

// TestComposeFaults brings up docker-compose.yml (NATS, S3, the demo data,
// the trainer, two producers) and then, one after the other: kills a
// producer mid-batch, restarts the NATS container, kills and restarts the
// trainer, cuts a producer off the network and reconnects it, and stops S3
// while the trainer publishes. After each it checks the stream and the
// trainer's checkpoint: nothing acked lost or duplicated (see the package
// documentation).
func TestComposeFaults(t *testing.T) {
	skipUnlessEnabled(t)
	begin := time.Now()
	s := newStack(t, "faults", composeFiles(), testSettings...)
	s.compose(5*time.Minute, "up", "-d", "--scale", "producer=2")
	t.Logf("up in %.0fs", time.Since(begin).Seconds())
	natsC, trainer := s.id("nats"), s.id("trainer")
	s.checkAuth(natsC)
	prods := s.ids("producer")
	if len(prods) != 2 {
		t.Fatalf("%d producer containers, want 2", len(prods))
	}
	pa, pb := prods[0], prods[1]
	ida, idb := s.producerID(pa), s.producerID(pb)
	v := &verifier{s: s, nats: natsC, trainer: trainer, acked: map[string]uint64{}}

	phase := func(name string) func() {
		t.Logf("--- %s", name)
		start := time.Now()
		return func() { t.Logf("    %s: done in %.1fs", name, time.Since(start).Seconds()) }
	}

	done := phase("pipeline running")
	s.waitUntil("the trainer to train and both producers to hold weights", 3*time.Minute, func() (bool, string) {
		steps := s.metric(trainer, "pdmflow_trainer_steps_total")
		wa := s.metric(pa, "pdmflow_producer_weights_version")
		wb := s.metric(pb, "pdmflow_producer_weights_version")
		return steps >= 50 && wa >= 1 && wb >= 1, fmt.Sprintf("trainer steps %v, producer weights versions %v and %v", steps, wa, wb)
	})
	v.check("pipeline running")
	done()

	// The dashboards through their published ports: the trainer's follows
	// the run and the stream, a producer's shows its producer.
	done = phase("dashboards")
	s.waitUntil("the trainer's and a producer's dashboards to show the run", time.Minute, func() (bool, string) {
		td, err := s.dashboard(trainer)
		if err != nil {
			return false, err.Error()
		}
		pd, err := s.dashboard(pa)
		if err != nil {
			return false, err.Error()
		}
		reports, trainers, pid := 0, 0, ""
		if n := len(td.Runs); n > 0 {
			reports = len(td.Runs[n-1].Series["l1"])
		}
		if td.Stream != nil {
			trainers = len(td.Stream.Trainers)
		}
		if pd.Stream != nil && len(pd.Stream.Producers) == 1 {
			pid = pd.Stream.Producers[0].ID
		}
		return reports >= 1 && trainers == 1 && pid == ida,
			fmt.Sprintf("trainer's dashboard: %d reports of l1, %d trainers; producer's: producer %q (want %q)", reports, trainers, pid, ida)
	})
	done()

	// 1. A producer killed (SIGKILL) while it generates and publishes: what
	// it had acked is in the stream; restarted, it continues its sequence
	// after the last batch in the stream.
	done = phase("kill a producer mid-batch")
	batchesA := func() float64 { return s.metric(pa, "pdmflow_producer_batches_total") }
	s.waitUntil("producer A to publish", time.Minute, func() (bool, string) {
		n := batchesA()
		return n >= 3, fmt.Sprintf("%v batches", n)
	})
	n0 := batchesA()
	s.waitUntil("producer A to publish one more batch", time.Minute, func() (bool, string) {
		n := batchesA()
		return n > n0, fmt.Sprintf("%v batches", n)
	})
	acked := batchesA() // a lower bound of what it had acked when killed
	s.docker("kill", "-s", "KILL", pa)
	v.acked[ida] = uint64(acked)
	if st := s.inspect(pa, "{{.State.Status}}"); st != "running" {
		s.docker("start", pa)
	}
	s.waitUntil("producer A to produce again", time.Minute, func() (bool, string) {
		starts := producingRe.FindAllStringSubmatch(s.logs(pa), -1)
		if len(starts) < 2 {
			return false, fmt.Sprintf("%d starts in its log", len(starts))
		}
		from, _ := strconv.ParseUint(starts[len(starts)-1][1], 10, 64)
		if from < uint64(acked) {
			t.Fatalf("producer A restarted at batch %d, but it had %v batches acked before it was killed", from, acked)
		}
		return batchesA() >= 2, fmt.Sprintf("restarted at batch %d", from)
	})
	if got := s.producerID(pa); got != ida {
		t.Fatalf("producer A's id changed across the restart: %s, then %s", ida, got)
	}
	v.check("producer killed and restarted")
	done()

	// 2. The NATS container restarted: JetStream's file store is on a
	// volume, every stored message is still there, and clients reconnect.
	done = phase("restart the NATS container")
	before := s.stream(natsC)
	s.docker("restart", "-t", "10", natsC)
	s.waitHealthy(natsC, 2*time.Minute)
	steps0 := s.metric(trainer, "pdmflow_trainer_steps_total")
	s.waitUntil("training and producing to go on after the NATS restart", 2*time.Minute, func() (bool, string) {
		steps := s.metric(trainer, "pdmflow_trainer_steps_total")
		c := countBy(s.stream(natsC))
		cb := countBy(before)
		return steps >= steps0+50 && c[ida] > cb[ida]+2 && c[idb] > cb[idb]+2,
			fmt.Sprintf("trainer steps %v (from %v), batches A %d (from %d), B %d (from %d)", steps, steps0, c[ida], cb[ida], c[idb], cb[idb])
	})
	after := s.stream(natsC)
	bySeq := map[uint64]Message{}
	for _, m := range after {
		bySeq[m.Seq] = m
	}
	for _, m := range before {
		if got, ok := bySeq[m.Seq]; !ok || got != m {
			t.Fatalf("message %d (%s batch %d) was in the stream before NATS restarted and is not after (found %+v)", m.Seq, m.Producer, m.Batch, got)
		}
	}
	t.Logf("    all %d messages stored before the restart are still there", len(before))
	v.check("NATS restarted")
	done()

	// 3. The trainer killed (SIGKILL) and started again: it resumes from its
	// checkpoint and re-reads what it had acked after it.
	done = phase("kill and restart the trainer")
	s.waitUntil("the trainer to train", time.Minute, func() (bool, string) {
		steps := s.metric(trainer, "pdmflow_trainer_steps_total")
		return steps >= 60, fmt.Sprintf("%v steps", steps)
	})
	s.docker("kill", "-s", "KILL", trainer)
	cpKilled, err := s.checkpoint(trainer)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.inspect(trainer, "{{.State.Status}}"); st != "running" {
		s.docker("start", trainer)
	}
	s.waitUntil("the trainer to resume from its checkpoint and train on", 2*time.Minute, func() (bool, string) {
		m := resumeRe.FindAllStringSubmatch(s.logs(trainer), -1)
		if len(m) == 0 {
			return false, "no resume in its log"
		}
		step, _ := strconv.Atoi(m[len(m)-1][1])
		if step != cpKilled.Step {
			t.Fatalf("the trainer resumed at step %d; its checkpoint was at step %d", step, cpKilled.Step)
		}
		cp, err := s.checkpoint(trainer)
		if err != nil {
			return false, err.Error()
		}
		return cp.Step >= cpKilled.Step+50, fmt.Sprintf("resumed at step %d, checkpoint at step %d", step, cp.Step)
	})
	v.check("trainer killed and resumed")
	done()

	// 4. A producer cut off the network for a while: it cannot publish,
	// the other one goes on; reconnected, it retries with the same message
	// ids and continues.
	done = phase("cut a producer off the network")
	network := s.inspect(pb, "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}")
	s.docker("network", "disconnect", network, pb)
	time.Sleep(2 * time.Second)
	c1 := countBy(s.stream(natsC))
	time.Sleep(6 * time.Second)
	c2 := countBy(s.stream(natsC))
	if c2[idb] != c1[idb] {
		t.Fatalf("producer B published while cut off the network: %d batches, then %d", c1[idb], c2[idb])
	}
	if c2[ida] <= c1[ida] {
		t.Logf("    producer A did not publish while B was cut off either (%d batches): it may be waiting on the trainer", c2[ida])
	}
	s.docker("network", "connect", network, pb)
	s.waitUntil("producer B to publish again", 2*time.Minute, func() (bool, string) {
		c := countBy(s.stream(natsC))
		return c[idb] >= c2[idb]+3, fmt.Sprintf("%d batches (%d when cut off)", c[idb], c2[idb])
	})
	v.check("producer cut off and reconnected")
	done()

	// 5. S3 away while the trainer publishes weights: it counts the
	// failures and retries; producers keep the weights they have and keep
	// producing; once S3 is back, new weights reach them.
	done = phase("make S3 unavailable")
	s3 := s.id("s3")
	errs0 := s.metric(trainer, "pdmflow_trainer_weights_publish_errors_total")
	s.docker("stop", "-t", "5", s3)
	s.waitUntil("the trainer to fail to publish", time.Minute, func() (bool, string) {
		e := s.metric(trainer, "pdmflow_trainer_weights_publish_errors_total")
		return e > errs0, fmt.Sprintf("%v publish errors", e)
	})
	vStop := s.metric(trainer, "pdmflow_trainer_weights_version")
	wa, wb := s.metric(pa, "pdmflow_producer_weights_version"), s.metric(pb, "pdmflow_producer_weights_version")
	if wa < 1 || wb < 1 || wa > vStop || wb > vStop {
		t.Fatalf("weights versions: trainer %v, producers %v and %v", vStop, wa, wb)
	}
	var lastSeq uint64
	for _, m := range s.stream(natsC) {
		lastSeq = max(lastSeq, m.Seq)
	}
	time.Sleep(8 * time.Second)
	var during int
	for _, m := range s.stream(natsC) {
		if m.Seq > lastSeq {
			during++
			if float64(m.Weights) > vStop || m.Weights == 0 {
				t.Fatalf("message %d of %s, made while S3 was away, has weights version %d (the last published: %v)", m.Seq, m.Producer, m.Weights, vStop)
			}
		}
	}
	if during == 0 {
		t.Fatalf("no producer published while S3 was away")
	}
	if v := s.metric(trainer, "pdmflow_trainer_weights_version"); v != vStop {
		t.Fatalf("the weights version moved from %v to %v while S3 was away", vStop, v)
	}
	for _, p := range []string{pa, pb} {
		if f := s.metric(p, "pdmflow_producer_weights_reload_failures_total"); f != 0 {
			t.Logf("    producer %s: %v weights reload failures", p[:12], f)
		}
	}
	errsDuring := s.metric(trainer, "pdmflow_trainer_weights_publish_errors_total") - errs0
	t.Logf("    S3 away: %v failed publishes, %d batches made with weights version <= %v", errsDuring, during, vStop)
	s.docker("start", s3)
	s.waitHealthy(s3, time.Minute)
	s.waitUntil("new weights to reach both producers", 2*time.Minute, func() (bool, string) {
		vt := s.metric(trainer, "pdmflow_trainer_weights_version")
		wa := s.metric(pa, "pdmflow_producer_weights_version")
		wb := s.metric(pb, "pdmflow_producer_weights_version")
		return vt > vStop && wa > vStop && wb > vStop, fmt.Sprintf("trainer %v, producers %v and %v (version %v when S3 went away)", vt, wa, wb, vStop)
	})
	v.check("S3 away and back")
	done()

	// The end: the trainer stops on SIGTERM with a checkpoint, and the whole
	// stream is accounted for.
	done = phase("stop the trainer")
	s.compose(2*time.Minute, "stop", "-t", "60", "trainer")
	if !strings.Contains(s.logs(trainer), "interrupted, saving a checkpoint") {
		t.Fatalf("the trainer did not save a checkpoint on SIGTERM")
	}
	if n := strings.Count(s.logs(trainer), "bad message"); n > 0 {
		t.Fatalf("the trainer logged %d bad messages", n)
	}
	counts := v.check("trainer stopped")
	if len(counts) != 2 {
		t.Fatalf("the stream holds batches of %d producers, want 2 (restarts must keep the producer id): %v", len(counts), counts)
	}
	done()
	s.checkSecrets()
	t.Logf("all faults passed in %.0fs (the test, images and teardown aside)", time.Since(begin).Seconds())
}

var (
	producingRe = regexp.MustCompile(`msg=producing .*from_batch=(\d+)`)
	resumeRe    = regexp.MustCompile(`msg="resuming from checkpoint" .*step=(\d+)`)
)

// verifier checks the stream and the trainer's checkpoint.
type verifier struct {
	s             *stack
	nats, trainer string
	acked         map[string]uint64 // producer id -> batches it had acked when killed
}

// check copies the trainer's checkpoint, then reads the stream (so that the
// stream holds everything up to the checkpoint's position) and checks
// both. It returns the batches per producer.
func (v *verifier) check(phase string) map[string]uint64 {
	t := v.s.t
	t.Helper()
	cp, err := v.s.checkpoint(v.trainer)
	if err != nil {
		t.Fatalf("%s: %v", phase, err)
	}
	msgs := v.s.stream(v.nats)
	counts, err := CheckStream(msgs)
	if err != nil {
		t.Fatalf("%s: %v", phase, err)
	}
	for p, n := range v.acked {
		if counts[p] < n {
			t.Fatalf("%s: producer %s had %d batches acked when it was killed; the stream holds %d", phase, p, n, counts[p])
		}
	}
	if err := CheckConservation(msgs, cp); err != nil {
		t.Fatalf("%s: %v", phase, err)
	}
	pairs := 0
	for _, m := range msgs {
		pairs += m.Pairs
	}
	t.Logf("    %s: ok: stream %d batches, %d pairs %v; checkpoint step %d, position %d, pool %d pairs",
		phase, len(msgs), pairs, counts, cp.Step, cp.Position, cp.Pool)
	return counts
}

// TestComposeCluster runs docker-compose.cluster.yml: a 3-node JetStream
// cluster with the pair stream and the weights KV bucket on all three
// nodes, clients logging in with a user and password. It stops the node
// that leads the stream and checks that training, producing and weights
// updates go on, then starts it again and checks that nothing acked was
// lost or duplicated.
func TestComposeCluster(t *testing.T) {
	skipUnlessEnabled(t)
	begin := time.Now()
	settings := append(append([]string(nil), testSettings...), "PDMFLOW_REPLICAS=3")
	s := newStack(t, "cluster", composeFiles("docker-compose.cluster.yml"), settings...)
	s.compose(5*time.Minute, "up", "-d", "--scale", "producer=2")
	t.Logf("up in %.0fs", time.Since(begin).Seconds())
	nodes := map[string]string{"nats-1": s.id("nats"), "nats-2": s.id("nats-2"), "nats-3": s.id("nats-3")}
	s.checkAuth(nodes["nats-2"])
	trainer := s.id("trainer")
	prods := s.ids("producer")
	if len(prods) != 2 {
		t.Fatalf("%d producer containers, want 2", len(prods))
	}
	ids := []string{s.producerID(prods[0]), s.producerID(prods[1])}
	s.waitUntil("the trainer to train and both producers to hold weights", 3*time.Minute, func() (bool, string) {
		steps := s.metric(trainer, "pdmflow_trainer_steps_total")
		wa := s.metric(prods[0], "pdmflow_producer_weights_version")
		wb := s.metric(prods[1], "pdmflow_producer_weights_version")
		return steps >= 50 && wa >= 1 && wb >= 1, fmt.Sprintf("trainer steps %v, producer weights versions %v and %v", steps, wa, wb)
	})

	pairs, weights := consumer.DefaultStreamName(s.run), "KV_pdmflow_weights"
	var rep map[string]replication
	s.waitUntil("the stream and the KV bucket to have 3 current replicas", time.Minute, func() (bool, string) {
		var err error
		if rep, err = s.replicationOf(nodes["nats-1"], pairs, weights); err != nil {
			return false, err.Error()
		}
		return rep[pairs].Replicas == 3 && len(rep[pairs].Current) == 3 && rep[weights].Replicas == 3 && len(rep[weights].Current) == 3,
			fmt.Sprintf("%+v", rep)
	})
	leader := rep[pairs].Leader
	down, ok := nodes[leader]
	if !ok {
		t.Fatalf("the stream's leader %q is none of %v", leader, nodes)
	}
	var up string
	for name, id := range nodes {
		if name != leader {
			up = id
		}
	}
	v := &verifier{s: s, nats: up, trainer: trainer, acked: map[string]uint64{}}
	v.check("cluster running")

	t.Logf("--- stop %s, the stream's leader (KV leader %s)", leader, rep[weights].Leader)
	start := time.Now()
	s.docker("stop", "-t", "10", down)
	before := countBy(s.stream(up))
	steps0 := s.metric(trainer, "pdmflow_trainer_steps_total")
	vt0 := s.metric(trainer, "pdmflow_trainer_weights_version")
	s.waitUntil("training, producing and weights updates to go on with a node down", 3*time.Minute, func() (bool, string) {
		steps := s.metric(trainer, "pdmflow_trainer_steps_total")
		vt := s.metric(trainer, "pdmflow_trainer_weights_version")
		wa := s.metric(prods[0], "pdmflow_producer_weights_version")
		wb := s.metric(prods[1], "pdmflow_producer_weights_version")
		c := countBy(s.stream(up))
		return steps >= steps0+100 && c[ids[0]] >= before[ids[0]]+5 && c[ids[1]] >= before[ids[1]]+5 && vt > vt0 && wa > vt0 && wb > vt0,
			fmt.Sprintf("trainer steps %v (from %v), weights version %v (from %v), producers' versions %v and %v, batches %d and %d (from %d and %d)",
				steps, steps0, vt, vt0, wa, wb, c[ids[0]], c[ids[1]], before[ids[0]], before[ids[1]])
	})
	if rep, err := s.replicationOf(up, pairs, weights); err == nil {
		t.Logf("    with %s down: stream leader %s, KV leader %s", leader, rep[pairs].Leader, rep[weights].Leader)
	}
	v.check("one node down")
	t.Logf("    one node down: done in %.1fs", time.Since(start).Seconds())

	t.Logf("--- start %s again", leader)
	s.docker("start", down)
	s.waitHealthy(down, 2*time.Minute)
	s.waitUntil("the restarted node to catch up", 2*time.Minute, func() (bool, string) {
		rep, err := s.replicationOf(up, pairs, weights)
		if err != nil {
			return false, err.Error()
		}
		return len(rep[pairs].Current) == 3 && len(rep[weights].Current) == 3, fmt.Sprintf("%+v", rep)
	})
	s.compose(2*time.Minute, "stop", "-t", "60", "trainer")
	v.nats = down // read the stream from the node that was down
	counts := v.check("node back, trainer stopped")
	if len(counts) != 2 {
		t.Fatalf("the stream holds batches of %d producers, want 2: %v", len(counts), counts)
	}
	s.checkSecrets()
	t.Logf("cluster test passed in %.0fs (images and teardown aside)", time.Since(begin).Seconds())
}
