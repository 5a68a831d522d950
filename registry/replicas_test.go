package registry

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/internal/broker"
	"github.com/pdmflow/pdmflow/store"
)

// TestOpenReplicas: on a 3-node JetStream cluster, OpenReplicas(3) keeps
// the weights bucket on all three nodes, and a client that opens it with
// Open (one replica) does not scale it down.
func TestOpenReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: forming a 3-node cluster takes a few seconds")
	}
	var routes []string
	ports := make([]int, 3)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	var nodes []*broker.Broker
	for i, p := range ports {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		b, err := broker.Start(ctx, broker.Options{Dir: t.TempDir(), Port: -1, ServerName: "n" + strconv.Itoa(i+1),
			ClusterName: "pdm", ClusterPort: p, Routes: routes})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Shutdown)
		nodes = append(nodes, b)
	}
	nc, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), "file://"+t.TempDir(), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var r *Registry
	for {
		// A new cluster's JetStream API answers only once it has a meta leader.
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		r, err = OpenReplicas(actx, js, st, "run-1", nil, 3)
		acancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("OpenReplicas(3): %v", err)
	}
	if _, err := r.Publish(ctx, []byte("weights"), 1); err != nil {
		t.Fatal(err)
	}
	replicas := func() int {
		s, err := js.Stream(ctx, "KV_"+Bucket)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.Config.Replicas
	}
	if n := replicas(); n != 3 {
		t.Fatalf("bucket has %d replicas, want 3", n)
	}
	r1, err := Open(ctx, js, st, "run-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := replicas(); n != 3 {
		t.Fatalf("after Open with one replica the bucket has %d, want 3", n)
	}
	if p, _, err := r1.Latest(ctx); err != nil || p.Version != 1 {
		t.Fatalf("Latest after reopening: %+v, %v", p, err)
	}
}
