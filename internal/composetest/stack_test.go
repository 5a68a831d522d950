package composetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/schema"
)

// envEnable turns the compose tests on; envKeep leaves the containers and
// volumes up after a run (for a look at them); envLocal=0 runs the upstream
// images of docker-compose.yml instead of the FROM-scratch ones.
const (
	envEnable  = "PDMFLOW_COMPOSE_TEST"
	envKeep    = "PDMFLOW_COMPOSE_KEEP"
	envLocal   = "PDMFLOW_COMPOSE_LOCAL"
	envCompose = "PDMFLOW_COMPOSE" // the compose command, e.g. "docker compose"
)

// skipUnlessEnabled skips a compose test, saying why, unless the
// environment asks for it.
func skipUnlessEnabled(t *testing.T) {
	t.Helper()
	if os.Getenv(envEnable) != "1" {
		t.Skipf("%s is not 1: this end-to-end test starts a docker compose deployment (Docker with compose needed); run `make compose-test`", envEnable)
	}
}

// stack is one compose project.
type stack struct {
	t       *testing.T
	root    string   // the repository root, where the compose files are
	cmd     []string // "docker compose" or "docker-compose"
	project string
	files   []string
	env     []string
	run     string // pdmflow run id
	// natsOpts log the test's own NATS clients in (PDMFLOW_NATS_USER and
	// PDMFLOW_NATS_PASSWORD).
	natsOpts []nats.Option
	// secrets are the credentials' secret parts, which no log may hold.
	secrets []string
}

// newStack prepares a project with the given compose files (relative to
// the repository root) and settings (NAME=VALUE), builds its images and
// registers its teardown.
func newStack(t *testing.T, name string, files []string, settings ...string) *stack {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(self), "..", ".."))
	s := &stack{t: t, root: root, project: fmt.Sprintf("pdmflow%s%d", name, os.Getpid()), files: files, run: "e2e"}
	s.cmd = composeCommand(t)
	if os.Getenv(envLocal) != "0" {
		for _, bin := range []string{"bin/docker/pdmflow", "bin/docker/minio", "bin/docker/rootfs"} {
			if _, err := os.Stat(filepath.Join(root, bin)); err != nil {
				t.Fatalf("%s is missing: run `make compose-local-bin` (deploy/compose/local-bin.sh) first", bin)
			}
		}
	}
	s.env = append(os.Environ(),
		"PDMFLOW_RUN="+s.run,
		// Every published port on a free port of the loopback interface,
		// so that runs on a shared Docker host do not collide.
		"PDMFLOW_NATS_PUBLISH=127.0.0.1:",
		"PDMFLOW_S3_PUBLISH=127.0.0.1:",
		"PDMFLOW_MONITOR_PUBLISH=127.0.0.1:",
		"PDMFLOW_METRICS_PUBLISH=127.0.0.1:",
		"PDMFLOW_UI_PUBLISH=127.0.0.1:",
	)
	// Credentials are required, different on every run, and must appear
	// in no log (checkSecrets).
	secret := func(what string) string { return fmt.Sprintf("%s-%d-%x", what, os.Getpid(), time.Now().UnixNano()) }
	s.secrets = []string{secret("natspw"), secret("s3secret")}
	s.env = append(s.env,
		"PDMFLOW_NATS_USER=pdmflow",
		"PDMFLOW_NATS_PASSWORD="+s.secrets[0],
		"PDMFLOW_S3_ACCESS_KEY=pdmflow-e2e",
		"PDMFLOW_S3_SECRET_KEY="+s.secrets[1],
	)
	s.env = append(s.env, settings...)
	s.natsOpts = []nats.Option{nats.Timeout(5 * time.Second), nats.Name("pdmflow-composetest"), nats.UserInfo("pdmflow", s.secrets[0])}
	t.Cleanup(s.down)
	start := time.Now()
	s.compose(5*time.Minute, "build", "synth", "s3")
	t.Logf("images built in %.0fs", time.Since(start).Seconds())
	return s
}

// composeCommand finds docker compose (the plugin) or docker-compose.
func composeCommand(t *testing.T) []string {
	if c := os.Getenv(envCompose); c != "" {
		return strings.Fields(c)
	}
	for _, c := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		if exec.Command(c[0], append(c[1:], "version")...).Run() == nil {
			return c
		}
	}
	t.Fatalf("%s=1 but neither `docker compose` nor `docker-compose` works here", envEnable)
	return nil
}

