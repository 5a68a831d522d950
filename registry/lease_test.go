package registry_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/registry"
)

func connect(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// gonePID returns the PID of a process that has exited.
func gonePID(t *testing.T) int {
	t.Helper()
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Skipf("cannot start a process to get a dead PID: %v", err)
	}
	return c.Process.Pid
}

// TestLease: one process per producer id; a clean release frees it at
// once; a holder on another host that stops renewing frees it after the
// TTL; on the same host a holder that is gone (or this very PID: a
// restarted container) is taken over at once, and the old holder learns
// that it lost the lease.
func TestLease(t *testing.T) {
	ctx := context.Background()
	b, js := testutil.JetStream(t)
	const ttl = time.Second
	a := registry.Holder{Host: "host-a", PID: 100, Instance: "a1"}
	other := registry.Holder{Host: "host-b", PID: 200, Instance: "b1"}

	la, err := registry.AcquireLease(ctx, js, "r1", "p0", a, ttl, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Held: refused at once without waiting, naming the holder.
	_, err = registry.AcquireLease(ctx, js, "r1", "p0", other, ttl, 0, nil)
	if !errors.Is(err, registry.ErrLeaseHeld) || !strings.Contains(err.Error(), "pid 100 on host-a") {
		t.Fatalf("second holder: %v, want ErrLeaseHeld naming pid 100 on host-a", err)
	}
	// Held past several TTLs while renewed.
	t0 := time.Now()
	_, err = registry.AcquireLease(ctx, js, "r1", "p0", other, ttl, 2500*time.Millisecond, nil)
	if !errors.Is(err, registry.ErrLeaseHeld) || time.Since(t0) < 2*time.Second {
		t.Fatalf("a renewed lease: %v after %s, want ErrLeaseHeld after the wait", err, time.Since(t0))
	}
	// Other ids and runs are free.
	for _, k := range [][2]string{{"r1", "p1"}, {"r2", "p0"}} {
		l, err := registry.AcquireLease(ctx, js, k[0], k[1], other, ttl, 0, nil)
		if err != nil {
			t.Fatalf("%v: %v", k, err)
		}
		l.Release(ctx)
	}
	// A clean release: the next holder gets it at once.
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lb, err := registry.AcquireLease(ctx, js, "r1", "p0", other, ttl, 0, nil)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}

	// The holder's connection goes away: the lease expires after the TTL.
	nc2, js2 := connect(t, b.ClientURL())
	lc, err := registry.AcquireLease(ctx, js2, "r1", "p9", other, ttl, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc2.Close()
	t0 = time.Now()
	ld, err := registry.AcquireLease(ctx, js, "r1", "p9", a, ttl, 5*time.Second, nil)
	if err != nil {
		t.Fatalf("after the holder vanished: %v", err)
	}
	if w := time.Since(t0); w < ttl/2 {
		t.Errorf("took a lease of another host after %s, before it could expire", w)
	}
	_ = lc // gone with its connection: it cannot learn anything more
	ld.Release(ctx)

	// A lease that expired while its holder could not renew it (here:
	// removed from under it) is taken again by the holder, not lost.
	lr, err := registry.AcquireLease(ctx, js, "r1", "p5", a, ttl, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, registry.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "r1.p5"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl)
	select {
	case <-lr.Lost():
		t.Error("a holder whose expired lease nobody took was told it lost it")
	default:
	}
	if _, err := registry.AcquireLease(ctx, js, "r1", "p5", other, ttl, 0, nil); !errors.Is(err, registry.ErrLeaseHeld) {
		t.Errorf("the lease taken again is not held: %v", err)
	}
	lr.Release(ctx)

	// Same host: a holder whose process is gone is taken over at once.
	le, err := registry.AcquireLease(ctx, js, "r1", "p7", registry.Holder{Host: "host-c", PID: gonePID(t), Instance: "c1"}, ttl, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := registry.AcquireLease(ctx, js, "r1", "p7", registry.Holder{Host: "host-c", PID: 300, Instance: "c2"}, ttl, 0, nil)
	if err != nil {
		t.Fatalf("a dead holder on this host: %v", err)
	}
	select {
	case <-le.Lost():
	case <-time.After(2 * ttl):
		t.Error("the replaced holder was not told it lost its lease")
	}
	// ... and so is this very PID (a restarted container).
	lg, err := registry.AcquireLease(ctx, js, "r1", "p7", registry.Holder{Host: "host-c", PID: 300, Instance: "c3"}, ttl, 0, nil)
	if err != nil {
		t.Fatalf("a restarted container: %v", err)
	}
	lg.Release(ctx)
	lf.Release(ctx)
	lb.Release(ctx)
	le.Release(ctx)

	if _, err := registry.AcquireLease(ctx, js, "r1", "a.b", a, ttl, 0, nil); err == nil {
		t.Error("a producer id with a dot was accepted")
	}
}
