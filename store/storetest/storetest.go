// Package storetest is the conformance suite that every store driver must
// pass. A driver's test calls Run with a function that opens a new, empty
// bucket on that driver.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/store"
)

// Run runs the conformance suite. open must return a new, empty bucket each
// time it is called (each subtest calls it once) and arrange for it to be
// closed when t ends; closing it twice must be harmless.
func Run(t *testing.T, open func(t *testing.T) *store.Bucket) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b *store.Bucket)
	}{
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"Missing", testMissing},
		{"Stat", testStat},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfAbsentConcurrent", testPutIfAbsentConcurrent},
		{"List", testList},
		{"Delete", testDelete},
		{"KeyAndDirectory", testKeyAndDirectory},
		{"InvalidKeys", testInvalidKeys},
		{"OddKeys", testOddKeys},
		{"Weights", testWeights},
		{"Cancelled", testCancelled},
		{"Streaming", testStreaming},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t)
			if b == nil {
				t.Fatal("open returned a nil bucket")
			}
			tc.fn(t, b)
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPut(t *testing.T, b *store.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.Put(ctxFor(t), key, data); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustGet(t *testing.T, b *store.Bucket, key string, want []byte) {
	t.Helper()
	got, err := b.Get(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes (sha256 %s), want %d bytes (sha256 %s)",
			key, len(got), short(got), len(want), short(want))
	}
}

func short(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:4])
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want one wrapping %v", what, err, target)
	}
	if !strings.HasPrefix(err.Error(), "store: ") {
		t.Errorf("%s: error %q does not start with \"store: \"", what, err)
	}
}

func testRoundTrip(t *testing.T, b *store.Bucket) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"one-byte", []byte{0}},
		{"5MiB", randBytes(t, 5<<20)},
	} {
		key := "roundtrip/" + tc.name
		mustPut(t, b, key, tc.data)
		mustGet(t, b, key, tc.data)
		a, err := b.Stat(ctxFor(t), key)
		if err != nil {
			t.Fatalf("Stat(%q): %v", key, err)
		}
		if a.Size != int64(len(tc.data)) {
			t.Errorf("Stat(%q).Size = %d, want %d", key, a.Size, len(tc.data))
		}
	}
}

func testOverwrite(t *testing.T, b *store.Bucket) {
	long, short := randBytes(t, 100_000), []byte("short")
	mustPut(t, b, "k", long)
	mustPut(t, b, "k", short)
	mustGet(t, b, "k", short) // not the tail of the long one
	mustPut(t, b, "k", long)
	mustGet(t, b, "k", long)
	mustPut(t, b, "k", nil)
	mustGet(t, b, "k", []byte{})
	keys, err := b.List(ctxFor(t), "")
	if err != nil || !slices.Equal(keys, []string{"k"}) {
		t.Fatalf("List after overwrites = %q, %v; want [k]", keys, err)
	}
}

func testMissing(t *testing.T, b *store.Bucket) {
	ctx := ctxFor(t)
	_, err := b.Get(ctx, "no/such/key")
	wantErr(t, "Get missing", err, store.ErrNotFound)
	_, err = b.Stat(ctx, "no/such/key")
	wantErr(t, "Stat missing", err, store.ErrNotFound)

	// A prefix of an existing key is not an object.
	mustPut(t, b, "dir/obj", []byte("x"))
	_, err = b.Get(ctx, "dir")
	wantErr(t, "Get of a key's directory", err, store.ErrNotFound)
	_, err = b.Stat(ctx, "dir")
	wantErr(t, "Stat of a key's directory", err, store.ErrNotFound)

	// GetToFile of a missing key leaves the target alone.
	target := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = b.GetToFile(ctx, "no/such/key", target)
	wantErr(t, "GetToFile missing", err, store.ErrNotFound)
	if got, _ := os.ReadFile(target); string(got) != "old" {
		t.Errorf("GetToFile of a missing key changed the target to %q", got)
	}
}