func (s *stack) composeArgs(args ...string) []string {
	a := append([]string(nil), s.cmd[1:]...)
	a = append(a, "-p", s.project)
	for _, f := range s.files {
		a = append(a, "-f", filepath.Join(s.root, f))
	}
	return append(a, args...)
}

// exec runs a command with the stack's environment and returns its
// combined output.
func (s *stack) exec(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Dir, c.Env = s.root, s.env
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

// compose runs a compose command and fails the test if it fails.
func (s *stack) compose(timeout time.Duration, args ...string) string {
	s.t.Helper()
	out, err := s.exec(timeout, s.cmd[0], s.composeArgs(args...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// docker runs a docker command and fails the test if it fails.
func (s *stack) docker(args ...string) string {
	s.t.Helper()
	out, err := s.exec(2*time.Minute, "docker", args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// checkSecrets reads the logs of every container of the project, the
// stopped and restarted ones included, and fails the test if one holds a
// secret of the deployment.
func (s *stack) checkSecrets() {
	s.t.Helper()
	out := s.compose(2*time.Minute, "ps", "-a", "-q")
	ids := strings.Fields(out)
	if len(ids) == 0 {
		s.t.Fatal("no containers to check the logs of")
	}
	for _, id := range ids {
		logs := s.logs(id)
		name := s.inspect(id, "{{.Name}}")
		for _, sec := range s.secrets {
			if strings.Contains(logs, sec) {
				s.t.Errorf("the log of container %s holds a secret of the deployment", name)
			}
		}
	}
	s.t.Logf("    no secret in the logs of the %d containers", len(ids))
}

// checkAuth checks that NATS refuses a client without credentials.
func (s *stack) checkAuth(natsID string) {
	s.t.Helper()
	addr, err := s.hostPort(natsID, "4222")
	if err != nil {
		s.t.Fatal(err)
	}
	if nc, err := nats.Connect("nats://"+addr, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		s.t.Fatalf("a client without credentials connected to NATS")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		s.t.Fatalf("a client without credentials: %v, want an authorization error", err)
	}
}

func (s *stack) down() {
	if s.t.Failed() {
		out, _ := s.exec(time.Minute, s.cmd[0], s.composeArgs("logs", "--no-color", "--tail", "60")...)
		s.t.Logf("compose logs (last 60 lines of each service):\n%s", out)
	}
	if os.Getenv(envKeep) == "1" {
		s.t.Logf("%s=1: leaving project %s up; remove it with: %s down -v", envKeep, s.project, strings.Join(s.composeArgs(), " "))
		return
	}
	if out, err := s.exec(3*time.Minute, s.cmd[0], s.composeArgs("down", "-v", "--remove-orphans", "-t", "5")...); err != nil {
		s.t.Logf("teardown: %v\n%s", err, out)
	}
}

// ids returns the containers of a service, in the order of their names.
func (s *stack) ids(service string) []string {
	s.t.Helper()
	out := s.compose(time.Minute, "ps", "-q", service)
	var ids []string
	for _, l := range strings.Fields(out) {
		ids = append(ids, l)
	}
	names := map[string]string{}
	for _, id := range ids {
		names[id] = s.docker("inspect", "-f", "{{.Name}}", id)
	}
	sort.Slice(ids, func(i, j int) bool { return names[ids[i]] < names[ids[j]] })
	return ids
}

func (s *stack) id(service string) string {
	s.t.Helper()
	ids := s.ids(service)
	if len(ids) != 1 {
		s.t.Fatalf("service %s has %d containers, want 1", service, len(ids))
	}
	return ids[0]
}

// hostPort is the loopback address a container's port is published on
// (asked afresh every time: a restarted container may get another port).
func (s *stack) hostPort(id, port string) (string, error) {
	out, err := s.exec(time.Minute, "docker", "port", id, port+"/tcp")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Fields(out) {
		if strings.HasPrefix(l, "127.0.0.1:") {
			return l, nil
		}
	}
	return "", fmt.Errorf("container %s publishes no port %s on 127.0.0.1: %q", id[:12], port, out)
}

// metrics scrapes a container's --metrics-addr (port 9090) and sums each
// metric over its labels.
func (s *stack) metrics(id string) (map[string]float64, error) {
	addr, err := s.hostPort(id, "9090")
	if err != nil {
		return nil, err
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: %s", id[:12], resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(l, ' ')
		if sp < 0 {
			continue
		}
		name := l[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		v, err := strconv.ParseFloat(l[sp+1:], 64)
		if err == nil {
			m[name] += v
		}
	}
	return m, sc.Err()
}

// dashboardState is the part of a dashboard's /api/state the tests read.
type dashboardState struct {
	Runs []struct {
		Series map[string][][2]float64 `json:"series"`
	} `json:"runs"`
	Stream *struct {
		Producers []struct {
			ID string `json:"id"`
		} `json:"producers"`
		Trainers []struct {
			Steps float64 `json:"steps"`
		} `json:"trainers"`
	} `json:"stream"`
}

// dashboard reads a container's dashboard (--ui-addr, port 8080) through
// its published port: the page, then /api/state.
func (s *stack) dashboard(id string) (dashboardState, error) {
	var st dashboardState
	addr, err := s.hostPort(id, "8080")
	if err != nil {
		return st, err
	}
	c := http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/", "/api/state"} {
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			return st, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return st, err
		}
		if resp.StatusCode != http.StatusOK {
			return st, fmt.Errorf("dashboard of %s: %s: %s", id[:12], path, resp.Status)
		}
		if path == "/" && !bytes.Contains(b, []byte(`src="app.js"`)) {
			return st, fmt.Errorf("dashboard of %s: / is not the page", id[:12])
		}
		if path == "/api/state" {
			if err := json.Unmarshal(b, &st); err != nil {
				return st, fmt.Errorf("dashboard of %s: %w", id[:12], err)
			}
		}
	}
	return st, nil
}

// metric is one metric of a container, or -1 when it cannot be read.
func (s *stack) metric(id, name string) float64 {
	m, err := s.metrics(id)
	if err != nil {
		return -1
	}
	v, ok := m[name]
	if !ok {
		return -1
	}
	return v
}

// waitUntil polls cond until it holds or the timeout passes; cond says
// where things stand for the failure message.
func (s *stack) waitUntil(what string, timeout time.Duration, cond func() (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %s (%s)", timeout, what, status)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (s *stack) inspect(id, format string) string {
	out, err := s.exec(time.Minute, "docker", "inspect", "-f", format, id)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

func (s *stack) waitHealthy(id string, timeout time.Duration) {
	s.t.Helper()
	s.waitUntil("container "+id[:12]+" to be healthy", timeout, func() (bool, string) {
		h := s.inspect(id, "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}")
		return h == "running healthy", h
	})
}

// logs returns a container's logs (those of its earlier runs included).
func (s *stack) logs(id string) string {
	out, _ := s.exec(time.Minute, "docker", "logs", id)
	return out
}

// producerID is the pdmflow producer id of a producer container: its
// hostname (the container id's first 12 characters), the default id.
func (s *stack) producerID(id string) string {
	return s.inspect(id, "{{.Config.Hostname}}")
}

// stream reads the run's messages from the stream through the published
// NATS port of container natsID.
func (s *stack) stream(natsID string) []Message {
	s.t.Helper()
	var msgs []Message
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var addr string
		if addr, err = s.hostPort(natsID, "4222"); err == nil {
			if msgs, err = readStream("nats://"+addr, s.run, s.natsOpts...); err == nil {
				return msgs
			}
		}
		time.Sleep(time.Second)
	}
	s.t.Fatalf("reading the stream: %v", err)
	return nil
}

func readStream(url, run string, opts ...nats.Option) ([]Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	sc := consumer.StreamConfig{Run: run}
	sc.Defaults()
	st, err := consumer.OpenStream(ctx, js, sc)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	last := info.State.LastSeq
	prefix := sc.Subject + "." + run + "."
	oc, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + ">"}})
	if err != nil {
		return nil, err
	}
	var msgs []Message
	for ctx.Err() == nil {
		batch, err := oc.Fetch(200, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n, done := 0, false
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return nil, err
			}
			m, err := parseMessage(msg, meta.Sequence.Stream, prefix)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, m)
			if meta.NumPending == 0 || meta.Sequence.Stream >= last {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
		if done || n == 0 {
			return msgs, nil
		}
	}
	return nil, ctx.Err()
}

// parseMessage reads a message's producer, batch and pairs from its
// headers and checks them against its rows.
func parseMessage(msg jetstream.Msg, seq uint64, prefix string) (Message, error) {
	m := Message{Seq: seq, Producer: strings.TrimPrefix(msg.Subject(), prefix)}
	h := msg.Headers()
	var err1, err2, err3 error
	m.Batch, err1 = strconv.ParseUint(h.Get(producer.HeaderBatchSeq), 10, 64)
	pairs, err2 := strconv.Atoi(h.Get(producer.HeaderPairs))
	m.Pairs = pairs
	m.Weights, err3 = strconv.ParseUint(h.Get(producer.HeaderWeights), 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return m, fmt.Errorf("message %d (%s): headers: %w", seq, msg.Subject(), err)
	}
	b, err := schema.Decode(msg.Data(), schema.DecodeOptions{MaxMessageBytes: len(msg.Data())})
	if err != nil {
		return m, fmt.Errorf("message %d (%s): %w", seq, msg.Subject(), err)
	}
	if len(b.Pairs) != m.Pairs {
		return m, fmt.Errorf("message %d: header says %d pairs, it holds %d", seq, m.Pairs, len(b.Pairs))
	}
	for _, p := range b.Pairs {
		if p.ProducerID != m.Producer || p.BatchSeq != m.Batch || p.WeightsVersion != m.Weights {
			return m, fmt.Errorf("message %d: row %s (weights %d) does not match its subject and headers (%s, batch %d, weights %d)",
				seq, p.SampleID, p.WeightsVersion, m.Producer, m.Batch, m.Weights)
		}
	}
	return m, nil
}

// checkpoint copies the trainer's checkpoint out of its container (which
// may be stopped) and reads it. A running trainer replaces the file (a new
// file renamed over it) while docker cp may be reading it: docker cp takes
// the size from one file and the bytes from the other, and the copy is torn.
// So a copy that does not read is copied again, up to five times; the
// trainer's file itself is never torn (the rename), and a stopped trainer's
// bad checkpoint fails all five.
func (s *stack) checkpoint(trainerID string) (Checkpoint, error) {
	src := trainerID + ":/var/lib/pdmflow/out/" + s.run + "/checkpoint.safetensors"
	var err error
	for try := 0; try < 5; try++ {
		if try > 0 {
			s.t.Logf("    checkpoint copy %d did not read (%v): copying again", try, err)
			time.Sleep(time.Duration(try) * 300 * time.Millisecond)
		}
		dir := s.t.TempDir()
		if _, err = s.exec(time.Minute, "docker", "cp", src, dir); err != nil {
			return Checkpoint{}, err
		}
		var c Checkpoint
		if c, err = ReadCheckpoint(filepath.Join(dir, "checkpoint.safetensors")); err == nil {
			return c, nil
		}
	}
	return Checkpoint{}, err
}

// countBy counts the stream's batches per producer.
func countBy(msgs []Message) map[string]int {
	c := map[string]int{}
	for _, m := range msgs {
		c[m.Producer]++
	}
	return c
}

// replication is how a stream is placed on a JetStream cluster.
type replication struct {
	Replicas int      // configured
	Leader   string   // server name
	Current  []string // servers holding a current copy, the leader included
}

// replicationOf reads where the pair stream and the weights KV bucket live,
// through the published NATS port of container natsID.
func (s *stack) replicationOf(natsID string, streams ...string) (map[string]replication, error) {
	addr, err := s.hostPort(natsID, "4222")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect("nats://"+addr, s.natsOpts...)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	out := map[string]replication{}
	for _, name := range streams {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		r := replication{Replicas: info.Config.Replicas}
		if c := info.Cluster; c != nil {
			r.Leader = c.Leader
			if c.Leader != "" {
				r.Current = append(r.Current, c.Leader)
			}
			for _, p := range c.Replicas {
				if p.Current && !p.Offline {
					r.Current = append(r.Current, p.Name)
				}
			}
			sort.Strings(r.Current)
		}
		out[name] = r
	}
	return out, nil
}
