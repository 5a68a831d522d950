package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/progress"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/store"
)

// exportProgressEvery is how often export prints a progress line (tests
// set it to 0 to see one on a short export).
var exportProgressEvery = 2 * time.Second

func cmdExport(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "export", "export --out DIR|s3://BUCKET/PREFIX [--format archive|basicsr|parquet] [--run ID] [--from-seq N] [--to-seq M] [--since TIME] [--until TIME] [NATS and S3 flags]\n"+
		"       export --format basicsr|parquet --archive DIR|s3://BUCKET/PREFIX --out DIR|s3://BUCKET/PREFIX\n\n"+
		"--format archive (the default) copies messages of the pair stream, byte for byte, into an archive\n"+
		"(a directory or an S3 prefix): messages/SEQ.arrows per message and manifest.json, written last.\n"+
		"The archive feeds replay, regenerate and inspect --archive. --format basicsr writes BasicSR's paired\n"+
		"folders (HR/ and LR/ PNGs, meta_info.txt, provenance/*.jsonl), --format parquet Parquet files with one\n"+
		"row per pair (y_ref exact); both end with pairset.json and read the stream, or an archive (--archive).\n"+
		"docs/datasets.md has their layouts and PyTorch Datasets. Ranges are inclusive; without --to-seq/--until\n"+
		"the export stops at the stream's last message when it starts. TIME is RFC 3339, e.g. 2026-03-01T12:00:00Z.")
	var conn connection
	conn.addFlags(fs)
	out := fs.String("out", "", "where to write the archive: a directory, file://DIR or s3://bucket/prefix (must not hold an archive yet)")
	run := fs.String("run", "", "archive only this run's messages (default: every run in the stream)")
	var o archive.ExportOptions
	fs.Uint64Var(&o.FromSeq, "from-seq", 0, "first stream sequence (default: the stream's first)")
	fs.Uint64Var(&o.ToSeq, "to-seq", 0, "last stream sequence (default: the stream's last when the export starts)")
	since := fs.String("since", "", "first stream timestamp, RFC 3339")
	until := fs.String("until", "", "last stream timestamp, RFC 3339")
	format := fs.String("format", formatArchive, "archive (the exact messages), basicsr (paired PNG folders) or parquet (one row per pair)")
	var pf pairsetFlags
	fs.StringVar(&pf.archive, "archive", "", "basicsr, parquet: read this archive (a directory or s3://bucket/prefix) instead of the stream")
	fs.IntVar(&pf.rowsPerFile, "rows-per-file", 4096, "basicsr, parquet: pairs per Parquet file or provenance part")
	fs.IntVar(&pf.rowGroup, "row-group", 256, "parquet: pairs per row group")
	fs.IntVar(&pf.workers, "workers", 4, "basicsr: PNGs encoded and stored at once")
	fs.StringVar(&pf.tempDir, "temp-dir", "", "basicsr, parquet: where files are written before upload (default: the system's)")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"out": *out}); err != nil {
		return err
	}
	switch *format {
	case formatArchive:
		if pf.archive != "" {
			return fmt.Errorf("%w: --archive is a source for --format basicsr or parquet; to copy an archive, copy its objects", errUsage)
		}
	case formatBasicSR, formatParquet:
		if pf.rowsPerFile < 1 || pf.rowGroup < 1 || pf.workers < 1 {
			return fmt.Errorf("%w: --rows-per-file, --row-group and --workers must be at least 1", errUsage)
		}
		if pf.archive != "" && (*run != "" || o.FromSeq != 0 || o.ToSeq != 0 || *since != "" || *until != "") {
			return fmt.Errorf("%w: --archive exports the whole archive: --run, --from-seq, --to-seq, --since and --until select from the stream", errUsage)
		}
	default:
		return fmt.Errorf("%w: --format %q: want archive, basicsr or parquet", errUsage, *format)
	}
	if *run != "" {
		if err := registry.ValidRunID(*run); err != nil {
			return fmt.Errorf("%w: --run: %v", errUsage, err)
		}
	}
	var err error
	if o.Since, err = exportParseTime("since", *since); err != nil {
		return err
	}
	if o.Until, err = exportParseTime("until", *until); err != nil {
		return err
	}
	if o.ToSeq != 0 && o.FromSeq > o.ToSeq {
		return fmt.Errorf("%w: --from-seq %d is after --to-seq %d", errUsage, o.FromSeq, o.ToSeq)
	}
	if !o.Since.IsZero() && !o.Until.IsZero() && o.Until.Before(o.Since) {
		return fmt.Errorf("%w: --until is before --since", errUsage)
	}
	conn.stream.Run = *run
	if err := conn.resolve(); err != nil {
		return err
	}
	o.Log = e.log

	dst, err := store.Open(ctx, *out, conn.s3)
	if err != nil {
		return err
	}
	defer dst.Close()
	if *format != formatArchive {
		return exportPairset(ctx, e, &conn, *format, dst, o, pf)
	}
	js, _, closeConn, err := exportDial(ctx, e, &conn, "pdmflow-export")
	if err != nil {
		return err
	}
	defer closeConn()
	o.Stream, o.Filter = conn.stream.Name, conn.stream.Subjects()

	meter := &progress.Meter{Out: e.progress, Unit: "messages"}
	meter.Start(0)
	var mu sync.Mutex
	last := time.Now()
	o.Progress = func(done, total int) {
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
	m, err := archive.Export(ctx, js, dst, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "exported in %s\n", progress.Round(time.Since(t0)))
	printManifest(e.stdout, dst.URL(), m)
	return nil
}

