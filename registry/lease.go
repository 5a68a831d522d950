package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaseBucket is the KV bucket of producer leases: one key per run and
// producer id, held by the process using that id.
const LeaseBucket = "pdmflow_producers"

// DefaultLeaseTTL is how long a lease outlives its holder's last renewal.
const DefaultLeaseTTL = 15 * time.Second

// ErrLeaseHeld is returned by AcquireLease when another live process uses
// the producer id; the error names it.
var ErrLeaseHeld = errors.New("registry: producer id in use")

// Holder says which process holds a lease.
type Holder struct {
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Instance string    `json:"instance"` // random per process
	Since    time.Time `json:"since"`
}

// Lease is a producer id held within a run: two producers with one id
// would publish the same sample ids, and a restarted producer continues
// its predecessor's batch sequence only if no other process still uses
// the id. The holder renews it every TTL/3; a holder that dies loses it
// TTL after its last renewal. A holder that cannot reach the broker keeps
// trying, and takes its lease again if it expired meanwhile and nobody
// else took it; if somebody did, Lost closes.
type Lease struct {
	kv     jetstream.KeyValue
	key    string
	data   []byte
	ttl    time.Duration
	log    *slog.Logger
	mu     sync.Mutex
	rev    uint64
	lost   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// AcquireLease takes producer id of run for h. A lease of the same host
// held by a process that no longer runs (or by h's own PID: a restarted
// container) is taken over at once. A lease another process holds is
// waited for until it expires, at most wait; ErrLeaseHeld names the holder
// if it does not. ttl <= 0 is DefaultLeaseTTL.
func AcquireLease(ctx context.Context, js jetstream.JetStream, run, id string, h Holder, ttl, wait time.Duration, log *slog.Logger) (*Lease, error) {
	if err := ValidRunID(run); err != nil {
		return nil, err
	}
	if err := ValidRunID(id); err != nil {
		return nil, fmt.Errorf("registry: producer id: %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kv, err := js.KeyValue(ctx, LeaseBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = EnsureLeaseBucket(ctx, js, ttl, 1)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: lease bucket %s (the trainer creates it; a producer without the right to create it must start after the trainer): %w", LeaseBucket, err)
	}
	if s, err := kv.Status(ctx); err == nil && s.TTL() > 0 {
		ttl = s.TTL()
	}
	if h.Since.IsZero() {
		h.Since = time.Now().UTC()
	}
	data, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	l := &Lease{kv: kv, key: run + "." + id, data: data, ttl: ttl, log: log,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	deadline := time.Now().Add(wait)
	for warned := false; ; {
		rev, err := kv.Create(ctx, l.key, data)
		if err == nil {
			l.rev = rev
			break
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("registry: lease %s: %w", l.key, err)
		}
		e, err := kv.Get(ctx, l.key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired in between
		}
		if err != nil {
			return nil, fmt.Errorf("registry: lease %s: %w", l.key, err)
		}
		var old Holder
		_ = json.Unmarshal(e.Value(), &old)
		if stale(old, h) {
			if rev, err := kv.Update(ctx, l.key, data, e.Revision()); err == nil {
				log.Info("producer id taken over from a process that is gone", "run", run, "id", id, "host", old.Host, "pid", old.PID)
				l.rev = rev
				break
			}
			continue // someone else changed it: look again
		}
		age := time.Since(e.Created())
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: run %s producer %s is held by pid %d on %s since %s (renewed %s ago); give this producer another --id, or stop that one",
				ErrLeaseHeld, run, id, old.PID, old.Host, old.Since.Format(time.RFC3339), age.Round(time.Second))
		}
		if !warned {
			log.Warn("producer id in use: waiting for its lease to expire", "run", run, "id", id, "holder_host", old.Host, "holder_pid", old.PID, "ttl", ttl)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(ttl/4, time.Until(deadline)+time.Millisecond)):
		}
	}
	go l.renew()
	return l, nil
}

