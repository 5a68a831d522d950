package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

const inspectSynopsis = `inspect [--archive URL] [--sample ID]... [--seq N [--index I|all]] [--png DIR] [--json] [NATS and S3 flags]

What it shows depends on the flags:

  (no --archive, no sample)  the live stream: messages, bytes, first and last
                             sequence and time, messages per run/producer,
                             and every consumer's delivered sequence, ack
                             floor, pending and ack-pending counts
  --archive URL              an archive's summary (--json: its manifest;
                             --verify: also check every message's SHA-256)
  --sample ID                one sample's metadata as JSON: every scalar column,
  --seq N [--index I|all]    shapes, y_ref min/max/mean, kernel sum and
                             centroid. ID is RUN/PRODUCER/BATCHSEQ/INDEX;
                             --seq picks a stream sequence and --index its
                             row (default 0, "all" for every row). The sample
                             comes from --archive when given, else from the
                             live stream. --sample may be repeated.
  --png DIR                  with a sample: also write ID.x_ref.png (HR),
                             ID.y_ref.png (LR, clamped to [0,1]) and
                             ID.kernel.png (scaled to its maximum, magnified
                             --zoom times) into DIR`

// inspectIDs collects repeated --sample flags.
type inspectIDs []string

func (s *inspectIDs) String() string { return strings.Join(*s, ",") }

// Type names the value in help.
func (s *inspectIDs) Type() string { return "ids" }

func (s *inspectIDs) Set(v string) error {
	if v == "" {
		return errors.New("empty sample id")
	}
	*s = append(*s, v)
	return nil
}

type inspectOptions struct {
	archiveURL string
	samples    inspectIDs
	seq        uint64
	index      string
	png        string
	zoom       int
	json       bool
	verify     bool
}

func cmdInspect(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "inspect", inspectSynopsis)
	var conn connection
	conn.addFlags(fs)
	var o inspectOptions
	fs.StringVar(&o.archiveURL, "archive", "", "an archive (directory, file://DIR or s3://bucket/prefix) instead of the live stream")
	fs.Var(&o.samples, "sample", "sample id RUN/PRODUCER/BATCHSEQ/INDEX (repeatable)")
	fs.Uint64Var(&o.seq, "seq", 0, "stream sequence of a message to show a row of")
	fs.StringVar(&o.index, "index", "", `row of the --seq message, or "all" (default 0)`)
	fs.StringVar(&o.png, "png", "", "with a sample: write its x_ref, y_ref and kernel as PNGs into this directory")
	countVar(fs, &o.zoom, "zoom", 8, "magnification of the kernel PNG (at most 64)")
	fs.BoolVar(&o.json, "json", false, "stream or archive summary as JSON")
	fs.BoolVar(&o.verify, "verify", false, "with --archive and no sample: read every message and check its size and SHA-256")
	fs.StringVar(&conn.stream.Run, "run", "", "the run whose stream to read (default: the run of the first --sample, else the stream of every run)")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	picking := len(o.samples) > 0 || o.seq > 0
	switch {
	case o.index != "" && o.seq == 0:
		return fmt.Errorf("%w: --index needs --seq", errUsage)
	case o.png != "" && !picking:
		return fmt.Errorf("%w: --png needs --sample or --seq", errUsage)
	case o.verify && (o.archiveURL == "" || picking):
		return fmt.Errorf("%w: --verify goes with --archive and no sample", errUsage)
	case o.zoom < 1 || o.zoom > 64:
		return fmt.Errorf("%w: --zoom must be 1..64", errUsage)
	}
	rows := []int{0}
	if o.index == "all" {
		rows = nil
	} else if o.index != "" {
		i, err := strconv.Atoi(o.index)
		if err != nil || i < 0 {
			return fmt.Errorf("%w: --index %q: want a row number or \"all\"", errUsage, o.index)
		}
		rows = []int{i}
	}
	if conn.stream.Run == "" && len(o.samples) > 0 {
		if id, err := schema.ParseSampleID(o.samples[0]); err == nil {
			conn.stream.Run = id.Run
		}
	}
	if err := conn.resolve(); err != nil {
		return err
	}
	if o.png != "" {
		if err := os.MkdirAll(o.png, 0o755); err != nil {
			return err
		}
	}

	var src sampleSource
	if o.archiveURL != "" {
		st, err := store.Open(ctx, o.archiveURL, conn.s3)
		if err != nil {
			return err
		}
		defer st.Close()
		r, err := archive.Open(ctx, st)
		if err != nil {
			return err
		}
		if !picking {
			return inspectArchive(ctx, e, st.URL(), r, o)
		}
		src = &archiveSamples{r: r, url: st.URL()}
	} else {
		js, st, closeConn, err := exportDial(ctx, e, &conn, "pdmflow-inspect")
		if err != nil {
			return err
		}
		defer closeConn()
		if !picking {
			return inspectStream(ctx, e, st, conn.stream.Subject, o.json)
		}
		src = &streamSamples{js: js, st: st, prefix: conn.stream.Subject}
	}

	var found []sample
	for _, id := range o.samples {
		s, err := src.byID(ctx, id)
		if err != nil {
			return err
		}
		found = append(found, s)
	}
	if o.seq > 0 {
		s, err := src.bySeq(ctx, o.seq, rows)
		if err != nil {
			return err
		}
		found = append(found, s...)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	for _, s := range found {
		info := describe(s)
		if o.png != "" {
			files, err := writePNGs(o.png, s, o.zoom)
			if err != nil {
				return err
			}
			info.PNG = files
		}
		if err := enc.Encode(info); err != nil {
			return err
		}
	}
	return nil
}

