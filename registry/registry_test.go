package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/store"
)

func open(t *testing.T) *Registry {
	t.Helper()
	_, js := testutil.JetStream(t)
	st, err := store.Open(context.Background(), "file://"+t.TempDir(), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := Open(context.Background(), js, st, "run-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPublishConcurrent: publishers racing on the pointer each get their
// own version (compare-and-set), versions run 1..n without gaps, and every
// pointer's object is in the store under its hash.
func TestPublishConcurrent(t *testing.T) {
	r := open(t)
	ctx := context.Background()
	if _, _, err := r.Latest(ctx); !errors.Is(err, ErrNoWeights) {
		t.Fatalf("Latest before any publish: %v, want ErrNoWeights", err)
	}
	const n = 6
	var mu sync.Mutex
	var versions []int
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := r.Publish(ctx, []byte(fmt.Sprintf("weights %d", i)), i)
			if err != nil {
				t.Error(err)
				return
			}
			got, err := r.Fetch(ctx, p)
			if err != nil || string(got) != fmt.Sprintf("weights %d", i) {
				t.Errorf("fetch of version %d: %q, %v", p.Version, got, err)
			}
			mu.Lock()
			versions = append(versions, int(p.Version))
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Ints(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions %v, want 1..%d", versions, n)
		}
	}
	p, _, err := r.Latest(ctx)
	if err != nil || p.Version != n {
		t.Fatalf("latest %+v, %v", p, err)
	}
}

// TestFollow receives pointers newer than the start, in order, and skips
// the ones at or below it.
func TestFollow(t *testing.T) {
	r := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := r.Publish(ctx, []byte("v1"), 0); err != nil {
		t.Fatal(err)
	}
	ch := make(chan Pointer, 8)
	go r.Follow(ctx, 1, 50*time.Millisecond, ch)
	for _, w := range []string{"v2", "v3"} {
		if _, err := r.Publish(ctx, []byte(w), 1); err != nil {
			t.Fatal(err)
		}
	}
	var last uint64 = 1
	for last < 3 {
		select {
		case p := <-ch:
			if p.Version <= last {
				t.Fatalf("got version %d after %d", p.Version, last)
			}
			last = p.Version
		case <-time.After(5 * time.Second):
			t.Fatalf("no pointer after version %d", last)
		}
	}
	if err := ValidRunID("bad id!"); err == nil {
		t.Error("run id with a space and ! accepted")
	}
}
