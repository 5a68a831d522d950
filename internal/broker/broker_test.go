package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/internal/syncbuf"
)

func testLogger(w *syncbuf.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func start(t *testing.T, o Options) *Broker {
	t.Helper()
	if o.Port == 0 {
		o.Port = -1
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(b.Shutdown)
	return b
}

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestPersistLargeMessage: a 6 MiB message goes through (max payload), is
// stored in a file-backed stream, and survives a restart on the same Dir.
func TestPersistLargeMessage(t *testing.T) {
	dir := t.TempDir()
	var logs syncbuf.Buffer
	b := start(t, Options{Dir: dir, MonitorPort: -1, ServerName: "pdmflow-test", Log: testLogger(&logs)})
	if !strings.HasPrefix(b.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("ClientURL %q", b.ClientURL())
	}

	// Monitoring answers.
	resp, err := http.Get(b.MonitorURL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	nc := connect(t, b.ClientURL())
	if got := nc.MaxPayload(); got != DefaultMaxPayload {
		t.Fatalf("max payload %d, want %d", got, DefaultMaxPayload)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PAIRS", Subjects: []string{"pairs.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 6<<20)
	rand.Read(msg)
	ack, err := js.Publish(ctx, "pairs.batch", msg)
	if err != nil {
		t.Fatalf("publish 6 MiB: %v", err)
	}
	got, err := st.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, msg) {
		t.Fatal("message read back differs")
	}
	nc.Close()
	b.Shutdown()
	b.Shutdown() // idempotent

	// Restart on the same store.
	b2 := start(t, Options{Dir: dir})
	nc2 := connect(t, b2.ClientURL())
	js2, err := jetstream.New(nc2)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := js2.Stream(ctx, "PAIRS")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	got, err = st2.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatalf("message after restart: %v", err)
	}
	if !bytes.Equal(got.Data, msg) {
		t.Fatal("message after restart differs")
	}
	if b2.MonitorURL() != "" {
		t.Fatalf("monitoring off, but MonitorURL %q", b2.MonitorURL())
	}
	if !strings.Contains(logs.String(), "component=nats-server") {
		t.Fatalf("server logs not forwarded:\n%s", logs.String())
	}
}

func TestAuthNoSecretsInLogs(t *testing.T) {
	const pass, token = "s3cret-Pa55word", "t0ken-S3cret"
	var logs syncbuf.Buffer
	b := start(t, Options{Dir: t.TempDir(), User: "trainer", Password: pass, Log: testLogger(&logs)})
	if _, err := nats.Connect(b.ClientURL(), nats.UserInfo("trainer", "wrong")); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("wrong password: %v", err)
	}
	connect(t, b.ClientURL(), nats.UserInfo("trainer", pass)).Close()
	b.Shutdown()

	bt := start(t, Options{Dir: t.TempDir(), Token: token, Log: testLogger(&logs)})
	if _, err := nats.Connect(bt.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("no token: %v", err)
	}
	connect(t, bt.ClientURL(), nats.Token(token)).Close()
	bt.Shutdown()

	if l := logs.String(); strings.Contains(l, pass) || strings.Contains(l, token) {
		t.Fatalf("a secret reached the logs:\n%s", l)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := t.Context()
	for name, o := range map[string]Options{
		"no dir":         {},
		"two auths":      {Dir: t.TempDir(), User: "u", Password: "p", Token: "t"},
		"user no pass":   {Dir: t.TempDir(), User: "u"},
		"seed as nkey":   {Dir: t.TempDir(), NKeys: []string{"SUAB"}},
		"cert no key":    {Dir: t.TempDir(), CertFile: "x.pem"},
		"routes no port": {Dir: t.TempDir(), Routes: []string{"nats-route://127.0.0.1:6222"}},
		"bad route":      {Dir: t.TempDir(), ClusterPort: -1, Routes: []string{"http://u:hunter2@h:1"}},
		"bad port":       {Dir: t.TempDir(), Port: 70000},
	} {
		b, err := Start(ctx, o)
		if err == nil {
			b.Shutdown()
			t.Errorf("%s: no error", name)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error shows the password: %v", name, err)
		}
	}

	// A port in use fails fast, not after the start timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	t0 := time.Now()
	if b, err := Start(ctx, Options{Dir: t.TempDir(), Port: port}); err == nil {
		b.Shutdown()
		t.Fatal("port in use: no error")
	} else if !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("port in use: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("port in use took %s", d)
	}

	// A cancelled context stops the wait.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if b, err := Start(cctx, Options{Dir: t.TempDir(), Port: -1}); !errors.Is(err, context.Canceled) {
		if b != nil {
			b.Shutdown()
		}
		t.Fatalf("cancelled: %v", err)
	}
}

// TestCluster: three embedded servers joined by routes form a JetStream
// cluster that serves a replicated stream.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: forming a 3-node cluster takes a few seconds")
	}
	// JetStream clustering wants every node to know its routes at start, so
	// the route ports are picked up front. Each node lists all three, its
	// own included (a server ignores a route to itself).
	var routes []string
	ports := make([]int, 3)
	for i := range ports {
		ports[i] = freePort(t)
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	var nodes []*Broker
	for i, p := range ports {
		nodes = append(nodes, start(t, Options{Dir: t.TempDir(), ServerName: "n" + strconv.Itoa(i+1), ClusterName: "pdm", ClusterPort: p, Routes: routes}))
	}
	if got, want := nodes[0].ClusterURL(), routes[0]; got != want {
		t.Fatalf("ClusterURL %q, want %q", got, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, b := range nodes {
		for b.Server().NumRoutes() < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("%s has %d routes", b.Server().Name(), b.Server().NumRoutes())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	js, err := jetstream.New(connect(t, nodes[2].ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	var st jetstream.Stream
	for {
		// The JetStream API of a new cluster stays silent (requests time out,
		// no error) for a few seconds after the meta leader is elected.
		actx, acancel := context.WithTimeout(ctx, time.Second)
		st, err = js.CreateStream(actx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3"}, Replicas: 3})
		acancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	if _, err := js.Publish(ctx, "r3", []byte("pair")); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("cluster info %+v", info.Cluster)
	}
	// Read through another node.
	js1, err := jetstream.New(connect(t, nodes[0].ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	st1, err := js1.Stream(ctx, "R3")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st1.GetMsg(ctx, 1)
	if err != nil || string(m.Data) != "pair" {
		t.Fatalf("GetMsg via n1: %v %v", m, err)
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