func testStat(t *testing.T, b *store.Bucket) {
	ctx := ctxFor(t)
	before := time.Now()
	mustPut(t, b, "s", []byte("hello"))
	after := time.Now()
	a, err := b.Stat(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != 5 {
		t.Errorf("Size = %d, want 5", a.Size)
	}
	// S3 has second precision; allow some clock slack too.
	const slack = 2 * time.Second
	if a.ModTime.Before(before.Add(-slack)) || a.ModTime.After(after.Add(slack)) {
		t.Errorf("ModTime = %v, want within [%v, %v] ± %v", a.ModTime, before, after, slack)
	}
	if a.ETag == "" {
		t.Error("ETag is empty")
	}
	mustPut(t, b, "s", []byte("world!"))
	a2, err := b.Stat(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if a2.Size != 6 {
		t.Errorf("Size after overwrite = %d, want 6", a2.Size)
	}
	if a2.ETag == a.ETag {
		t.Errorf("ETag unchanged (%q) after the object was replaced", a.ETag)
	}
}

func testPutIfAbsent(t *testing.T, b *store.Bucket) {
	ctx := ctxFor(t)
	first, second := []byte("first"), []byte("second")
	if err := b.PutIfAbsent(ctx, "once", first); err != nil {
		t.Fatalf("first PutIfAbsent: %v", err)
	}
	err := b.PutIfAbsent(ctx, "once", second)
	wantErr(t, "second PutIfAbsent", err, store.ErrExists)
	mustGet(t, b, "once", first)

	// Once deleted, the key is free again.
	if err := b.Delete(ctx, "once"); err != nil {
		t.Fatal(err)
	}
	if err := b.PutIfAbsent(ctx, "once", second); err != nil {
		t.Fatalf("PutIfAbsent after Delete: %v", err)
	}
	mustGet(t, b, "once", second)

	// An empty object exists too.
	if err := b.PutIfAbsent(ctx, "empty", nil); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "PutIfAbsent over an empty object", b.PutIfAbsent(ctx, "empty", first), store.ErrExists)
	mustGet(t, b, "empty", []byte{})
}

func testPutIfAbsentConcurrent(t *testing.T, b *store.Bucket) {
	ctx := ctxFor(t)
	atomic, err := b.AtomicPutIfAbsent(ctx)
	if err != nil {
		t.Fatalf("AtomicPutIfAbsent: %v", err)
	}
	if !atomic {
		t.Skipf("%s does not claim an atomic PutIfAbsent", b.URL())
	}
	const writers, rounds = 8, 5
	for round := range rounds {
		key := fmt.Sprintf("race/%d", round)
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			errs    [writers]error
			payload [writers][]byte
		)
		for i := range writers {
			payload[i] = fmt.Appendf(nil, "writer %d of round %d", i, round)
			wg.Go(func() {
				<-start
				errs[i] = b.PutIfAbsent(ctx, key, payload[i])
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: writers %d and %d both succeeded", round, winner, i)
				}
				winner = i
			case !errors.Is(err, store.ErrExists):
				t.Fatalf("round %d: writer %d: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer succeeded", round)
		}
		mustGet(t, b, key, payload[winner])
	}
}

func testList(t *testing.T, b *store.Bucket) {
	ctx := ctxFor(t)
	all := []string{"a", "b/c", "b/d/e", "b/d/f", "b-x", "bc", "c/x/y/z", "b/d0"}
	for _, k := range all {
		mustPut(t, b, k, []byte(k))
	}
	sorted := slices.Clone(all)
	slices.Sort(sorted)
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"b", []string{"b-x", "b/c", "b/d/e", "b/d/f", "b/d0", "bc"}},
		{"b/", []string{"b/c", "b/d/e", "b/d/f", "b/d0"}},
		{"b/d", []string{"b/d/e", "b/d/f", "b/d0"}},
		{"b/d/", []string{"b/d/e", "b/d/f"}},
		{"b/d/e", []string{"b/d/e"}},
		{"c/x/", []string{"c/x/y/z"}},
		{"nope", nil},
		{"nope/", nil},
		{"a/", nil},
		{"../", nil},
	} {
		got, err := b.List(ctx, tc.prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && !slices.Equal(got, tc.want)) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
		if !slices.IsSorted(got) {
			t.Errorf("List(%q) = %q is not sorted", tc.prefix, got)
		}
	}
}