// sample is one row of a decoded message and where it came from.
type sample struct {
	source  string // "archive URL" or "stream NAME"
	seq     uint64
	subject string
	time    time.Time
	header  schema.Header
	pair    schema.Pair
}

// sampleSource finds samples in an archive or the live stream.
type sampleSource interface {
	byID(ctx context.Context, id string) (sample, error)
	bySeq(ctx context.Context, seq uint64, rows []int) ([]sample, error) // rows nil: all
}

var (
	_ sampleSource = (*archiveSamples)(nil)
	_ sampleSource = (*streamSamples)(nil)
)

// pickRows returns the rows of b at rows (nil: all), checking the range.
func pickRows(b *schema.Batch, rows []int, seq uint64) ([]schema.Pair, error) {
	if rows == nil {
		return b.Pairs, nil
	}
	var out []schema.Pair
	for _, r := range rows {
		if r >= len(b.Pairs) {
			return nil, fmt.Errorf("seq %d has %d rows, no row %d", seq, len(b.Pairs), r)
		}
		out = append(out, b.Pairs[r])
	}
	return out, nil
}

type archiveSamples struct {
	r   *archive.Reader
	url string
}

func (a *archiveSamples) at(ctx context.Context, i int, rows []int) ([]sample, error) {
	msg := a.r.Manifest().Messages[i]
	b, err := a.r.Batch(ctx, i)
	if err != nil {
		return nil, err
	}
	pairs, err := pickRows(b, rows, msg.Seq)
	if err != nil {
		return nil, err
	}
	var out []sample
	for _, p := range pairs {
		out = append(out, sample{source: "archive " + a.url, seq: msg.Seq, subject: msg.Subject, time: msg.Time, header: b.Header, pair: p})
	}
	return out, nil
}

func (a *archiveSamples) byID(ctx context.Context, id string) (sample, error) {
	i, row, err := a.r.FindSample(id)
	if err != nil {
		return sample{}, err
	}
	s, err := a.at(ctx, i, []int{row})
	if err != nil {
		return sample{}, err
	}
	return s[0], nil
}

func (a *archiveSamples) bySeq(ctx context.Context, seq uint64, rows []int) ([]sample, error) {
	msgs := a.r.Manifest().Messages
	i, ok := slices.BinarySearchFunc(msgs, seq, func(m archive.Message, s uint64) int {
		switch {
		case m.Seq < s:
			return -1
		case m.Seq > s:
			return 1
		}
		return 0
	})
	if !ok {
		return nil, fmt.Errorf("%w: seq %d is not in %s (it holds %d..%d)", archive.ErrNotFound, seq, a.url, a.r.Manifest().FirstSeq, a.r.Manifest().LastSeq)
	}
	return a.at(ctx, i, rows)
}