// exportParseTime parses an RFC 3339 time flag ("" is the zero time).
func exportParseTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: --%s %q: want an RFC 3339 time such as 2026-03-01T12:00:00Z", errUsage, flag, v)
	}
	return t, nil
}

// exportDial connects to NATS and opens the pair stream, which must exist.
// Unlike connection.dial it never creates or reconfigures the stream:
// export and inspect only read.
func exportDial(ctx context.Context, e *env, conn *connection, name string) (jetstream.JetStream, jetstream.Stream, func(), error) {
	conn.nats.Name = name
	e.log.Info("connecting to NATS", "server", conn.nats.Redacted())
	nc, err := conn.nats.Connect(ctx, e.log)
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	st, err := consumer.OpenStream(ctx, js, conn.stream)
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil, nil, fmt.Errorf("stream %s does not exist on %s, and no stream holds %s (see --stream and --run)", conn.stream.Name, conn.nats.Redacted(), conn.stream.Subjects())
		}
		return nil, nil, nil, err
	}
	conn.useStream(e, st)
	return js, st, func() { _ = nc.Drain() }, nil
}

// printManifest writes an archive's summary: range, content, runs, weights,
// and what could not be decoded.
func printManifest(w io.Writer, url string, m *archive.Manifest) {
	bad := 0
	for _, msg := range m.Messages {
		if msg.Error != "" {
			bad++
		}
	}
	fmt.Fprintf(w, "archive %s (%s, created %s)\n", url, m.Format, m.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "  stream    %s, subjects %s\n", m.Stream, m.Filter)
	fmt.Fprintf(w, "  messages  %d (%d undecodable), %d pairs, %s\n", len(m.Messages), bad, m.Pairs, exportBytes(m.Bytes))
	fmt.Fprintf(w, "  seq       %d..%d, %s .. %s\n", m.FirstSeq, m.LastSeq, m.FirstTime.Format(time.RFC3339Nano), m.LastTime.Format(time.RFC3339Nano))
	if h := m.Header; h != nil {
		kernel := "none"
		if h.KernelSize > 0 {
			kernel = fmt.Sprintf("%dx%d", h.KernelSize, h.KernelSize)
		}
		fmt.Fprintf(w, "  pairs     %s, scale %d, x_ref 3x%dx%d uint8, y_ref 3x%dx%d float32, kernel %s\n", h.Degradation, h.Scale, h.HRH, h.HRW, h.LRH, h.LRW, kernel)
	}
	fmt.Fprintf(w, "  runs      %s\n", exportList(m.Runs))
	var ws []string
	for _, v := range m.Weights {
		ws = append(ws, fmt.Sprintf("%s v%d (sha256 %.12s)", v.Run, v.Version, v.SHA256))
	}
	fmt.Fprintf(w, "  weights   %s\n", exportList(ws))
	// Batches per producer, in order of first appearance.
	type span struct {
		msgs, pairs    int
		first, lastSeq uint64
	}
	var order []string
	spans := map[string]*span{}
	for _, msg := range m.Messages {
		if msg.Error != "" {
			continue
		}
		k := msg.Run + "/" + msg.Producer
		s := spans[k]
		if s == nil {
			s = &span{first: msg.BatchSeq}
			spans[k] = s
			order = append(order, k)
		}
		s.msgs++
		s.pairs += msg.Pairs
		s.lastSeq = msg.BatchSeq
	}
	for _, k := range order {
		s := spans[k]
		fmt.Fprintf(w, "  producer  %s: %d batches (batch seq %d..%d), %d pairs\n", k, s.msgs, s.first, s.lastSeq, s.pairs)
	}
	for _, msg := range m.Messages {
		if msg.Error != "" {
			fmt.Fprintf(w, "  undecodable seq %d (%s): %s\n", msg.Seq, msg.Subject, msg.Error)
		}
	}
}

func exportList(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// exportBytes formats a byte count with a binary unit.
func exportBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
