package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/internal/progress"
	"github.com/pdmflow/pdmflow/pairset"
	"github.com/pdmflow/pdmflow/store"
)

// Export formats (--format).
const (
	formatArchive = "archive"
	formatBasicSR = "basicsr"
	formatParquet = "parquet"
)

// pairsetFlags are export's settings of a dataset export.
type pairsetFlags struct {
	archive     string // read this archive instead of the stream
	rowsPerFile int
	rowGroup    int
	workers     int
	tempDir     string
}

// newPairsetWriter opens the writer of format into dst.
func newPairsetWriter(ctx context.Context, format string, dst *store.Bucket, o pairset.Options) (pairset.Writer, error) {
	if format == formatBasicSR {
		return pairset.NewBasicSR(ctx, dst, o)
	}
	return pairset.NewParquet(ctx, dst, o)
}

// exportPairset writes the pairs of the stream range o (or of the archive
// pf.archive) into dst as a dataset of format.
func exportPairset(ctx context.Context, e *env, conn *connection, format string, dst *store.Bucket, o archive.ExportOptions, pf pairsetFlags) error {
	po := pairset.Options{Version: version, TempDir: pf.tempDir, RowsPerFile: pf.rowsPerFile, RowGroupRows: pf.rowGroup, Workers: pf.workers, Log: e.log}
	meter := &progress.Meter{Out: e.progress, Unit: "messages"}
	meter.Start(0)
	var mu sync.Mutex
	last := time.Now()
	prog := func(done, total int) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < exportProgressEvery || done == total {
			return
		}
		last = time.Now()
		meter.Total = total
		meter.Print(done, "")
	}
	t0 := time.Now()
	var m *pairset.Manifest
	if pf.archive != "" {
		src, err := store.Open(ctx, pf.archive, conn.s3)
		if err != nil {
			return err
		}
		defer src.Close()
		r, err := archive.Open(ctx, src)
		if err != nil {
			return err
		}
		po.Source = "archive " + src.URL()
		w, err := newPairsetWriter(ctx, format, dst, po)
		if err != nil {
			return err
		}
		if m, err = pairset.FromArchive(ctx, r, w, prog); err != nil {
			return err
		}
	} else {
		js, _, closeConn, err := exportDial(ctx, e, conn, "pdmflow-export")
		if err != nil {
			return err
		}
		defer closeConn()
		o.Stream, o.Filter = conn.stream.Name, conn.stream.Subjects()
		po.Source = fmt.Sprintf("stream %s, subjects %s", o.Stream, o.Filter)
		w, err := newPairsetWriter(ctx, format, dst, po)
		if err != nil {
			return err
		}
		so := archive.ScanOptions{Stream: o.Stream, Filter: o.Filter, FromSeq: o.FromSeq, ToSeq: o.ToSeq, Since: o.Since, Until: o.Until, Log: e.log}
		if m, err = pairset.FromStream(ctx, js, so, w, prog); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "exported in %s\n", progress.Round(time.Since(t0)))
	printPairsetManifest(e.stdout, dst.URL(), m)
	return nil
}

// printPairsetManifest writes a dataset export's summary.
func printPairsetManifest(w io.Writer, url string, m *pairset.Manifest) {
	fmt.Fprintf(w, "pairset %s (%s)\n", url, m.Format)
	fmt.Fprintf(w, "  source    %s\n", m.Source)
	fmt.Fprintf(w, "  pairs     %d from %d messages (seq %d..%d), %d duplicates skipped\n", m.Pairs, m.Messages, m.FirstSeq, m.LastSeq, m.Duplicates)
	for _, s := range m.Shapes {
		fmt.Fprintf(w, "  shape     %s x%d, HR %dx%d, LR %dx%d, kernel %d: %d pairs\n", s.Degradation, s.Scale, s.HRH, s.HRW, s.LRH, s.LRW, s.KernelSize, s.Pairs)
	}
	fmt.Fprintf(w, "  runs      %s\n", exportList(m.Runs))
	var bytes int64
	for _, f := range m.Files {
		bytes += f.Bytes
	}
	fmt.Fprintf(w, "  files     %d data files, %s\n", len(m.Files), exportBytes(bytes))
	for _, s := range m.Skipped {
		fmt.Fprintf(w, "  undecodable seq %d (%s): %s\n", s.Seq, s.Subject, s.Error)
	}
	if m.Note != "" {
		fmt.Fprintf(w, "  note      %s\n", m.Note)
	}
}
