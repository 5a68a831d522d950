package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/store"
	"github.com/pdmflow/pdmflow/store/storetest"
)

func openDir(t *testing.T, dir string) *store.Bucket {
	t.Helper()
	b, err := store.Open(t.Context(), dir, store.Config{})
	if err != nil {
		t.Fatalf("Open(%q): %v", dir, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestFileConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Bucket {
		return openDir(t, "file://"+t.TempDir())
	})
}

// files lists every entry under dir, relative and slash-separated.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFileOpenURLs(t *testing.T) {
	ctx := t.Context()
	base := t.TempDir()
	t.Chdir(base)
	for _, tc := range []struct{ url, dir string }{
		{"file://" + filepath.Join(base, "abs"), filepath.Join(base, "abs")},
		{"file://rel/dir", filepath.Join(base, "rel/dir")},
		{"plain/dir", filepath.Join(base, "plain/dir")},
		{filepath.Join(base, "plainabs"), filepath.Join(base, "plainabs")},
	} {
		b, err := store.Open(ctx, tc.url, store.Config{})
		if err != nil {
			t.Fatalf("Open(%q): %v", tc.url, err)
		}
		if got, want := b.URL(), "file://"+tc.dir; got != want {
			t.Errorf("Open(%q).URL() = %q, want %q", tc.url, got, want)
		}
		if fi, err := os.Stat(tc.dir); err != nil || !fi.IsDir() {
			t.Errorf("Open(%q) did not create %s: %v", tc.url, tc.dir, err)
		}
		if err := b.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(tc.dir, "k")); err != nil {
			t.Errorf("Open(%q): object not stored in %s: %v", tc.url, tc.dir, err)
		}
		b.Close()
	}

	for _, bad := range []string{"", "file://", "gs://bucket", "http://x/y"} {
		if b, err := store.Open(ctx, bad, store.Config{}); err == nil {
			b.Close()
			t.Errorf("Open(%q) succeeded", bad)
		} else if !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("Open(%q): error %q lacks the prefix", bad, err)
		}
	}
	// A file where the directory should be.
	if err := os.WriteFile(filepath.Join(base, "afile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := store.Open(ctx, "afile", store.Config{}); err == nil {
		b.Close()
		t.Error("Open over a regular file succeeded")
	}
}

func TestOpenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := store.Open(ctx, t.TempDir(), store.Config{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a cancelled context: %v", err)
	}
}