// EnsureLeaseBucket creates the lease bucket with ttl (<= 0:
// DefaultLeaseTTL) on replicas servers unless it exists with at least as
// many: the trainer of a streamed run calls it with its weights bucket's
// replicas (a producer must keep its lease while a node is down), so that
// producers need only the rights to their own keys.
func EnsureLeaseBucket(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	replicas = max(replicas, 1)
	if kv, err := js.KeyValue(ctx, LeaseBucket); err == nil {
		have := 0
		if s, err := kv.Status(ctx); err == nil {
			if bs, ok := s.(*jetstream.KeyValueBucketStatus); ok {
				have = bs.StreamInfo().Config.Replicas
				if ttl <= 0 {
					ttl = bs.TTL()
				}
			}
		}
		if have >= replicas {
			return kv, nil
		}
	}
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: LeaseBucket, TTL: ttl, History: 1, Storage: jetstream.FileStorage, Replicas: replicas,
		Description: "pdmflow: which process holds each producer id of each run",
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, LeaseBucket) // made meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("registry: creating lease bucket %s: %w", LeaseBucket, err)
	}
	return kv, nil
}

// stale reports whether the lease of old can be taken by h without
// waiting: the same host, and old's process is h's own PID (a restarted
// container reuses it) or no longer runs.
func stale(old, h Holder) bool {
	switch {
	case old.Instance != "" && old.Instance == h.Instance:
		return true // ours: an acquire retried
	case old.Host == "" || old.Host != h.Host:
		return false // another host: only expiry tells
	case old.PID == h.PID:
		return true // this PID on this host is us: a restarted container
	case old.PID <= 0:
		return false
	}
	p, err := os.FindProcess(old.PID)
	if err != nil {
		return true
	}
	return errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// renew keeps the lease until Release, or until another process holds
// it. While the broker cannot be reached it keeps trying; if the lease
// expired meanwhile and nobody took it, it takes it again.
func (l *Lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		lost, err := l.renewOnce(ctx)
		cancel()
		switch {
		case lost:
			l.log.Error("producer lease lost: another process holds this producer id", "key", l.key)
			close(l.lost)
			return
		case err != nil:
			failures++
			if failures == 1 || failures%10 == 0 {
				l.log.Warn("producer lease not renewed; retrying", "key", l.key, "err", err, "failures", failures)
			}
		default:
			if failures > 0 {
				l.log.Info("producer lease renewed again", "key", l.key, "after_failures", failures)
			}
			failures = 0
		}
	}
}

// renewOnce renews the lease, or takes it again if it expired; it reports
// lost when another process holds it.
func (l *Lease) renewOnce(ctx context.Context) (lost bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rev, err := l.kv.Update(ctx, l.key, l.data, l.rev)
	if err == nil {
		l.rev = rev
		return false, nil
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || (apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence && apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return false, err // the broker, not the key
	}
	// The key moved: expired, deleted, or taken.
	e, err := l.kv.Get(ctx, l.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		rev, err := l.kv.Create(ctx, l.key, l.data)
		if err != nil {
			return false, err // another may have been faster: the next round tells
		}
		l.rev = rev
		l.log.Warn("producer lease had expired (the broker was out of reach for its TTL); taken again", "key", l.key)
		return false, nil
	case err != nil:
		return false, err
	}
	var h Holder
	_ = json.Unmarshal(e.Value(), &h)
	var mine Holder
	_ = json.Unmarshal(l.data, &mine)
	if h.Instance != "" && h.Instance == mine.Instance {
		l.rev = e.Revision()
		return false, nil
	}
	return true, nil
}

// Lost is closed when another process holds the lease (it took the id
// after this one's lease expired, or took it over as stale): the holder
// must stop publishing.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Release gives the lease up at once (a clean shutdown), so that a
// successor needs not wait for it to expire.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	select {
	case <-l.lost:
		return nil // not ours any more
	default:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev)); err != nil {
		return fmt.Errorf("registry: releasing lease %s: %w", l.key, err)
	}
	return nil
}

// ThisProcess is the Holder of the running process.
func ThisProcess(instance string) Holder {
	host, _ := os.Hostname()
	return Holder{Host: host, PID: os.Getpid(), Instance: instance, Since: time.Now().UTC()}
}