type streamSamples struct {
	js     jetstream.JetStream
	st     jetstream.Stream
	prefix string
}

func (s *streamSamples) bySeq(ctx context.Context, seq uint64, rows []int) ([]sample, error) {
	raw, err := s.st.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("stream %s seq %d: %w", s.st.CachedInfo().Config.Name, seq, err)
	}
	b, err := schema.Decode(raw.Data, schema.DecodeOptions{})
	if err != nil {
		return nil, fmt.Errorf("stream %s seq %d (%s): %w", s.st.CachedInfo().Config.Name, seq, raw.Subject, err)
	}
	pairs, err := pickRows(b, rows, seq)
	if err != nil {
		return nil, err
	}
	var out []sample
	for _, p := range pairs {
		out = append(out, sample{source: "stream " + s.st.CachedInfo().Config.Name, seq: seq, subject: raw.Subject, time: raw.Time.UTC(), header: b.Header, pair: p})
	}
	return out, nil
}

// byID finds the first message of the sample's producer whose batch
// sequence header matches (the copy a trainer kept), reading headers only,
// then gets that message.
func (s *streamSamples) byID(ctx context.Context, id string) (sample, error) {
	sid, err := schema.ParseSampleID(id)
	if err != nil {
		return sample{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	parts := []string{sid.Run, sid.Producer}
	batchSeq, index := sid.BatchSeq, sid.Index
	subject := producer.SubjectFor(s.prefix, parts[0], parts[1])
	seq, err := s.findBatch(ctx, subject, batchSeq)
	if err != nil {
		return sample{}, err
	}
	found, err := s.bySeq(ctx, seq, nil)
	if err != nil {
		return sample{}, err
	}
	for _, f := range found {
		if f.pair.RunID == parts[0] && f.pair.ProducerID == parts[1] && f.pair.BatchSeq == batchSeq && f.pair.Index == index {
			return f, nil
		}
	}
	return sample{}, fmt.Errorf("%w: seq %d holds batch %d of %s with %d rows, no row %d", archive.ErrNotFound, seq, batchSeq, subject, len(found), index)
}

func (s *streamSamples) findBatch(ctx context.Context, subject string, batchSeq uint64) (uint64, error) {
	name := s.st.CachedInfo().Config.Name
	cons, err := s.js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, HeadersOnly: true})
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	defer func() {
		it.Stop()
		if ci := cons.CachedInfo(); ci != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = s.js.DeleteConsumer(dctx, name, ci.Name)
			cancel()
		}
	}()
	notFound := fmt.Errorf("%w: no message on %s in stream %s carries batch %d (%s header)", archive.ErrNotFound, subject, name, batchSeq, producer.HeaderBatchSeq)
	ci, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	if ci.Delivered.Consumer == 0 && ci.NumPending == 0 {
		return 0, notFound
	}
	want := strconv.FormatUint(batchSeq, 10)
	for {
		nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return 0, fmt.Errorf("stream %s: reading %s: %w", name, subject, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return 0, err
		}
		if msg.Headers().Get(producer.HeaderBatchSeq) == want {
			return meta.Sequence.Stream, nil
		}
		if meta.NumPending == 0 {
			return 0, notFound
		}
	}
}

