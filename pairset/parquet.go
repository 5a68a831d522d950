package pairset

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	pqschema "github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

// Parquet writes the Parquet layout (see the package documentation): row
// groups of o.RowGroupRows pairs, files of o.RowsPerFile, zstd-compressed,
// each written to a temporary file and stored when complete.
type Parquet struct {
	c     *core
	root  *pqschema.GroupNode
	props *parquet.WriterProperties
	kv    metadata.KeyValueMetadata

	rows   []prow // the row group being filled
	tmp    *tempFile
	fw     *file.Writer
	inFile int
	part   int
}

// prow is one pair waiting in a row group.
type prow struct {
	o    Origin
	h    *schema.Header
	p    *schema.Pair
	name string
}

// NewParquet starts a Parquet export into dst. It refuses a dst that holds
// a finished pairset (ErrExists).
func NewParquet(ctx context.Context, dst *store.Bucket, o Options) (*Parquet, error) {
	c, err := newCore(ctx, dst, FormatParquet, o)
	if err != nil {
		return nil, err
	}
	fields := make(pqschema.FieldList, len(parquetColumns))
	for i, col := range parquetColumns {
		if fields[i], err = col.node(); err != nil {
			return nil, fmt.Errorf("pairset: column %s: %w", col.name, err)
		}
	}
	root, err := pqschema.NewGroupNode("pair", parquet.Repetitions.Required, fields, -1)
	if err != nil {
		return nil, fmt.Errorf("pairset: %w", err)
	}
	opts := []parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithDictionaryDefault(false),
		parquet.WithMaxRowGroupLength(int64(c.o.RowGroupRows)),
		parquet.WithCreatedBy("pdmflow " + c.o.Version),
	}
	for _, col := range []string{"run_id", "producer_id", "weights_sha256", "source_image", "degradation", "device", "subject"} {
		opts = append(opts, parquet.WithDictionaryFor(col, true))
	}
	kv := metadata.NewKeyValueMetadata()
	if err := kv.Append("pdmflow.format", FormatParquet); err != nil {
		return nil, err
	}
	if err := kv.Append("pdmflow.version", c.o.Version); err != nil {
		return nil, err
	}
	return &Parquet{c: c, root: root, props: parquet.NewWriterProperties(opts...), kv: kv}, nil
}

// Add implements Writer.
func (w *Parquet) Add(ctx context.Context, o Origin, b *schema.Batch) error {
	keep, err := w.c.admit(o, b)
	if err != nil {
		return err
	}
	for _, i := range keep {
		p := &b.Pairs[i]
		name, err := Name(p.SampleID)
		if err != nil {
			return fmt.Errorf("pairset: stream seq %d row %d: %w", o.Seq, i, err)
		}
		w.rows = append(w.rows, prow{o: o, h: &b.Header, p: p, name: name})
		if len(w.rows) == w.c.o.RowGroupRows || w.inFile+len(w.rows) == w.c.o.RowsPerFile {
			if err := w.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush writes the pending rows as one row group, starting a file if none
// is open and storing it once it holds RowsPerFile rows.
func (w *Parquet) flush(ctx context.Context) error {
	if len(w.rows) == 0 {
		return nil
	}
	if w.fw == nil {
		t, err := newTempFile(w.c.o.TempDir, fmt.Sprintf("pairs-%05d.parquet", w.part))
		if err != nil {
			return err
		}
		w.tmp, w.inFile = t, 0
		w.fw = file.NewParquetWriter(t, w.root, file.WithWriterProps(w.props), file.WithWriteMetadata(w.kv))
	}
	if err := writeRowGroup(w.fw, w.rows); err != nil {
		return fmt.Errorf("pairset: %s: %w", w.tmp.key, err)
	}
	w.inFile += len(w.rows)
	clear(w.rows)
	w.rows = w.rows[:0]
	if w.inFile >= w.c.o.RowsPerFile {
		return w.storeFile(ctx)
	}
	return nil
}

func (w *Parquet) storeFile(ctx context.Context) error {
	fw, t := w.fw, w.tmp
	w.fw, w.tmp = nil, nil
	w.part++
	if err := fw.Close(); err != nil {
		t.remove()
		return fmt.Errorf("pairset: %s: %w", t.key, err)
	}
	f, err := t.upload(ctx, w.c.dst, w.inFile)
	if err != nil {
		return err
	}
	w.c.m.Files = append(w.c.m.Files, f)
	return nil
}

// Skip implements Writer.
func (w *Parquet) Skip(o Origin, err error) { w.c.skip(o, err) }

// Close implements Writer: it writes the last row group and file, then the
// manifest.
func (w *Parquet) Close(ctx context.Context) (*Manifest, error) {
	if w.c.closed {
		return nil, ErrClosed
	}
	defer w.Abort()
	if err := w.flush(ctx); err != nil {
		return nil, err
	}
	if w.fw != nil {
		if err := w.storeFile(ctx); err != nil {
			return nil, err
		}
	}
	w.c.closed = true
	return w.c.finish(ctx)
}

// Abort implements Writer.
func (w *Parquet) Abort() {
	w.c.closed = true
	if w.tmp != nil {
		w.tmp.remove()
		w.tmp, w.fw = nil, nil
	}
}

// writeRowGroup writes rows as one row group, column after column.
func writeRowGroup(fw *file.Writer, rows []prow) error {
	rg, err := fw.AppendRowGroupChecked()
	if err != nil {
		return err
	}
	for _, col := range parquetColumns {
		cw, err := rg.NextColumn()
		if err != nil {
			return fmt.Errorf("column %s: %w", col.name, err)
		}
		if err := col.write(cw, rows); err != nil {
			return fmt.Errorf("column %s: %w", col.name, err)
		}
	}
	return rg.Close()
}
