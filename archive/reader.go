package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

// Reader reads a finished archive. It is safe for concurrent use; the
// bucket must stay open while it is used.
type Reader struct {
	src *store.Bucket
	m   *Manifest
	// batches maps "run/producer/batchseq" to the index of the first
	// decodable message holding that batch (the one a trainer kept; it
	// drops later copies as duplicates).
	batches map[string]int
}

// Open reads and validates the manifest of the archive in src. An archive
// without a manifest is incomplete (ErrIncomplete); a manifest that does not
// parse, has another format, or lists messages out of order or under the
// wrong keys is ErrManifest. Open reads no message.
func Open(ctx context.Context, src *store.Bucket) (*Reader, error) {
	data, err := src.Get(ctx, ManifestKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s has no %s (not an archive, or its export did not finish): %w", ErrIncomplete, src.URL(), ManifestKey, err)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: reading %s of %s: %w", ManifestKey, src.URL(), err)
	}
	m, err := parseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", ManifestKey, src.URL(), err)
	}
	r := &Reader{src: src, m: m, batches: make(map[string]int)}
	for i, msg := range m.Messages {
		if msg.Error != "" || msg.Pairs == 0 {
			continue
		}
		k := batchKey(msg.Run, msg.Producer, msg.BatchSeq)
		if _, dup := r.batches[k]; !dup {
			r.batches[k] = i
		}
	}
	return r, nil
}

func batchKey(run, producer string, batchSeq uint64) string {
	return run + "/" + producer + "/" + strconv.FormatUint(batchSeq, 10)
}

// Manifest returns the archive's manifest. The caller must not modify it.
func (r *Reader) Manifest() *Manifest { return r.m }

// Read returns the bytes of Messages[i], exactly as the stream held them,
// after checking their size and SHA-256 against the manifest. A mismatch
// is ErrCorrupt and a missing object ErrIncomplete; both name the key.
func (r *Reader) Read(ctx context.Context, i int) ([]byte, error) {
	if i < 0 || i >= len(r.m.Messages) {
		return nil, fmt.Errorf("archive: message index %d out of range [0, %d)", i, len(r.m.Messages))
	}
	msg := r.m.Messages[i]
	data, err := r.src.Get(ctx, msg.Key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s of %s is missing (seq %d): %w", ErrIncomplete, msg.Key, r.src.URL(), msg.Seq, err)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: reading message seq %d: %w", msg.Seq, err)
	}
	if len(data) != msg.Bytes {
		return nil, fmt.Errorf("%w: %s of %s is %d bytes, the manifest says %d", ErrCorrupt, msg.Key, r.src.URL(), len(data), msg.Bytes)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != msg.SHA256 {
		return nil, fmt.Errorf("%w: %s of %s has SHA-256 %x, the manifest says %s", ErrCorrupt, msg.Key, r.src.URL(), sum, msg.SHA256)
	}
	return data, nil
}

// Batch reads Messages[i] and decodes it as the trainer does
// (schema.Decode with default options). For a message archived with an
// Error, Decode fails again, with the same error.
func (r *Reader) Batch(ctx context.Context, i int) (*schema.Batch, error) {
	data, err := r.Read(ctx, i)
	if err != nil {
		return nil, err
	}
	b, err := schema.Decode(data, schema.DecodeOptions{})
	if err != nil {
		return nil, fmt.Errorf("archive: %s (seq %d): %w", r.m.Messages[i].Key, r.m.Messages[i].Seq, err)
	}
	return b, nil
}

// FindSample locates the sample id "RUN/PRODUCER/BATCHSEQ/INDEX" (see
// schema.FormatSampleID) from the manifest alone: it returns the index of
// the message in Manifest().Messages and the row in its batch. When the
// stream held the batch more than once it returns the first copy, the one
// a trainer kept. A sample that is not there is ErrNotFound; a malformed
// id is an error too.
func (r *Reader) FindSample(id string) (msg, row int, err error) {
	sid, err := schema.ParseSampleID(id)
	if err != nil {
		return 0, 0, fmt.Errorf("archive: %w", err)
	}
	run, producer, seq, index := sid.Run, sid.Producer, sid.BatchSeq, uint64(sid.Index)
	batch := batchKey(run, producer, seq)
	i, found := r.batches[batch]
	if !found {
		return 0, 0, fmt.Errorf("%w: no batch %s in %s", ErrNotFound, batch, r.src.URL())
	}
	if n := r.m.Messages[i].Pairs; index >= uint64(n) {
		return 0, 0, fmt.Errorf("%w: batch %s (seq %d) has %d rows, no row %d", ErrNotFound, batch, r.m.Messages[i].Seq, n, index)
	}
	return i, int(index), nil
}
