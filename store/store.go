package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Sentinel errors; test for them with errors.Is.
var (
	ErrNotFound     = errors.New("store: not found")
	ErrExists       = errors.New("store: already exists") // PutIfAbsent on an existing key
	ErrHashMismatch = errors.New("store: content hash mismatch")
	ErrInvalidKey   = errors.New("store: invalid key")
)

// errClosed is returned by every method of a closed Bucket.
var errClosed = errors.New("store: bucket is closed")

// MaxKeyLen is the longest key accepted, in bytes.
const MaxKeyLen = 1024

// Attrs describes a stored object.
type Attrs struct {
	Size    int64
	ModTime time.Time // S3: second precision
	// ETag is opaque; it changes whenever the object is replaced. S3: the
	// server's ETag, unquoted. File: derived from inode, mtime and size.
	ETag string
}

// driver is what a storage backend implements. The Bucket validates keys,
// checks the context and the closed state, and wraps errors; a driver
// returns ErrNotFound or ErrExists bare (or wrapped) for those conditions
// and its own errors otherwise, without the "store: " prefix.
type driver interface {
	// put writes size bytes from r under key.
	put(ctx context.Context, key string, r io.Reader, size int64, o putOpts) error
	// get opens key for reading and returns its size. stream: the caller
	// streams a possibly large object, so no per-call timeout applies.
	get(ctx context.Context, key string, stream bool) (io.ReadCloser, int64, error)
	stat(ctx context.Context, key string) (Attrs, error)
	// list returns the valid keys that start with prefix, in any order.
	list(ctx context.Context, prefix string) ([]string, error)
	// delete removes key; a missing key is not an error.
	delete(ctx context.Context, key string) error
	// atomicPutIfAbsent reports whether put with ifAbsent is atomic against
	// concurrent writers.
	atomicPutIfAbsent(ctx context.Context) (bool, error)
	close() error
}

type putOpts struct {
	ifAbsent bool // fail with ErrExists if the key is present
	stream   bool // r is a possibly large file: no per-call timeout
}

// Bucket is a flat namespace of objects addressed by key. It is safe for
// concurrent use by multiple goroutines and processes.
type Bucket struct {
	url string
	drv driver

	mu     sync.RWMutex // guards closed; held for reading during calls
	closed bool
}

// Open opens a bucket by URL:
//
//   - "file:///abs/dir", "file://rel/dir", or a plain path such as "dir":
//     a directory, created (with parents) if missing. cfg is ignored.
//   - "s3://bucket" or "s3://bucket/prefix": an S3 bucket, or the keys under
//     prefix+"/" in it. cfg (completed from the environment with
//     [Config.FromEnv]) says where and how to connect; Open checks that the
//     bucket exists, and creates it if cfg.CreateBucket is set.
//
// Credentials in the URL are refused: use Config or the environment.
func Open(ctx context.Context, url string, cfg Config) (*Bucket, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	scheme, rest, hasScheme := strings.Cut(url, "://")
	if !hasScheme {
		scheme, rest = "file", url
	}
	var (
		drv   driver
		canon string
		err   error
	)
	switch scheme {
	case "file":
		drv, canon, err = openFile(rest)
	case "s3":
		drv, canon, err = openS3(ctx, rest, cfg.FromEnv())
	default:
		// The scheme is safe to show; the rest might hold a secret.
		return nil, fmt.Errorf("store: open: unsupported URL scheme %q (want file:// or s3://)", scheme)
	}
	if err != nil {
		return nil, err
	}
	return &Bucket{url: canon, drv: drv}, nil
}

// URL returns the bucket's URL in canonical form ("file:///abs/dir",
// "s3://bucket/prefix"). It never holds credentials.
func (b *Bucket) URL() string { return b.url }

// Close releases the bucket's resources, after waiting for the calls in
// progress. Later calls on it fail; closing twice is not an error.
func (b *Bucket) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if err := b.drv.close(); err != nil {
		return fmt.Errorf("store: close %s: %w", b.url, err)
	}
	return nil
}