// sampleInfo is what inspect prints about a sample.
type sampleInfo struct {
	SampleID       string    `json:"sample_id"`
	Source         string    `json:"source"`
	StreamSeq      uint64    `json:"stream_seq"`
	Subject        string    `json:"subject"`
	Time           time.Time `json:"time"`
	RunID          string    `json:"run_id"`
	ProducerID     string    `json:"producer_id"`
	BatchSeq       uint64    `json:"batch_seq"`
	Index          uint32    `json:"index"`
	Seed           uint64    `json:"seed"`
	WeightsVersion uint64    `json:"weights_version"`
	WeightsSHA256  string    `json:"weights_sha256"`
	SourceImage    string    `json:"source_image"`
	CropX          int32     `json:"crop_x"`
	CropY          int32     `json:"crop_y"`
	CropW          int32     `json:"crop_w"`
	CropH          int32     `json:"crop_h"`
	Dihedral       uint8     `json:"dihedral"`
	NoiseMean      float32   `json:"noise_mean"`
	NoiseStd       float32   `json:"noise_std"`
	Degradation    string    `json:"degradation"`
	Scale          int       `json:"scale"`
	XRefShape      []int     `json:"x_ref_shape"`
	YRefShape      []int     `json:"y_ref_shape"`
	KernelShape    []int     `json:"kernel_shape"` // null without kernels
	YRef           struct {
		Min  float64 `json:"min"`
		Max  float64 `json:"max"`
		Mean float64 `json:"mean"`
		// Outside counts the values below 0 or above 1 (clamped in the PNG).
		Outside int `json:"outside_0_1"`
	} `json:"y_ref"`
	Kernel *kernelInfo       `json:"kernel"` // null without kernels
	PNG    map[string]string `json:"png,omitempty"`
}

// kernelInfo summarises a blur kernel. The centroid is in kernel cells from
// the top-left one; a centred kernel of side k has it at ((k-1)/2, (k-1)/2).
type kernelInfo struct {
	Sum       float64 `json:"sum"`
	Max       float64 `json:"max"`
	CentroidX float64 `json:"centroid_x"`
	CentroidY float64 `json:"centroid_y"`
}

func describe(s sample) sampleInfo {
	p, h := s.pair, s.header
	in := sampleInfo{
		SampleID: p.SampleID, Source: s.source, StreamSeq: s.seq, Subject: s.subject, Time: s.time,
		RunID: p.RunID, ProducerID: p.ProducerID, BatchSeq: p.BatchSeq, Index: p.Index, Seed: p.Seed,
		WeightsVersion: p.WeightsVersion, WeightsSHA256: p.WeightsSHA256, SourceImage: p.SourceImage,
		CropX: p.CropX, CropY: p.CropY, CropW: p.CropW, CropH: p.CropH, Dihedral: p.Dihedral,
		NoiseMean: p.NoiseMean, NoiseStd: p.NoiseStd, Degradation: h.Degradation, Scale: h.Scale,
		XRefShape: []int{3, h.HRH, h.HRW}, YRefShape: []int{3, h.LRH, h.LRW},
	}
	// Decode guarantees finite y_ref values and at least one of them.
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, v := range p.YRef {
		f := float64(v)
		lo, hi, sum = min(lo, f), max(hi, f), sum+f
		if f < 0 || f > 1 {
			in.YRef.Outside++
		}
	}
	in.YRef.Min, in.YRef.Max, in.YRef.Mean = lo, hi, sum/float64(len(p.YRef))
	if k := h.KernelSize; k > 0 && len(p.Kernel) == k*k {
		in.KernelShape = []int{k, k}
		ki := &kernelInfo{}
		var cx, cy float64
		for i, v := range p.Kernel {
			f := float64(v)
			ki.Sum += f
			ki.Max = max(ki.Max, f)
			cx += f * float64(i%k)
			cy += f * float64(i/k)
		}
		if ki.Sum > 0 {
			ki.CentroidX, ki.CentroidY = cx/ki.Sum, cy/ki.Sum
		}
		in.Kernel = ki
	}
	return in
}

// pngName maps a sample id onto a file name stem, "RUN_PRODUCER_BATCH_INDEX".
// Only an id that parses (schema.ParseSampleID: ids of A-Z a-z 0-9 _ -,
// decimal numbers) gets one, so the stem is never a path, "." or "..".
func pngName(id string) (string, error) {
	s, err := schema.ParseSampleID(id)
	if err != nil {
		return "", fmt.Errorf("--png: %w", err)
	}
	return fmt.Sprintf("%s_%s_%d_%d", s.Run, s.Producer, s.BatchSeq, s.Index), nil
}