func testDelete(t *testing.T, b *store.Bucket) {
	ctx := ctxFor(t)
	mustPut(t, b, "del/me", []byte("x"))
	mustPut(t, b, "del/keep", []byte("y"))
	if err := b.Delete(ctx, "del/me"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := b.Get(ctx, "del/me")
	wantErr(t, "Get after Delete", err, store.ErrNotFound)
	mustGet(t, b, "del/keep", []byte("y"))
	if keys, err := b.List(ctx, ""); err != nil || !slices.Equal(keys, []string{"del/keep"}) {
		t.Errorf("List after Delete = %q, %v; want [del/keep]", keys, err)
	}
	if err := b.Delete(ctx, "del/me"); err != nil {
		t.Errorf("Delete of a deleted key: %v", err)
	}
	if err := b.Delete(ctx, "never/was"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
	if err := b.Delete(ctx, "del"); err != nil {
		t.Errorf("Delete of a key's directory: %v", err)
	}
	mustGet(t, b, "del/keep", []byte("y"))
}

// testKeyAndDirectory: "a" and "a/b" may or may not coexist (S3 yes; the
// file driver and versitygw's posix backend no), but a refusal is a plain
// error, harms neither key, and ends when the other key is deleted.
func testKeyAndDirectory(t *testing.T, b *store.Bucket) {
	ctx := ctxFor(t)
	mustPut(t, b, "a/b", []byte("ab"))
	err := b.Put(ctx, "a", []byte("a"))
	if err != nil && (errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrNotFound)) {
		t.Errorf("Put of a key that prefixes another: %v, want success or a plain error", err)
	}
	coexist := err == nil
	mustGet(t, b, "a/b", []byte("ab"))
	if coexist {
		mustGet(t, b, "a", []byte("a"))
		mustPut(t, b, "x", []byte("x"))
		if err := b.Put(ctx, "x/y", []byte("xy")); err != nil {
			t.Errorf("Put under an object's key fails although keys and directories coexist: %v", err)
		}
		return
	}
	if _, err := b.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of the refused key: %v, want ErrNotFound", err)
	}
	mustPut(t, b, "x", []byte("x"))
	if err := b.Put(ctx, "x/y", []byte("xy")); err == nil || errors.Is(err, store.ErrExists) {
		t.Errorf("Put under an object's key: %v, want a plain error", err)
	}
	mustGet(t, b, "x", []byte("x"))
	if err := b.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, b, "a", []byte("a"))
	mustGet(t, b, "a", []byte("a"))
}

// InvalidKeys are keys every driver must reject with ErrInvalidKey.
var InvalidKeys = []string{
	"",
	"/abs",
	"/",
	"a/",
	"a//b",
	".",
	"..",
	"./a",
	"a/.",
	"a/./b",
	"../a",
	"a/..",
	"a/../b",
	"a/../../../etc/passwd",
	`a\b`,
	`..\..\x`,
	"a\x00b",
	"a\nb",
	"a\x7fb",
	"\xff\xfe",
	strings.Repeat("k", store.MaxKeyLen+1),
}