// begin validates key and checks ctx and the closed state. On success the
// caller must call b.end.
func (b *Bucket) begin(ctx context.Context, op, key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	return b.beginNoKey(ctx, op, key)
}

// beginNoKey is begin for calls that take no key; what is only used in
// messages.
func (b *Bucket) beginNoKey(ctx context.Context, op, what string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %s %q: %w", op, what, err)
	}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return fmt.Errorf("%w: %s %q in %s", errClosed, op, what, b.url)
	}
	return nil
}

func (b *Bucket) end() { b.mu.RUnlock() }

// wrap adds the operation, key and bucket to a driver error, keeping the
// sentinels at the front of the message.
func (b *Bucket) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	for _, s := range []error{ErrNotFound, ErrExists} {
		if errors.Is(err, s) {
			return fmt.Errorf("%w: %s %q in %s", s, op, key, b.url)
		}
	}
	return fmt.Errorf("store: %s %q in %s: %w", op, key, b.url, err)
}

// Put stores data under key, atomically replacing any existing object.
func (b *Bucket) Put(ctx context.Context, key string, data []byte) error {
	if err := b.begin(ctx, "put", key); err != nil {
		return err
	}
	defer b.end()
	return b.wrap("put", key, b.drv.put(ctx, key, bytes.NewReader(data), int64(len(data)), putOpts{}))
}

// PutIfAbsent stores data under key only if no object is there, and returns
// an error wrapping ErrExists otherwise (the existing object is untouched).
//
// The file driver is atomic: of any number of concurrent PutIfAbsent calls
// on one key, from any processes on one machine, exactly one succeeds, and
// the object appears complete (temporary file + fsync + link(2)).
//
// The s3 driver sends If-None-Match: * on a single PUT, which servers that
// support conditional writes (AWS S3 since 2024, MinIO, versitygw, Ceph)
// honour atomically. It checks once per Bucket whether the server does, with
// a scratch object under ".pdmflow-probe/"; against a server that ignores the
// header it falls back to Stat then Put, which races: two writers can both
// see the key missing and both write, the later one winning. (The scratch
// object is deleted at once and List never shows that prefix.)
// [Bucket.AtomicPutIfAbsent] reports which case applies. If a PUT's response
// is lost and minio-go retries it, the retry can report ErrExists for an
// object this very call wrote.
func (b *Bucket) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := b.begin(ctx, "put-if-absent", key); err != nil {
		return err
	}
	defer b.end()
	return b.wrap("put-if-absent", key, b.drv.put(ctx, key, bytes.NewReader(data), int64(len(data)), putOpts{ifAbsent: true}))
}

// AtomicPutIfAbsent reports whether PutIfAbsent on this bucket is atomic
// against concurrent writers (see PutIfAbsent). The s3 driver may probe the
// server to find out, once per Bucket.
func (b *Bucket) AtomicPutIfAbsent(ctx context.Context) (bool, error) {
	if err := b.beginNoKey(ctx, "probe", ""); err != nil {
		return false, err
	}
	defer b.end()
	ok, err := b.drv.atomicPutIfAbsent(ctx)
	if err != nil {
		return false, fmt.Errorf("store: probe conditional put in %s: %w", b.url, err)
	}
	return ok, nil
}

// Get returns the object stored under key, or an error wrapping ErrNotFound.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, error) {
	if err := b.begin(ctx, "get", key); err != nil {
		return nil, err
	}
	defer b.end()
	data, err := b.get(ctx, key)
	return data, b.wrap("get", key, err)
}