// writePNGs writes a sample's x_ref, y_ref and kernel into dir and returns
// the files by name.
func writePNGs(dir string, s sample, zoom int) (map[string]string, error) {
	h, p := s.header, s.pair
	name, err := pngName(p.SampleID)
	if err != nil {
		return nil, err
	}
	stem := filepath.Join(dir, name)
	if filepath.Dir(stem) != filepath.Clean(dir) {
		return nil, fmt.Errorf("--png: sample id %q does not make a file name in %s", p.SampleID, dir)
	}
	files := map[string]string{}
	x := &imageio.Image{W: h.HRW, H: h.HRH, Pix: p.XRef} // both planar CHW RGB
	if err := x.Save(stem + ".x_ref.png"); err != nil {
		return nil, err
	}
	files["x_ref"] = stem + ".x_ref.png"
	if err := imageio.FromPlanarFloat(h.LRW, h.LRH, p.YRef).Save(stem + ".y_ref.png"); err != nil {
		return nil, err
	}
	files["y_ref"] = stem + ".y_ref.png"
	if k := h.KernelSize; k > 0 && len(p.Kernel) == k*k {
		if err := kernelImage(p.Kernel, k, zoom).Save(stem + ".kernel.png"); err != nil {
			return nil, err
		}
		files["kernel"] = stem + ".kernel.png"
	}
	return files, nil
}

// kernelImage draws a k x k kernel in gray, scaled so that its maximum is
// white, each cell magnified to zoom x zoom pixels.
func kernelImage(kern []float32, k, zoom int) *imageio.Image {
	var mx float32
	for _, v := range kern {
		mx = max(mx, v)
	}
	if mx <= 0 {
		mx = 1
	}
	n := k * zoom
	im := &imageio.Image{W: n, H: n, Pix: make([]uint8, 3*n*n)}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			v := uint8(min(255, math.Round(float64(255*kern[(y/zoom)*k+x/zoom]/mx))))
			for c := 0; c < 3; c++ {
				im.Pix[(c*n+y)*n+x] = v
			}
		}
	}
	return im
}

// inspectArchive prints an archive's summary (or its manifest as JSON),
// after checking every message with --verify.
func inspectArchive(ctx context.Context, e *env, url string, r *archive.Reader, o inspectOptions) error {
	m := r.Manifest()
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(m); err != nil {
			return err
		}
	} else {
		printManifest(e.stdout, url, m)
	}
	if !o.verify {
		return nil
	}
	var bad []string
	for i := range m.Messages {
		if _, err := r.Read(ctx, i); err != nil {
			if !errors.Is(err, archive.ErrCorrupt) && !errors.Is(err, archive.ErrIncomplete) {
				return err
			}
			bad = append(bad, err.Error())
		}
	}
	if len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintln(e.stderr, b)
		}
		return fmt.Errorf("%d of %d messages fail verification", len(bad), len(m.Messages))
	}
	fmt.Fprintf(e.stderr, "verified: all %d messages match their size and SHA-256\n", len(m.Messages))
	return nil
}

// streamState is what inspect shows of the live stream.
type streamState struct {
	Stream    string          `json:"stream"`
	Subjects  []string        `json:"subjects"`
	Messages  uint64          `json:"messages"`
	Bytes     uint64          `json:"bytes"`
	FirstSeq  uint64          `json:"first_seq"`
	FirstTime time.Time       `json:"first_time"`
	LastSeq   uint64          `json:"last_seq"`
	LastTime  time.Time       `json:"last_time"`
	Deleted   int             `json:"deleted"`
	MaxBytes  int64           `json:"max_bytes"`
	MaxAge    time.Duration   `json:"max_age"`
	PerRun    []subjectCount  `json:"per_producer"`
	Consumers []consumerState `json:"consumers"`
}

type subjectCount struct {
	Run      string `json:"run"`
	Producer string `json:"producer"`
	Subject  string `json:"subject"`
	Messages uint64 `json:"messages"`
}

type consumerState struct {
	Name        string `json:"name"`
	Durable     bool   `json:"durable"`
	Filter      string `json:"filter"`
	Delivered   uint64 `json:"delivered_seq"` // last stream sequence delivered
	AckFloor    uint64 `json:"ack_floor_seq"` // every stream sequence up to it is acked
	Pending     uint64 `json:"pending"`       // matching messages not delivered yet
	AckPending  int    `json:"ack_pending"`   // delivered, not acked yet
	Redelivered int    `json:"redelivered"`
	Waiting     int    `json:"waiting"` // pull requests waiting
}