func testInvalidKeys(t *testing.T, b *store.Bucket) {
	ctx := ctxFor(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, key := range InvalidKeys {
		ops := map[string]error{
			"Put":         b.Put(ctx, key, []byte("x")),
			"PutIfAbsent": b.PutIfAbsent(ctx, key, []byte("x")),
			"Delete":      b.Delete(ctx, key),
			"PutFile":     b.PutFile(ctx, key, src),
			"GetToFile":   b.GetToFile(ctx, key, filepath.Join(dir, "dst")),
		}
		_, ops["Get"] = b.Get(ctx, key)
		_, ops["Stat"] = b.Stat(ctx, key)
		_, ops["GetVerified"] = store.GetVerified(ctx, b, key, strings.Repeat("0", 64))
		for op, err := range ops {
			if !errors.Is(err, store.ErrInvalidKey) {
				t.Errorf("%s(%q): error %v, want ErrInvalidKey", op, key, err)
			}
		}
	}
	if keys, err := b.List(ctx, ""); err != nil || len(keys) != 0 {
		t.Errorf("List after invalid writes = %q, %v; want nothing", keys, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dst")); err == nil {
		t.Error("GetToFile with an invalid key created its target")
	}
	// The longest valid key works (as segments that fit a file name).
	long := strings.Repeat("x", 250) + "/" + strings.Repeat("y", 250) + "/" +
		strings.Repeat("z", 250) + "/" + strings.Repeat("w", 250)
	if !store.ValidKey(long) {
		t.Fatal("long key not valid")
	}
	mustPut(t, b, long, []byte("long"))
	mustGet(t, b, long, []byte("long"))
}

func testOddKeys(t *testing.T, b *store.Bucket) {
	ctx := ctxFor(t)
	keys := []string{
		"with space/file name.txt",
		"ünïcödé/日本語",
		"punct/a+b=c&d;e,f@g$h!i'j(k)l",
		"punct/percent%2Fslash",
		"punct/question?mark",
		"punct/hash#tag",
		"punct/tilde~star*",
		".hidden/.file",
		"...",
		"..a/b..",
	}
	for _, k := range keys {
		if !store.ValidKey(k) {
			t.Fatalf("ValidKey(%q) = false", k)
		}
		mustPut(t, b, k, []byte(k))
	}
	for _, k := range keys {
		mustGet(t, b, k, []byte(k))
	}
	got, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
}

func testWeights(t *testing.T, b *store.Bucket) {
	ctx := ctxFor(t)
	data := randBytes(t, 300_000)
	sum := sha256.Sum256(data)
	wantSHA := hex.EncodeToString(sum[:])
	wantKey := "weights/sha256/" + wantSHA + ".safetensors"
	if k := store.WeightsKey(wantSHA); k != wantKey {
		t.Fatalf("WeightsKey = %q, want %q", k, wantKey)
	}
	if k := store.WeightsKey(strings.ToUpper(wantSHA)); k != wantKey {
		t.Errorf("WeightsKey(upper case) = %q, want %q", k, wantKey)
	}

	for i := range 2 { // idempotent
		key, sha, err := store.PutWeights(ctx, b, data)
		if err != nil {
			t.Fatalf("PutWeights #%d: %v", i+1, err)
		}
		if key != wantKey || sha != wantSHA {
			t.Fatalf("PutWeights #%d = %q, %q; want %q, %q", i+1, key, sha, wantKey, wantSHA)
		}
	}
	got, err := store.GetVerified(ctx, b, wantKey, wantSHA)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetVerified = %d bytes, %v", len(got), err)
	}
	if _, err := store.GetVerified(ctx, b, wantKey, strings.ToUpper(wantSHA)); err != nil {
		t.Errorf("GetVerified with an upper-case hash: %v", err)
	}

	// Tampered: other bytes under the same key.
	mustPut(t, b, wantKey, []byte("not the weights"))
	_, err = store.GetVerified(ctx, b, wantKey, wantSHA)
	wantErr(t, "GetVerified of a tampered object", err, store.ErrHashMismatch)
	tsum := sha256.Sum256([]byte("not the weights"))
	if msg := err.Error(); !strings.Contains(msg, wantSHA) || !strings.Contains(msg, hex.EncodeToString(tsum[:])) {
		t.Errorf("mismatch error %q does not name both hashes", msg)
	}
	// PutWeights repairs it.
	if _, _, err := store.PutWeights(ctx, b, data); err != nil {
		t.Fatalf("PutWeights over a tampered object: %v", err)
	}
	if _, err := store.GetVerified(ctx, b, wantKey, wantSHA); err != nil {
		t.Errorf("GetVerified after repair: %v", err)
	}

	_, err = store.GetVerified(ctx, b, store.WeightsKey(strings.Repeat("ab", 32)), strings.Repeat("ab", 32))
	wantErr(t, "GetVerified missing", err, store.ErrNotFound)
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), wantSHA + "00"} {
		_, err := store.GetVerified(ctx, b, wantKey, bad)
		if err == nil || errors.Is(err, store.ErrHashMismatch) {
			t.Errorf("GetVerified(want=%q): error %v, want a malformed-hash error", bad, err)
		}
	}

	keys, err := b.List(ctx, store.WeightsPrefix)
	if err != nil || !slices.Equal(keys, []string{wantKey}) {
		t.Errorf("List(%q) = %q, %v", store.WeightsPrefix, keys, err)
	}
}