// TestFileNoEscape checks that neither tricky keys nor symbolic links inside
// the root let the file driver read or write outside it.
func TestFileNoEscape(t *testing.T) {
	ctx := t.Context()
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	b := openDir(t, root)
	secret := filepath.Join(parent, "secret")
	if err := os.WriteFile(secret, []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Links planted by someone else inside the root.
	if err := os.Symlink("..", filepath.Join(root, "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(root, "slash")); err != nil {
		t.Fatal(err)
	}
	before := files(t, parent)

	for _, key := range storetest.InvalidKeys {
		if err := b.Put(ctx, key, []byte("evil")); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want ErrInvalidKey", key, err)
		}
	}
	for _, key := range []string{"up/secret", "abs", "slash/etc/passwd", "up/root/up/secret"} {
		if data, err := b.Get(ctx, key); err == nil {
			t.Errorf("Get(%q) escaped the root: %q", key, data)
		}
		if _, err := b.Stat(ctx, key); err == nil {
			t.Errorf("Stat(%q) escaped the root", key)
		}
		if err := b.GetToFile(ctx, key, filepath.Join(t.TempDir(), "x")); err == nil {
			t.Errorf("GetToFile(%q) escaped the root", key)
		}
	}
	keys, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("List follows links or shows them: %q", keys)
	}
	for _, key := range []string{"up/evil", "up/secret", "slash/tmp/evil", "up/root/up/evil"} {
		if err := b.Put(ctx, key, []byte("evil")); err == nil {
			t.Errorf("Put(%q) succeeded through a link", key)
		}
		if err := b.PutIfAbsent(ctx, key, []byte("evil")); err == nil {
			t.Errorf("PutIfAbsent(%q) succeeded through a link", key)
		}
		_ = b.Delete(ctx, key)
	}
	// Writing or deleting the key of a link replaces or removes the link
	// itself, never its target.
	if err := b.Put(ctx, "abs", []byte("replaced")); err != nil {
		t.Errorf("Put over a link: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "abs")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("Put over a link did not replace the link: %v", err)
	}
	if err := b.Delete(ctx, "slash"); err != nil {
		t.Errorf("Delete of a link: %v", err)
	}
	if got, _ := os.ReadFile(secret); string(got) != "outside" {
		t.Errorf("file outside the root changed to %q", got)
	}
	if _, err := os.Stat("/tmp/evil"); err == nil {
		t.Error("/tmp/evil was created")
	}
	outside := func(all []string) []string {
		return slices.DeleteFunc(all, func(p string) bool { return strings.HasPrefix(p, "root/") })
	}
	if after := files(t, parent); !slices.Equal(outside(before), outside(after)) {
		t.Errorf("files outside the root changed:\nbefore %q\nafter  %q", before, after)
	}
}

// TestFileAtomicReplace hammers one key with writers while readers check
// that every read is one complete version, then checks that no temporary
// files are left.
func TestFileAtomicReplace(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b := openDir(t, dir)
	version := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 64<<10+i) }
	if err := b.Put(ctx, "w/k", version(0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Go(func() {
			for i := 1; i <= 15; i++ {
				if err := b.Put(ctx, "w/k", version(w*100+i)); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
			}
		})
	}
	var reads sync.WaitGroup
	for range 2 {
		reads.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				data, err := b.Get(ctx, "w/k")
				if err != nil {
					t.Errorf("Get during replace: %v", err)
					return
				}
				n := len(data) - 64<<10
				if n < 0 || !bytes.Equal(data, version(n)) {
					t.Errorf("Get during replace returned a torn object of %d bytes", len(data))
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	reads.Wait()

	// Failed writes clean up too.
	if err := b.Put(ctx, "w/k/under-a-file", []byte("x")); err == nil {
		t.Error("Put under an object's key succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = b.Put(cctx, "w/cancelled", []byte("x"))

	if got := files(t, dir); !slices.Equal(got, []string{"w", "w/k"}) {
		t.Errorf("files after writes = %q, want [w w/k] (temporary files left?)", got)
	}
}

func TestFileKeyDirectoryConflict(t *testing.T) {
	ctx := t.Context()
	b := openDir(t, t.TempDir())
	if err := b.Put(ctx, "a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Put":         b.Put(ctx, "a", []byte("y")),
		"PutIfAbsent": b.PutIfAbsent(ctx, "a", []byte("y")),
	} {
		if err == nil || errors.Is(err, store.ErrExists) {
			t.Errorf("%s of a key that is another key's directory: %v, want a plain error", name, err)
		}
	}
	// Deleting the last key under "a" frees the name.
	if err := b.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "a", []byte("y")); err != nil {
		t.Errorf("Put after the directory emptied: %v", err)
	}
}

// TestFilePutIfAbsentTwoBuckets: two Buckets on one directory, as two
// processes would have, still let exactly one writer win.
func TestFilePutIfAbsentTwoBuckets(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	buckets := []*store.Bucket{openDir(t, dir), openDir(t, dir)}
	for round := range 6 {
		key := fmt.Sprintf("k/%d", round)
		var (
			wins sync.WaitGroup
			mu   sync.Mutex
			won  int
		)
		for i := range 8 {
			wins.Go(func() {
				err := buckets[i%2].PutIfAbsent(ctx, key, fmt.Appendf(nil, "%d", i))
				if err == nil {
					mu.Lock()
					won++
					mu.Unlock()
				} else if !errors.Is(err, store.ErrExists) {
					t.Errorf("PutIfAbsent: %v", err)
				}
			})
		}
		wins.Wait()
		if won != 1 {
			t.Fatalf("round %d: %d writers won", round, won)
		}
	}
}

func TestFileListSkipsForeignFiles(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b := openDir(t, dir)
	if err := b.Put(ctx, "ok/k", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`ok/back\slash`, `ok/.tmp\leftover`, "ok/ctl\x01char"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, `bad\dir`), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, `bad\dir`, "inner"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"ok/k"}) {
		t.Errorf("List = %q, want [ok/k]", keys)
	}
}

func TestFileStatModTime(t *testing.T) {
	b := openDir(t, t.TempDir())
	before := time.Now()
	if err := b.Put(t.Context(), "k", []byte("x")); err != nil {
		t.Fatal(err)
	}
	a, err := b.Stat(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	// The file driver keeps the filesystem's precision.
	if a.ModTime.Before(before.Add(-10*time.Millisecond)) || a.ModTime.After(time.Now().Add(10*time.Millisecond)) {
		t.Errorf("ModTime %v not between %v and now", a.ModTime, before)
	}
}

func TestKeys(t *testing.T) {
	for _, k := range storetest.InvalidKeys {
		if store.ValidKey(k) {
			t.Errorf("ValidKey(%q) = true", k)
		}
	}
	for _, k := range []string{"a", "a/b", "weights/sha256/ab.safetensors", "...", ".a/..b/c.", strings.Repeat("k", store.MaxKeyLen), "ü/日本"} {
		if !store.ValidKey(k) {
			t.Errorf("ValidKey(%q) = false", k)
		}
	}
}

func TestConfig(t *testing.T) {
	t.Setenv("PDMFLOW_S3_ENDPOINT", "env-host:9000")
	t.Setenv("PDMFLOW_S3_ACCESS_KEY", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENVKEY")
	t.Setenv("PDMFLOW_S3_SECRET_KEY", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret-value")
	t.Setenv("PDMFLOW_S3_REGION", "eu-west-3")
	t.Setenv("AWS_REGION", "us-west-2")
	t.Setenv("PDMFLOW_S3_INSECURE", "1")
	t.Setenv("PDMFLOW_S3_CA_FILE", "")

	c := store.Config{AccessKey: "AKIAEXPLICIT"}.FromEnv()
	want := store.Config{Endpoint: "env-host:9000", AccessKey: "AKIAEXPLICIT", SecretKey: "env-secret-value", Region: "eu-west-3", Insecure: true}
	if c != want {
		t.Errorf("FromEnv = %#v, want %#v", c, want)
	}
	t.Setenv("PDMFLOW_S3_SECRET_KEY", "pdm-secret-value")
	if got := (store.Config{}).FromEnv().SecretKey; got != "pdm-secret-value" {
		t.Errorf("PDMFLOW_S3_SECRET_KEY not preferred: %q", got)
	}
	for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, "secret-value") {
			t.Errorf("formatted Config shows the secret: %s", s)
		}
		if strings.Contains(s, "AKIAEXPLICIT") {
			t.Errorf("formatted Config shows the whole access key: %s", s)
		}
		if !strings.Contains(s, "env-host:9000") {
			t.Errorf("formatted Config lacks the endpoint: %s", s)
		}
	}
}

func TestS3URLErrors(t *testing.T) {
	ctx := t.Context()
	cfg := store.Config{Endpoint: "127.0.0.1:1", Insecure: true, Timeout: 2 * time.Second}
	for _, tc := range []struct{ url, want string }{
		{"s3://key:topsecret@bucket/x", "credentials"},
		{"s3://", "bucket"},
		{"s3://Bad_Bucket", "bucket"},
		{"s3://bucket/a/../b", "prefix"},
		{"s3://bucket?x=1", "query"},
	} {
		b, err := store.Open(ctx, tc.url, cfg)
		if err == nil {
			b.Close()
			t.Errorf("Open(%q) succeeded", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "topsecret") {
			t.Errorf("Open(%q): %q, want it to mention %q and no secret", tc.url, err, tc.want)
		}
	}
	t.Setenv("PDMFLOW_S3_ENDPOINT", "")
	// Without an endpoint the bucket is AWS S3's (unreachable here, or
	// refusing these keys).
	if _, err := store.Open(ctx, "s3://bucket", store.Config{AccessKey: "x", SecretKey: "y", Timeout: 3 * time.Second}); err == nil || !strings.Contains(err.Error(), "s3.amazonaws.com") {
		t.Errorf("Open without endpoint: %v, want an error naming AWS S3", err)
	}
}
