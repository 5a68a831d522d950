package pairset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

// Formats of the layouts this package writes (Manifest.Format).
const (
	FormatBasicSR = "pdmflow-basicsr/1"
	FormatParquet = "pdmflow-parquet/1"
)

// ManifestKey is the object key of the manifest, written last.
const ManifestKey = "pairset.json"

// Sentinel errors, testable with errors.Is.
var (
	ErrExists = errors.New("pairset: destination already holds a finished pairset")
	ErrClosed = errors.New("pairset: writer closed")
)

// Origin says where a batch came from in the stream.
type Origin struct {
	Seq     uint64    // stream sequence of the message
	Time    time.Time // its stream timestamp
	Subject string    // the subject it was published to
}

// Options tune a Writer. The zero value is usable.
type Options struct {
	// Source describes where the pairs come from (a stream and filter, an
	// archive URL), for the manifest.
	Source string
	// Version is the pdmflow version writing, for the manifest and the
	// Parquet metadata.
	Version string
	// TempDir holds the files written before upload (Parquet parts, the
	// meta and provenance files); "" is os.TempDir().
	TempDir string
	// RowsPerFile bounds the pairs in one Parquet file, or in one
	// provenance part of a BasicSR export; 0 is 4096.
	RowsPerFile int
	// RowGroupRows is the Parquet row group length; 0 is 256.
	RowGroupRows int
	// Workers encode and store images at once (BasicSR); 0 is 4.
	Workers int
	Log     *slog.Logger // nil: no logging
}