func (b *Bucket) get(ctx context.Context, key string) ([]byte, error) {
	rc, size, err := b.drv.get(ctx, key, false)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// Trust size only as a capacity hint, and cap it: a lying server must not
	// make us allocate more than we receive.
	var buf bytes.Buffer
	if size > 0 && size <= 256<<20 {
		buf.Grow(int(size) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(&ctxReader{ctx: ctx, r: rc})
	if err != nil {
		return nil, err
	}
	if size >= 0 && n != size {
		return nil, fmt.Errorf("short read: got %d of %d bytes", n, size)
	}
	return buf.Bytes(), nil
}

// Stat returns the attributes of the object under key, or an error wrapping
// ErrNotFound.
func (b *Bucket) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := b.begin(ctx, "stat", key); err != nil {
		return Attrs{}, err
	}
	defer b.end()
	a, err := b.drv.stat(ctx, key)
	return a, b.wrap("stat", key, err)
}

// List returns the keys that start with prefix, recursively, sorted
// bytewise. The prefix is a plain string prefix, not a directory: "a/b"
// matches "a/b", "a/bc" and "a/b/c"; "" matches every key.
func (b *Bucket) List(ctx context.Context, prefix string) ([]string, error) {
	if err := b.beginNoKey(ctx, "list", prefix); err != nil {
		return nil, err
	}
	defer b.end()
	keys, err := b.drv.list(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("store: list %q in %s: %w", prefix, b.url, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// Delete removes the object under key. Deleting a missing key is not an
// error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.begin(ctx, "delete", key); err != nil {
		return err
	}
	defer b.end()
	return b.wrap("delete", key, b.drv.delete(ctx, key))
}

// PutFile streams the local file at path into the bucket under key,
// atomically replacing any existing object, without reading the file into
// memory. The file must not change while it is being uploaded.
func (b *Bucket) PutFile(ctx context.Context, key, path string) error {
	if err := b.begin(ctx, "put-file", key); err != nil {
		return err
	}
	defer b.end()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store: put-file %q: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: put-file %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("store: put-file %q: %s is not a regular file", key, path)
	}
	return b.wrap("put-file", key, b.drv.put(ctx, key, f, fi.Size(), putOpts{stream: true}))
}

// GetToFile streams the object under key into the local file at path,
// without holding it in memory. The file is replaced atomically (a temporary
// file in the same directory, fsynced, then renamed over path), so path
// holds either its old content or the complete object. The directory must
// exist. On error, including ErrNotFound, path is left untouched.
func (b *Bucket) GetToFile(ctx context.Context, key, path string) error {
	if err := b.begin(ctx, "get-to-file", key); err != nil {
		return err
	}
	defer b.end()
	return b.wrap("get-to-file", key, b.getToFile(ctx, key, path))
}

func (b *Bucket) getToFile(ctx context.Context, key, path string) (err error) {
	rc, size, err := b.drv.get(ctx, key, true)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, &ctxReader{ctx: ctx, r: rc})
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("short read: got %d of %d bytes", n, size)
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes a rename in dir durable; errors are ignored because some
// filesystems do not support fsync on directories.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// ctxReader stops reading once ctx is done, so that long copies can be
// cancelled between chunks.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// validateKey returns an error wrapping ErrInvalidKey unless key is a valid
// key; see the package doc.
func validateKey(key string) error {
	if reason := keyProblem(key); reason != "" {
		if len(key) > 80 {
			key = key[:80] + "..."
		}
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, reason)
	}
	return nil
}

// ValidKey reports whether key is a valid key.
func ValidKey(key string) bool { return keyProblem(key) == "" }

func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > MaxKeyLen:
		return fmt.Sprintf("longer than %d bytes", MaxKeyLen)
	case !utf8.ValidString(key):
		return "not valid UTF-8"
	case key[0] == '/':
		return "leading '/'"
	case strings.ContainsRune(key, '\\'):
		return "contains a backslash"
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c == 0x7f {
			return "contains a control character"
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return "empty path segment"
		case ".", "..":
			return fmt.Sprintf("%q segment", seg)
		}
	}
	return ""
}
