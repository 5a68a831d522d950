// Package registry publishes PDM weights and tells producers which weights
// are current. The weights themselves are immutable objects in a blob store
// (package store) under a key that holds their sha256; the "latest"
// pointer of a run (version, sha256, key, step, time) lives in a NATS
// JetStream key-value bucket and only moves forward, by compare-and-set.
//
// A publisher writes the object first and moves the pointer second, so a
// pointer never names an object that is not there. A reader verifies the
// object's hash before using it. KV watchers can die silently on reconnect
// (nats.go issues 1777 and 1094), so Follow both watches and polls.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

// Bucket is the KV bucket holding every run's pointer.
const Bucket = "pdmflow_weights"

// ErrNoWeights is returned by Latest when the run has published nothing.
var ErrNoWeights = errors.New("registry: no weights published yet")

// ValidRunID reports whether id can name a run (or a producer): 1-64
// characters of [A-Za-z0-9_-] (schema.ValidID), so that it is safe in NATS
// subjects, KV keys, object keys and file names.
func ValidRunID(id string) error {
	if !schema.ValidID(id) {
		return fmt.Errorf("registry: run id %q: use 1-64 characters of A-Z a-z 0-9 _ -", id)
	}
	return nil
}

// Pointer names the current weights of a run.
type Pointer struct {
	Run     string    `json:"run"`
	Version uint64    `json:"version"` // 1, 2, ...: one more at every publish
	SHA256  string    `json:"sha256"`  // hex sha256 of the object
	Key     string    `json:"key"`     // object key in the store
	Step    int       `json:"step"`    // trainer step the weights are from
	Time    time.Time `json:"time"`    // when they were published
}

// Registry is one run's view of the pointer and the objects.
type Registry struct {
	kv    jetstream.KeyValue
	store *store.Bucket
	run   string
	log   *slog.Logger
	// replicas of the bucket, as found or made
	replicas int
}

// Open binds (creating it if needed) the KV bucket for run's pointer. The
// bucket keeps a short history so that operators can see recent versions.
func Open(ctx context.Context, js jetstream.JetStream, st *store.Bucket, run string, log *slog.Logger) (*Registry, error) {
	return OpenReplicas(ctx, js, st, run, log, 1)
}

// OpenReplicas is Open with the bucket kept on replicas servers of a
// JetStream cluster (3 on a 3-node cluster, so that the pointer survives a
// node going down). An existing bucket keeps its replicas if it has more:
// a client started without the option does not scale it down.
func OpenReplicas(ctx context.Context, js jetstream.JetStream, st *store.Bucket, run string, log *slog.Logger, replicas int) (*Registry, error) {
	if err := ValidRunID(run); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	replicas = max(replicas, 1)
	if kv, err := js.KeyValue(ctx, Bucket); err == nil {
		// An existing bucket is used as it is unless it needs more
		// replicas: a producer allowed only to read it (docs/operations.md,
		// per-producer permissions) never updates its configuration.
		have := 0
		if s, err := kv.Status(ctx); err == nil {
			if bs, ok := s.(*jetstream.KeyValueBucketStatus); ok {
				have = bs.StreamInfo().Config.Replicas
			}
		}
		if have >= replicas {
			return &Registry{kv: kv, store: st, run: run, log: log, replicas: have}, nil
		}
		replicas = max(replicas, have)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "pdmflow: the latest published PDM weights of each run",
		History:     8,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("registry: KV bucket %s: %w", Bucket, err)
	}
	return &Registry{kv: kv, store: st, run: run, log: log, replicas: replicas}, nil
}

// Replicas is the number of servers the bucket is kept on (0: unknown).
// The buckets a run's trainer makes beside it (the producers' leases) get
// as many.
func (r *Registry) Replicas() int { return r.replicas }

// Key is the KV key of the run's pointer.
func (r *Registry) Key() string { return r.run + ".latest" }

// Store is the blob store the objects live in.
func (r *Registry) Store() *store.Bucket { return r.store }

// Latest returns the run's pointer and its KV revision, or ErrNoWeights.
func (r *Registry) Latest(ctx context.Context) (Pointer, uint64, error) {
	e, err := r.kv.Get(ctx, r.Key())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Pointer{}, 0, ErrNoWeights
	}
	if err != nil {
		return Pointer{}, 0, fmt.Errorf("registry: reading %s: %w", r.Key(), err)
	}
	p, err := decodePointer(e.Value())
	if err != nil {
		return Pointer{}, 0, fmt.Errorf("registry: %s (revision %d): %w", r.Key(), e.Revision(), err)
	}
	return p, e.Revision(), nil
}

