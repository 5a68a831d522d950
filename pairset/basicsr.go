package pairset

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"sync"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

// Keys of the BasicSR layout.
const (
	BasicSRHRDir = "HR"
	BasicSRLRDir = "LR"
	BasicSRMeta  = "meta_info.txt"
)

// basicSRNote is the manifest's word on what the layout changed.
const basicSRNote = "LR PNGs hold y_ref clamped to [0, 1], times 255 and rounded to 8 bits; the stream and the Parquet layout keep y_ref unrounded"

// BasicSR writes BasicSR's paired folder layout (see the package
// documentation). Images are encoded and stored by o.Workers goroutines.
type BasicSR struct {
	c    *core
	meta *tempFile
	prov *tempFile
	rows int // lines in prov
	part int

	ctx    context.Context
	cancel context.CancelCauseFunc
	jobs   chan imageJob
	wg     sync.WaitGroup
}

type imageJob struct {
	key string
	im  *imageio.Image
}

// NewBasicSR starts a BasicSR export into dst. It refuses a dst that holds
// a finished pairset (ErrExists).
func NewBasicSR(ctx context.Context, dst *store.Bucket, o Options) (*BasicSR, error) {
	c, err := newCore(ctx, dst, FormatBasicSR, o)
	if err != nil {
		return nil, err
	}
	c.m.Note = basicSRNote
	meta, err := newTempFile(c.o.TempDir, BasicSRMeta)
	if err != nil {
		return nil, err
	}
	w := &BasicSR{c: c, meta: meta, jobs: make(chan imageJob, 2*c.o.Workers)}
	w.ctx, w.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	for range c.o.Workers {
		w.wg.Go(w.work)
	}
	return w, nil
}

// work encodes and stores images until jobs closes; the first failure
// cancels the export.
func (w *BasicSR) work() {
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	var buf bytes.Buffer
	for j := range w.jobs {
		if w.ctx.Err() != nil {
			continue
		}
		buf.Reset()
		if err := enc.Encode(&buf, j.im.ToNRGBA()); err != nil {
			w.cancel(fmt.Errorf("pairset: encoding %s: %w", j.key, err))
			continue
		}
		if err := w.c.dst.Put(w.ctx, j.key, bytes.Clone(buf.Bytes())); err != nil {
			w.cancel(fmt.Errorf("pairset: storing %s (the export stays unfinished): %w", j.key, err))
		}
	}
}

// Add implements Writer.
func (w *BasicSR) Add(ctx context.Context, o Origin, b *schema.Batch) error {
	keep, err := w.c.admit(o, b)
	if err != nil {
		return err
	}
	h := &b.Header
	for _, i := range keep {
		p := &b.Pairs[i]
		name, err := Name(p.SampleID)
		if err != nil {
			return fmt.Errorf("pairset: stream seq %d row %d: %w", o.Seq, i, err)
		}
		file := name + ".png"
		hr := &imageio.Image{W: h.HRW, H: h.HRH, Pix: p.XRef}
		lr := imageio.FromPlanarFloat(h.LRW, h.LRH, p.YRef)
		for _, j := range []imageJob{{BasicSRHRDir + "/" + file, hr}, {BasicSRLRDir + "/" + file, lr}} {
			select {
			case w.jobs <- j:
			case <-w.ctx.Done():
				return context.Cause(w.ctx)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		fmt.Fprintf(w.meta, "%s (%d,%d,3)\n", file, h.HRH, h.HRW)
		if err := w.provenance(ctx, newProvenance(o, h, p, name)); err != nil {
			return err
		}
	}
	return context.Cause(w.ctx)
}

// provenance appends one line to the current part, starting or storing
// parts as they fill.
func (w *BasicSR) provenance(ctx context.Context, p provenance) error {
	if w.prov == nil {
		t, err := newTempFile(w.c.o.TempDir, fmt.Sprintf("provenance/%05d.jsonl", w.part))
		if err != nil {
			return err
		}
		w.prov, w.rows = t, 0
	}
	line, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("pairset: provenance of %s: %w", p.SampleID, err)
	}
	if _, err := w.prov.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("pairset: writing %s: %w", w.prov.key, err)
	}
	w.rows++
	if w.rows >= w.c.o.RowsPerFile {
		return w.storePart(ctx)
	}
	return nil
}

func (w *BasicSR) storePart(ctx context.Context) error {
	f, err := w.prov.upload(ctx, w.c.dst, w.rows)
	w.prov = nil
	w.part++
	if err != nil {
		return err
	}
	w.c.m.Files = append(w.c.m.Files, f)
	return nil
}

// Skip implements Writer.
func (w *BasicSR) Skip(o Origin, err error) { w.c.skip(o, err) }

// Close implements Writer: it waits for the images, stores the last
// provenance part and meta_info.txt, then the manifest.
func (w *BasicSR) Close(ctx context.Context) (*Manifest, error) {
	if w.c.closed {
		return nil, ErrClosed
	}
	w.c.closed = true
	close(w.jobs)
	w.wg.Wait()
	defer w.Abort()
	if err := context.Cause(w.ctx); err != nil {
		return nil, err
	}
	if w.prov != nil {
		if err := w.storePart(ctx); err != nil {
			return nil, err
		}
	}
	if w.c.m.Pairs > 0 {
		f, err := w.meta.upload(ctx, w.c.dst, w.c.m.Pairs)
		if err != nil {
			return nil, err
		}
		w.c.m.Files = append(w.c.m.Files, f)
	}
	return w.c.finish(ctx)
}

// Abort implements Writer.
func (w *BasicSR) Abort() {
	if !w.c.closed {
		w.c.closed = true
		w.cancel(ErrClosed)
		close(w.jobs)
		w.wg.Wait()
	}
	w.meta.remove()
	if w.prov != nil {
		w.prov.remove()
	}
}
