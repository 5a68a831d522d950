package consumer

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// listSource delivers a fixed list of messages in order, a random number
// at a time after a random pause, as a live stream would.
type listSource struct {
	msgs []Message
	next int
	r    *rand.Rand
	fail error // returned (as Permanent) instead of message failAt
	at   int
}

func (s *listSource) Fetch(ctx context.Context, max int, handle func(Message)) error {
	n := max
	if s.r != nil {
		n = 1 + s.r.IntN(max)
	}
	for i := 0; i < n && s.next < len(s.msgs); i++ {
		if s.r != nil {
			time.Sleep(time.Duration(s.r.IntN(100)) * time.Microsecond)
		}
		if s.fail != nil && s.next == s.at {
			return Permanent(s.fail)
		}
		handle(s.msgs[s.next])
		s.next++
	}
	if s.next == len(s.msgs) {
		return io.EOF
	}
	return nil
}

// recorded builds a stream of 40 batches of 3 pairs from two producers,
// with a duplicate and a corrupt message in it.
func recorded(t *testing.T) []Message {
	var msgs []Message
	seq := uint64(0)
	add := func(producer string, data []byte) {
		seq++
		msgs = append(msgs, Message{Seq: seq, Subject: "pdmflow.pairs.r." + producer, Data: data})
	}
	for i := uint64(0); i < 20; i++ {
		add("p0", encode(t, testBatch("p0", i, 3)))
		add("p1", encode(t, testBatch("p1", i, 3)))
		if i == 7 {
			add("p0", encode(t, testBatch("p0", 3, 3))) // a duplicate
			add("p0", []byte("not arrow"))              // refused
		}
	}
	return msgs
}

// drawAll takes batches of 5 until the source is exhausted and returns the
// sample ids in the order drawn.
func drawAll(t *testing.T, src Source, seed uint64) ([]string, error) {
	t.Helper()
	c, err := NewFromSource(src, Config{PoolPairs: 16, Deterministic: true}, State{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go c.Run(ctx)
	var ids []string
	for step := uint64(0); ; step++ {
		es, _, err := c.Take(ctx, 5, rand.New(rand.NewPCG(seed, step)))
		if err != nil {
			return ids, err
		}
		for _, e := range es {
			ids = append(ids, e.Pair.SampleID)
		}
	}
}

// TestDeterministicTake: with Config.Deterministic the pairs drawn depend
// only on the order of the messages and the random source, not on how they
// arrive; at the end Take reports ErrExhausted.
func TestDeterministicTake(t *testing.T) {
	msgs := recorded(t)
	want, err := drawAll(t, &listSource{msgs: msgs}, 7)
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("end of the source: %v, want ErrExhausted", err)
	}
	// 40 distinct batches of 3 = 120 pairs; 24 draws of 5.
	if len(want) != 120 {
		t.Fatalf("drew %d pairs, want 120", len(want))
	}
	seen := map[string]bool{}
	for _, id := range want {
		if seen[id] {
			t.Fatalf("%s drawn twice", id)
		}
		seen[id] = true
	}
	for trial := uint64(0); trial < 5; trial++ {
		got, err := drawAll(t, &listSource{msgs: msgs, r: rand.New(rand.NewPCG(trial, 99))}, 7)
		if !errors.Is(err, ErrExhausted) {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: the draws depend on arrival timing:\n got %v\nwant %v", trial, got[:10], want[:10])
		}
	}
	other, _ := drawAll(t, &listSource{msgs: msgs}, 8)
	if slices.Equal(other, want) {
		t.Fatal("another seed drew the same sequence")
	}
}

// TestPermanentSourceError: a source that cannot go on (a corrupt archive)
// stops the consumer, and Take reports why instead of waiting forever.
func TestPermanentSourceError(t *testing.T) {
	msgs := recorded(t)
	boom := errors.New("messages/42.arrows is corrupt")
	_, err := drawAll(t, &listSource{msgs: msgs, fail: boom, at: 30}, 7)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the source's error", err)
	}
}

// countingSource is a listSource that records how many messages each fetch
// asked for.
type countingSource struct {
	listSource
	asked []int
}

func (s *countingSource) Fetch(ctx context.Context, max int, handle func(Message)) error {
	s.asked = append(s.asked, max)
	return s.listSource.Fetch(ctx, max, handle)
}

// TestFetchBoundedByPool: no fetch asks for more messages than the pool has
// room for, the first one included, before any message has shown how many
// pairs a message holds.
func TestFetchBoundedByPool(t *testing.T) {
	msgs := recorded(t) // batches of 3 pairs
	src := &countingSource{listSource: listSource{msgs: msgs}}
	if _, err := drawAll(t, src, 7); !errors.Is(err, ErrExhausted) {
		t.Fatalf("end of the source: %v, want ErrExhausted", err)
	}
	if len(src.asked) == 0 {
		t.Fatal("no fetch")
	}
	if src.asked[0] != 1 {
		t.Errorf("the first fetch asked for %d messages, want 1: the pairs per message are not known yet", src.asked[0])
	}
	// drawAll's pool holds 16 pairs: at most 16/3 = 5 messages of 3 pairs.
	for i, n := range src.asked {
		if n > 5 {
			t.Errorf("fetch %d asked for %d messages of 3 pairs into a pool of 16 pairs", i, n)
		}
	}
}