// History returns the run's pointers the bucket still holds (its last
// eight), newest first, the latest included. Unreadable entries are
// skipped.
func (r *Registry) History(ctx context.Context) ([]Pointer, error) {
	es, err := r.kv.History(ctx, r.Key())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNoWeights
	}
	if err != nil {
		return nil, fmt.Errorf("registry: history of %s: %w", r.Key(), err)
	}
	var ps []Pointer
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Operation() != jetstream.KeyValuePut {
			continue
		}
		if p, err := decodePointer(es[i].Value()); err == nil {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

func decodePointer(b []byte) (Pointer, error) {
	var p Pointer
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("bad pointer: %w", err)
	}
	if p.Version == 0 || len(p.SHA256) != 64 || p.Key == "" {
		return p, fmt.Errorf("bad pointer %s", b)
	}
	return p, nil
}

// Publish stores data (a PDM weights file) as an immutable object and then
// moves the pointer to it with a compare-and-set update: version is one more
// than the pointer's current version. A concurrent publisher makes the
// update fail and Publish retries against the new pointer. An error leaves
// the pointer where it was.
func (r *Registry) Publish(ctx context.Context, data []byte, step int) (Pointer, error) {
	key, sum, err := store.PutWeights(ctx, r.store, data)
	if err != nil {
		return Pointer{}, fmt.Errorf("registry: storing weights: %w", err)
	}
	for attempt := 0; ; attempt++ {
		cur, rev, err := r.Latest(ctx)
		if err != nil && !errors.Is(err, ErrNoWeights) {
			return Pointer{}, err
		}
		p := Pointer{Run: r.run, Version: cur.Version + 1, SHA256: sum, Key: key, Step: step, Time: time.Now().UTC()}
		b, _ := json.Marshal(p)
		if rev == 0 {
			_, err = r.kv.Create(ctx, r.Key(), b)
		} else {
			_, err = r.kv.Update(ctx, r.Key(), b, rev)
		}
		if err == nil {
			return p, nil
		}
		if attempt >= 5 || !(errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)) {
			return Pointer{}, fmt.Errorf("registry: moving %s to version %d: %w", r.Key(), p.Version, err)
		}
		r.log.Warn("weights pointer moved concurrently, retrying", "key", r.Key(), "attempt", attempt+1)
	}
}

// Fetch downloads the object a pointer names and verifies its hash.
func (r *Registry) Fetch(ctx context.Context, p Pointer) ([]byte, error) {
	b, err := store.GetVerified(ctx, r.store, p.Key, p.SHA256)
	if err != nil {
		return nil, fmt.Errorf("registry: weights version %d: %w", p.Version, err)
	}
	return b, nil
}

// Follow sends every pointer newer than after to ch, in increasing version
// order (older ones are skipped), until ctx ends. It watches the key and
// also polls it every poll interval, because a watcher can stop delivering
// after a reconnect without an error. It closes nothing: ch belongs to the
// caller.
func (r *Registry) Follow(ctx context.Context, after uint64, poll time.Duration, ch chan<- Pointer) {
	if poll <= 0 {
		poll = 5 * time.Second
	}
	last := after
	send := func(p Pointer) {
		if p.Version <= last {
			return
		}
		select {
		case ch <- p:
			last = p.Version
		case <-ctx.Done():
		}
	}
	var updates <-chan jetstream.KeyValueEntry
	var w jetstream.KeyWatcher
	startWatch := func() {
		if w != nil {
			_ = w.Stop()
		}
		var err error
		w, err = r.kv.Watch(ctx, r.Key(), jetstream.UpdatesOnly())
		if err != nil {
			r.log.Debug("weights watch failed, polling only", "err", err)
			w, updates = nil, nil
			return
		}
		updates = w.Updates()
	}
	startWatch()
	defer func() {
		if w != nil {
			_ = w.Stop()
		}
	}()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	// Look once at the start: the pointer may already be ahead.
	if p, _, err := r.Latest(ctx); err == nil {
		send(p)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-updates:
			if !ok {
				startWatch()
				continue
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if p, err := decodePointer(e.Value()); err == nil {
				send(p)
			}
		case <-tick.C:
			p, _, err := r.Latest(ctx)
			if err == nil {
				send(p)
			} else if !errors.Is(err, ErrNoWeights) && ctx.Err() == nil {
				r.log.Debug("weights poll failed", "err", err)
			}
			if w == nil {
				startWatch()
			}
		}
	}
}