func testCancelled(t *testing.T, b *store.Bucket) {
	mustPut(t, b, "c/k", []byte("x"))
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		ctx := c.ctx
		ops := map[string]func() error{
			"Put":         func() error { return b.Put(ctx, "c/k", []byte("y")) },
			"PutIfAbsent": func() error { return b.PutIfAbsent(ctx, "c/new", []byte("y")) },
			"Get":         func() error { _, err := b.Get(ctx, "c/k"); return err },
			"Stat":        func() error { _, err := b.Stat(ctx, "c/k"); return err },
			"List":        func() error { _, err := b.List(ctx, ""); return err },
			"Delete":      func() error { return b.Delete(ctx, "c/k") },
			"PutFile":     func() error { return b.PutFile(ctx, "c/k", src) },
			"GetToFile":   func() error { return b.GetToFile(ctx, "c/k", filepath.Join(dir, "dst")) },
			"PutWeights":  func() error { _, _, err := store.PutWeights(ctx, b, []byte("w")); return err },
		}
		for name, op := range ops {
			start := time.Now()
			err := op()
			if !errors.Is(err, c.want) {
				t.Errorf("%s with a done context: error %v, want %v", name, err, c.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("%s with a done context took %v", name, d)
			}
		}
	}
	mustGet(t, b, "c/k", []byte("x")) // nothing happened
	if _, err := b.Stat(context.Background(), "c/new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutIfAbsent with a done context wrote anyway: %v", err)
	}

	// Cancelled while a large transfer runs.
	big := randBytes(t, 8<<20)
	ctx, cancel3 := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel3()
	start := time.Now()
	err := b.Put(ctx, "c/big", big)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Put with a 1ms deadline took %v", d)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Put with a 1ms deadline: error %v, want DeadlineExceeded (or success)", err)
	}
}

func testStreaming(t *testing.T, b *store.Bucket) {
	ctx := ctxFor(t)
	dir := t.TempDir()
	// Larger than one 16 MiB S3 part, so the s3 driver goes multipart.
	data := randBytes(t, 17<<20+123)
	src := filepath.Join(dir, "src.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.PutFile(ctx, "stream/big", src); err != nil {
		t.Fatalf("PutFile: %v", err)
	}
	a, err := b.Stat(ctx, "stream/big")
	if err != nil || a.Size != int64(len(data)) {
		t.Fatalf("Stat after PutFile = %+v, %v; want size %d", a, err, len(data))
	}
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(outDir, "dst.bin")
	if err := os.WriteFile(dst, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.GetToFile(ctx, "stream/big", dst); err != nil {
		t.Fatalf("GetToFile: %v", err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetToFile wrote %d bytes (sha256 %s), %v; want %d bytes (sha256 %s)",
			len(got), short(got), err, len(data), short(data))
	}
	// Get sees the same object, and small objects stream too.
	mustGet(t, b, "stream/big", data)
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.PutFile(ctx, "stream/empty", empty); err != nil {
		t.Fatal(err)
	}
	if err := b.GetToFile(ctx, "stream/empty", dst); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Size() != 0 {
		t.Errorf("GetToFile of an empty object: %v, %v", fi, err)
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 1 {
		t.Errorf("GetToFile left files behind: %v", ents)
	}

	if err := b.PutFile(ctx, "stream/none", filepath.Join(dir, "no-such-file")); err == nil {
		t.Error("PutFile of a missing file succeeded")
	}
	if err := b.GetToFile(ctx, "stream/big", filepath.Join(dir, "no-such-dir", "x")); err == nil {
		t.Error("GetToFile into a missing directory succeeded")
	}
}

func testClosed(t *testing.T, b *store.Bucket) {
	mustPut(t, b, "k", []byte("x"))
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := ctxFor(t)
	if _, err := b.Get(ctx, "k"); err == nil {
		t.Error("Get on a closed bucket succeeded")
	}
	if err := b.Put(ctx, "k", nil); err == nil {
		t.Error("Put on a closed bucket succeeded")
	}
	if _, err := b.List(ctx, ""); err == nil {
		t.Error("List on a closed bucket succeeded")
	}
}
