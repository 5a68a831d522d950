package pairset

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/pdmflow/pdmflow/store"
)

// tempFile is a local file written in one pass and then uploaded under a
// key, with its size and SHA-256 counted on the way.
type tempFile struct {
	key string
	f   *os.File
	bw  *bufio.Writer
	sum hash.Hash
	n   int64
}

func newTempFile(dir, key string) (*tempFile, error) {
	f, err := os.CreateTemp(dir, "pdmflow-pairset-*")
	if err != nil {
		return nil, fmt.Errorf("pairset: temporary file for %s: %w", key, err)
	}
	t := &tempFile{key: key, f: f, sum: sha256.New()}
	t.bw = bufio.NewWriterSize(io.MultiWriter(f, t.sum), 1<<20)
	return t, nil
}

func (t *tempFile) Write(p []byte) (int, error) {
	n, err := t.bw.Write(p)
	t.n += int64(n)
	return n, err
}

// upload flushes the file, stores it under its key and removes it.
func (t *tempFile) upload(ctx context.Context, dst *store.Bucket, rows int) (File, error) {
	defer t.remove()
	if err := t.bw.Flush(); err != nil {
		return File{}, fmt.Errorf("pairset: writing %s: %w", t.key, err)
	}
	if err := dst.PutFile(ctx, t.key, t.f.Name()); err != nil {
		return File{}, fmt.Errorf("pairset: storing %s: %w", t.key, err)
	}
	return File{Key: t.key, Rows: rows, Bytes: t.n, SHA256: hex.EncodeToString(t.sum.Sum(nil))}, nil
}

func (t *tempFile) remove() {
	if t.f != nil {
		t.f.Close()
		os.Remove(t.f.Name())
		t.f = nil
	}
}