func inspectStream(ctx context.Context, e *env, st jetstream.Stream, prefix string, asJSON bool) error {
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+".>"))
	if err != nil {
		return fmt.Errorf("stream info: %w", err)
	}
	s := streamState{
		Stream: info.Config.Name, Subjects: info.Config.Subjects,
		Messages: info.State.Msgs, Bytes: info.State.Bytes,
		FirstSeq: info.State.FirstSeq, FirstTime: info.State.FirstTime.UTC(),
		LastSeq: info.State.LastSeq, LastTime: info.State.LastTime.UTC(),
		Deleted: info.State.NumDeleted, MaxBytes: info.Config.MaxBytes, MaxAge: info.Config.MaxAge,
		PerRun: []subjectCount{}, Consumers: []consumerState{},
	}
	for subj, n := range info.State.Subjects {
		sc := subjectCount{Subject: subj, Messages: n}
		if rest, ok := strings.CutPrefix(subj, prefix+"."); ok {
			sc.Run, sc.Producer, _ = strings.Cut(rest, ".")
		}
		s.PerRun = append(s.PerRun, sc)
	}
	sort.Slice(s.PerRun, func(i, j int) bool { return s.PerRun[i].Subject < s.PerRun[j].Subject })
	lister := st.ListConsumers(ctx)
	for ci := range lister.Info() {
		filter := ci.Config.FilterSubject
		if filter == "" {
			filter = strings.Join(ci.Config.FilterSubjects, ",")
		}
		s.Consumers = append(s.Consumers, consumerState{
			Name: ci.Name, Durable: ci.Config.Durable != "", Filter: filter,
			Delivered: ci.Delivered.Stream, AckFloor: ci.AckFloor.Stream, Pending: ci.NumPending,
			AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered, Waiting: ci.NumWaiting,
		})
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("listing consumers: %w", err)
	}
	sort.Slice(s.Consumers, func(i, j int) bool { return s.Consumers[i].Name < s.Consumers[j].Name })
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	printStream(e.stdout, s)
	return nil
}

func printStream(w io.Writer, s streamState) {
	limit := "no byte limit"
	if s.MaxBytes > 0 {
		limit = "limit " + exportBytes(s.MaxBytes)
	}
	if s.MaxAge > 0 {
		limit += ", max age " + s.MaxAge.String()
	}
	fmt.Fprintf(w, "stream %s (subjects %s; %s)\n", s.Stream, strings.Join(s.Subjects, ", "), limit)
	fmt.Fprintf(w, "  messages  %d, %s, %d deleted\n", s.Messages, exportBytes(int64(s.Bytes)), s.Deleted)
	if s.Messages > 0 {
		fmt.Fprintf(w, "  seq       %d..%d, %s .. %s\n", s.FirstSeq, s.LastSeq, s.FirstTime.Format(time.RFC3339Nano), s.LastTime.Format(time.RFC3339Nano))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(s.PerRun) > 0 {
		fmt.Fprintln(w, "per run/producer:")
		fmt.Fprintln(tw, "  RUN\tPRODUCER\tMESSAGES\tSUBJECT")
		for _, sc := range s.PerRun {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", sc.Run, sc.Producer, sc.Messages, sc.Subject)
		}
		tw.Flush()
	}
	if len(s.Consumers) == 0 {
		fmt.Fprintln(w, "no consumers")
		return
	}
	fmt.Fprintln(w, "consumers:")
	fmt.Fprintln(tw, "  NAME\tDELIVERED\tACK FLOOR\tPENDING\tACK PENDING\tREDELIVERED\tFILTER")
	for _, c := range s.Consumers {
		name := c.Name
		if !c.Durable {
			name += " (ephemeral)"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%s\n", name, c.Delivered, c.AckFloor, c.Pending, c.AckPending, c.Redelivered, c.Filter)
	}
	tw.Flush()
}