func (o *Options) defaults() {
	if o.RowsPerFile <= 0 {
		o.RowsPerFile = 4096
	}
	if o.RowGroupRows <= 0 {
		o.RowGroupRows = 256
	}
	o.RowGroupRows = min(o.RowGroupRows, o.RowsPerFile)
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// A Writer writes the pairs of decoded batches into a destination in one
// layout. Add and Close are not safe for concurrent use.
type Writer interface {
	// Add writes the pairs of b, which came in the message at o. The
	// writer may keep b's slices until Close.
	Add(ctx context.Context, o Origin, b *schema.Batch) error
	// Skip records a message that could not be decoded, for the manifest.
	Skip(o Origin, err error)
	// Close finishes the export and writes the manifest last. After an
	// error no manifest is written: the destination holds an unfinished
	// export, which a new export into it overwrites.
	Close(ctx context.Context) (*Manifest, error)
	// Abort drops what is not yet stored (temporary files) without writing
	// a manifest. It is a no-op after Close.
	Abort()
}

// Manifest describes a finished pairset (pairset.json). Readers ignore
// keys they do not know.
type Manifest struct {
	Format   string    `json:"format"`
	Version  string    `json:"pdmflow_version,omitempty"`
	Created  time.Time `json:"created"`
	Source   string    `json:"source,omitempty"`
	Pairs    int       `json:"pairs"`
	Messages int       `json:"messages"`
	FirstSeq uint64    `json:"first_seq,omitempty"`
	LastSeq  uint64    `json:"last_seq,omitempty"`
	Runs     []string  `json:"runs"`
	// Shapes lists each distinct batch header of the pairs.
	Shapes []Shape `json:"shapes"`
	// Duplicates counts pairs skipped because their sample id came before.
	Duplicates int `json:"duplicates,omitempty"`
	// Skipped lists the messages that could not be decoded.
	Skipped []Skipped `json:"skipped,omitempty"`
	// Files lists the data objects written (Parquet parts; BasicSR's
	// meta_info.txt and provenance parts), each with its SHA-256.
	Files []File `json:"files"`
	// Note says what the layout changed from the stream, if anything.
	Note string `json:"note,omitempty"`
}

// Shape is one batch header met in the export.
type Shape struct {
	Scale       int    `json:"scale"`
	HRH         int    `json:"hr_h"`
	HRW         int    `json:"hr_w"`
	LRH         int    `json:"lr_h"`
	LRW         int    `json:"lr_w"`
	KernelSize  int    `json:"kernel_size"`
	Degradation string `json:"degradation"`
	Device      string `json:"device,omitempty"`
	Pairs       int    `json:"pairs"`
}

// Skipped is a message left out.
type Skipped struct {
	Seq     uint64 `json:"seq"`
	Subject string `json:"subject"`
	Error   string `json:"error"`
}

// File is one data object of a pairset.
type File struct {
	Key    string `json:"key"`
	Rows   int    `json:"rows,omitempty"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// ReadManifest reads and checks the manifest of a finished pairset.
func ReadManifest(ctx context.Context, src *store.Bucket) (*Manifest, error) {
	data, err := src.Get(ctx, ManifestKey)
	if err != nil {
		return nil, fmt.Errorf("pairset: %s: %w", src.URL(), err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("pairset: %s/%s: %w", src.URL(), ManifestKey, err)
	}
	if m.Format != FormatBasicSR && m.Format != FormatParquet {
		return nil, fmt.Errorf("pairset: %s/%s: format %q, want %s or %s", src.URL(), ManifestKey, m.Format, FormatBasicSR, FormatParquet)
	}
	return &m, nil
}

// Name returns the file stem of a sample id in the BasicSR layout:
// "run.producer.BBBBBBBB.IIII" (batch and index zero-padded to 8 and 4
// digits, longer when they need more). It fails on a malformed id.
func Name(sampleID string) (string, error) {
	id, err := schema.ParseSampleID(sampleID)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s.%s.%08d.%04d", id.Run, id.Producer, id.BatchSeq, id.Index), nil
}

// core is the bookkeeping every layout shares: the duplicate filter, the
// manifest's counts and the guard against finishing twice.
type core struct {
	dst    *store.Bucket
	o      Options
	m      Manifest
	seen   map[string]struct{}
	runs   map[string]struct{}
	shapes map[schema.Header]int
	closed bool
}

func newCore(ctx context.Context, dst *store.Bucket, format string, o Options) (*core, error) {
	o.defaults()
	if _, err := dst.Stat(ctx, ManifestKey); err == nil {
		return nil, fmt.Errorf("%w: %s holds %s; export into an empty destination", ErrExists, dst.URL(), ManifestKey)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("pairset: %w", err)
	}
	if o.TempDir != "" {
		if fi, err := os.Stat(o.TempDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("pairset: temporary directory %s: not a directory (%v)", o.TempDir, err)
		}
	}
	return &core{
		dst: dst, o: o,
		m:    Manifest{Format: format, Version: o.Version, Source: o.Source},
		seen: map[string]struct{}{}, runs: map[string]struct{}{}, shapes: map[schema.Header]int{},
	}, nil
}

// admit checks a batch and returns the indices of its new pairs.
func (c *core) admit(o Origin, b *schema.Batch) ([]int, error) {
	if c.closed {
		return nil, ErrClosed
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("pairset: stream seq %d (%s): %w", o.Seq, o.Subject, err)
	}
	c.m.Messages++
	if c.m.FirstSeq == 0 || o.Seq < c.m.FirstSeq {
		c.m.FirstSeq = o.Seq
	}
	c.m.LastSeq = max(c.m.LastSeq, o.Seq)
	keep := make([]int, 0, len(b.Pairs))
	for i := range b.Pairs {
		p := &b.Pairs[i]
		if _, dup := c.seen[p.SampleID]; dup {
			c.m.Duplicates++
			c.o.Log.Warn("pair seen before skipped", "sample_id", p.SampleID, "seq", o.Seq)
			continue
		}
		c.seen[p.SampleID] = struct{}{}
		c.runs[p.RunID] = struct{}{}
		keep = append(keep, i)
	}
	c.shapes[b.Header] += len(keep)
	c.m.Pairs += len(keep)
	return keep, nil
}

func (c *core) skip(o Origin, err error) {
	c.m.Skipped = append(c.m.Skipped, Skipped{Seq: o.Seq, Subject: o.Subject, Error: err.Error()})
	c.o.Log.Warn("undecodable message left out", "seq", o.Seq, "subject", o.Subject, "err", err)
}

// finish writes the manifest, last, with a conditional put.
func (c *core) finish(ctx context.Context) (*Manifest, error) {
	m := &c.m
	if m.Pairs == 0 {
		return nil, fmt.Errorf("pairset: no pairs to write (%d messages, %d skipped, %d duplicates)", m.Messages, len(m.Skipped), m.Duplicates)
	}
	m.Created = time.Now().UTC()
	m.Runs = make([]string, 0, len(c.runs))
	for r := range c.runs {
		m.Runs = append(m.Runs, r)
	}
	slices.Sort(m.Runs)
	m.Shapes = m.Shapes[:0]
	for h, n := range c.shapes {
		if n > 0 {
			m.Shapes = append(m.Shapes, Shape{Scale: h.Scale, HRH: h.HRH, HRW: h.HRW, LRH: h.LRH, LRW: h.LRW,
				KernelSize: h.KernelSize, Degradation: h.Degradation, Device: h.Device, Pairs: n})
		}
	}
	slices.SortFunc(m.Shapes, func(a, b Shape) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("pairset: %w", err)
	}
	if err := c.dst.PutIfAbsent(ctx, ManifestKey, append(data, '\n')); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("%w: %s: another export finished there first", ErrExists, c.dst.URL())
		}
		return nil, fmt.Errorf("pairset: writing the manifest (the export stays unfinished): %w", err)
	}
	c.o.Log.Info("pairset written", "to", c.dst.URL(), "format", m.Format, "pairs", m.Pairs, "files", len(m.Files))
	return m, nil
}
