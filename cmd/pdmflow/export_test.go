package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/internal/s3test"
	"github.com/pdmflow/pdmflow/internal/syncbuf"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/trainer"
)

// xpKernel is the 5x5 kernel of every fixture row: 0.75 at (x 3, y 2) and
// 0.25 at (x 1, y 2), so its centroid is (2.5, 2) and its maximum 0.75.
func xpKernel() []float32 {
	k := make([]float32, 25)
	k[2*5+3], k[2*5+1] = 0.75, 0.25
	return k
}

// xpBatch is a PDM batch of HR 16x16 at scale 4 (y_ref 3x4x4) with 5x5
// kernels; y_ref runs from -0.2 up past 1 so that the PNG clamps.
func xpBatch(run, prod string, seq uint64, n int) *schema.Batch {
	h := schema.Header{Scale: 4, HRH: 16, HRW: 16, LRH: 4, LRW: 4, KernelSize: 5, Degradation: schema.DegradationPDM}
	b := &schema.Batch{Header: h}
	for i := 0; i < n; i++ {
		p := schema.Pair{
			SampleID: schema.FormatSampleID(run, prod, seq, uint32(i)), RunID: run, ProducerID: prod,
			BatchSeq: seq, Index: uint32(i), Seed: 7000 + seq*10 + uint64(i), SourceImage: "hr/img3.png",
			CropX: 5, CropY: 6, CropW: 16, CropH: 16, Dihedral: 3,
			WeightsVersion: 1, WeightsSHA256: strings.Repeat("ab", 32),
			XRef: make([]uint8, 3*16*16), YRef: make([]float32, 3*4*4), Kernel: xpKernel(),
			NoiseMean: 0.001, NoiseStd: 0.03,
		}
		for j := range p.XRef {
			p.XRef[j] = uint8(j*7 + i)
		}
		for j := range p.YRef {
			p.YRef[j] = -0.2 + 1.5*float32(j)/47 // -0.2 .. 1.3
		}
		b.Pairs = append(b.Pairs, p)
	}
	return b
}

// xpFixture is a broker whose pair stream holds, in order: batches 0 and 1
// of r1/p0 (3 rows each), batch 0 of r2/p0 (2 rows), an undecodable message
// on r1/p0, and batch 1 of r1/p0 again (a republished duplicate). A durable
// trainer consumer of r1 has had 2 messages delivered and 1 acked.
type xpFixture struct {
	url  string
	js   jetstream.JetStream
	seqs []uint64
}

func newXPFixture(t *testing.T) *xpFixture {
	t.Helper()
	b, js := testutil.JetStream(t)
	ctx := t.Context()
	if _, err := consumer.EnsureStream(ctx, js, consumer.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	f := &xpFixture{url: b.ClientURL(), js: js}
	pub := func(run, prod string, seq uint64, data []byte) {
		msg := nats.NewMsg(producer.SubjectFor("pdmflow.pairs", run, prod))
		msg.Data = data
		msg.Header.Set(producer.HeaderBatchSeq, strconv.FormatUint(seq, 10))
		ack, err := js.PublishMsg(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		f.seqs = append(f.seqs, ack.Sequence)
	}
	enc := func(b *schema.Batch) []byte {
		data, err := schema.Encode(b, schema.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	pub("r1", "p0", 0, enc(xpBatch("r1", "p0", 0, 3)))
	pub("r1", "p0", 1, enc(xpBatch("r1", "p0", 1, 3)))
	pub("r2", "p0", 0, enc(xpBatch("r2", "p0", 0, 2)))
	pub("r1", "p0", 2, []byte("garbage"))
	pub("r1", "p0", 1, enc(xpBatch("r1", "p0", 1, 3)))

	cons, err := js.CreateOrUpdateConsumer(ctx, "PDMFLOW_PAIRS", jetstream.ConsumerConfig{
		Durable: "trainer-r1", FilterSubject: "pdmflow.pairs.r1.*", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(2)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if n == 0 {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		n++
	}
	if n != 2 {
		t.Fatalf("fetched %d messages, want 2", n)
	}
	return f
}

// pdmflow runs the command line and returns its exit code and output.
func pdmflow(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	// Synchronised: NATS callbacks may still log after run returns.
	var o, e syncbuf.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func wantOutput(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

func TestExportCommand(t *testing.T) {
	f := newXPFixture(t)
	saved := exportProgressEvery
	t.Cleanup(func() { exportProgressEvery = saved })
	exportProgressEvery = 0 // a progress line on every message

	out := t.TempDir()
	code, stdout, stderr := pdmflow(t, "export", "--nats-url", f.url, "--out", out, "--run", "r1")
	if code != exitOK {
		t.Fatalf("export: exit %d\n%s", code, stderr)
	}
	wantOutput(t, "export summary", stdout,
		"archive file://"+out, "pdmflow-archive/1", "subjects pdmflow.pairs.r1.*",
		"messages  4 (1 undecodable), 9 pairs",
		"seq       "+strconv.FormatUint(f.seqs[0], 10)+".."+strconv.FormatUint(f.seqs[4], 10),
		"pdm, scale 4, x_ref 3x16x16 uint8, y_ref 3x4x4 float32, kernel 5x5",
		"runs      r1\n", "weights   r1 v1 (sha256 abababababab)",
		"producer  r1/p0: 3 batches (batch seq 0..1), 9 pairs",
		"undecodable seq "+strconv.FormatUint(f.seqs[3], 10)+" (pdmflow.pairs.r1.p0): schema:")
	wantOutput(t, "export progress", stderr, "messages 1/", "messages/s", "ETA")

	// Not twice into the same place.
	code, _, stderr = pdmflow(t, "export", "--nats-url", f.url, "--out", out)
	if code != exitFailure || !strings.Contains(stderr, "already has a manifest") {
		t.Errorf("second export: exit %d, %s", code, stderr)
	}
	// A range with nothing in it.
	code, _, stderr = pdmflow(t, "export", "--nats-url", f.url, "--out", t.TempDir(), "--run", "r2", "--from-seq", strconv.FormatUint(f.seqs[3], 10))
	if code != exitFailure || !strings.Contains(stderr, "no messages in the range") {
		t.Errorf("empty export: exit %d, %s", code, stderr)
	}
	// A sequence range of every run.
	code, stdout, stderr = pdmflow(t, "export", "--nats-url", f.url, "--out", "file://"+t.TempDir(), "--from-seq", strconv.FormatUint(f.seqs[1], 10), "--to-seq", strconv.FormatUint(f.seqs[2], 10))
	if code != exitOK {
		t.Fatalf("range export: exit %d\n%s", code, stderr)
	}
	wantOutput(t, "range export", stdout, "messages  2 (0 undecodable), 5 pairs", "runs      r1, r2\n", "weights   r1 v1 (sha256 abababababab), r2 v1")
}

func TestExportCommandS3(t *testing.T) {
	f := newXPFixture(t)
	srv := s3test.Start(t)
	s3 := []string{"--s3-endpoint", srv.Endpoint, "--s3-access-key", srv.AccessKey, "--s3-secret-key", srv.SecretKey, "--s3-insecure"}
	url := "s3://" + srv.Bucket + "/archives/one"
	code, stdout, stderr := pdmflow(t, append([]string{"export", "--nats-url", f.url, "--out", url}, s3...)...)
	if code != exitOK {
		t.Fatalf("export: exit %d\n%s", code, stderr)
	}
	wantOutput(t, "export summary", stdout, "archive "+url, "messages  5 (1 undecodable), 11 pairs", "runs      r1, r2\n")
	if strings.Contains(stdout+stderr, srv.SecretKey) {
		t.Error("the S3 secret reached the output")
	}
	code, stdout, stderr = pdmflow(t, append([]string{"inspect", "--archive", url, "--sample", "r2/p0/0/1", "--verify"}, s3...)...)
	if code != exitUsage {
		t.Errorf("--verify with a sample: exit %d, want %d", code, exitUsage)
	}
	code, stdout, stderr = pdmflow(t, append([]string{"inspect", "--archive", url, "--sample", "r2/p0/0/1"}, s3...)...)
	if code != exitOK {
		t.Fatalf("inspect: exit %d\n%s", code, stderr)
	}
	var info sampleInfo
	if err := json.Unmarshal([]byte(stdout), &info); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if info.SampleID != "r2/p0/0/1" || info.StreamSeq != f.seqs[2] || info.Source != "archive "+url {
		t.Errorf("sample %+v", info)
	}
}

func TestExportUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export"}, "--out is required"},
		{[]string{"export", "--out", "x", "--run", "a b"}, "--run"},
		{[]string{"export", "--out", "x", "--since", "yesterday"}, "--since"},
		{[]string{"export", "--out", "x", "--until", "2026-13-01T00:00:00Z"}, "--until"},
		{[]string{"export", "--out", "x", "--from-seq", "5", "--to-seq", "4"}, "after --to-seq"},
		{[]string{"export", "--out", "x", "--since", "2026-03-02T00:00:00Z", "--until", "2026-03-01T00:00:00Z"}, "before --since"},
		{[]string{"export", "--out", "x", "--from-seq", "-1"}, "from-seq"},
	} {
		code, _, stderr := pdmflow(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.want)
		}
	}
	// A missing stream is an error, and export does not create it.
	b, js := testutil.JetStream(t)
	code, _, stderr := pdmflow(t, "export", "--nats-url", b.ClientURL(), "--out", t.TempDir())
	if code != exitFailure || !strings.Contains(stderr, "stream PDMFLOW_PAIRS does not exist") {
		t.Errorf("no stream: exit %d, %s", code, stderr)
	}
	if _, err := js.Stream(t.Context(), archive.DefaultStream); err == nil {
		t.Error("export created the stream")
	}
}

// TestExportDatasets exports the fixture stream as Parquet (one run,
// straight from the stream) and as BasicSR folders (from an archive of
// every run): each pair once, the undecodable message listed, and the
// files readable.
func TestExportDatasets(t *testing.T) {
	f := newXPFixture(t)
	pq := t.TempDir()
	code, stdout, stderr := pdmflow(t, "export", "--nats-url", f.url, "--format", "parquet", "--run", "r1", "--rows-per-file", "4", "--out", pq)
	if code != exitOK {
		t.Fatalf("export --format parquet: exit %d\n%s", code, stderr)
	}
	wantOutput(t, "parquet summary", stdout, "pairset file://"+pq+" (pdmflow-parquet/1)", "source    stream PDMFLOW_PAIRS, subjects pdmflow.pairs.r1.*",
		"pairs     6 from 3 messages", "3 duplicates skipped", "shape     pdm x4, HR 16x16, LR 4x4, kernel 5: 6 pairs", "files     2 data files",
		"undecodable seq "+strconv.FormatUint(f.seqs[3], 10))
	var ids []string
	for _, name := range []string{"pairs-00000.parquet", "pairs-00001.parquet"} {
		data, err := os.ReadFile(filepath.Join(pq, name))
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := pqarrow.ReadTable(t.Context(), bytes.NewReader(data), parquet.NewReaderProperties(memory.DefaultAllocator), pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		for _, chunk := range tbl.Column(0).Data().Chunks() {
			for i := range chunk.Len() {
				ids = append(ids, chunk.(*array.String).Value(i))
			}
		}
		tbl.Release()
	}
	if got := strings.Join(ids, " "); got != "r1/p0/0/0 r1/p0/0/1 r1/p0/0/2 r1/p0/1/0 r1/p0/1/1 r1/p0/1/2" {
		t.Errorf("Parquet sample ids %s", got)
	}

	ar := t.TempDir()
	if code, _, stderr := pdmflow(t, "export", "--nats-url", f.url, "--out", ar); code != exitOK {
		t.Fatalf("export: exit %d\n%s", code, stderr)
	}
	bs := t.TempDir()
	code, stdout, stderr = pdmflow(t, "export", "--format", "basicsr", "--archive", ar, "--out", bs)
	if code != exitOK {
		t.Fatalf("export --format basicsr --archive: exit %d\n%s", code, stderr)
	}
	wantOutput(t, "basicsr summary", stdout, "(pdmflow-basicsr/1)", "source    archive file://"+ar, "pairs     8 from 4 messages", "runs      r1, r2\n", "note      LR PNGs hold y_ref clamped")
	meta, err := os.ReadFile(filepath.Join(bs, "meta_info.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(meta)), "\n"); len(lines) != 8 || lines[6] != "r2.p0.00000000.0000.png (16,16,3)" {
		t.Errorf("meta_info.txt:\n%s", meta)
	}
	for _, dir := range []string{"HR", "LR"} {
		if _, err := imageio.Load(filepath.Join(bs, dir, "r1.p0.00000001.0002.png")); err != nil {
			t.Error(err)
		}
	}
	// Not twice into the same place.
	code, _, stderr = pdmflow(t, "export", "--format", "basicsr", "--archive", ar, "--out", bs)
	if code != exitFailure || !strings.Contains(stderr, "already holds a finished pairset") {
		t.Errorf("second export: exit %d, %s", code, stderr)
	}
}

func TestExportDatasetUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--out", "x", "--format", "hdf5"}, `--format "hdf5"`},
		{[]string{"export", "--out", "x", "--archive", "y"}, "--archive is a source for --format basicsr or parquet"},
		{[]string{"export", "--out", "x", "--format", "parquet", "--archive", "y", "--run", "r1"}, "--archive exports the whole archive"},
		{[]string{"export", "--out", "x", "--format", "parquet", "--row-group", "0"}, "--row-group"},
	} {
		code, _, stderr := pdmflow(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.want)
		}
	}
}

// TestProducerIDIsStable: without --id a producer is this host's, so a
// restarted one continues the same batch sequence; a second live process
// holding the id is refused, naming it.
func TestProducerIDIsStable(t *testing.T) {
	b, js := testutil.JetStream(t)
	ctx := t.Context()
	hr := t.TempDir()
	testutil.WriteImages(t, hr, 3, 96, 96, 1)
	cfg, err := trainer.Preset("cpu-small")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(ctx, js, nil, "r1", nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := (producer.Config{Run: "r1", ID: "x", Stream: "PDMFLOW_PAIRS_r1", Subject: "pdmflow.pairs", HRSize: cfg.HRCrop, Scale: cfg.Scale(), Degradation: producer.DegradeBicubic}).Contract()
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.PublishContract(ctx, c); err != nil {
		t.Fatal(err)
	}
	args := []string{"produce", "--nats-url", b.ClientURL(), "--run", "r1", "--hr", hr, "--degradation", "bicubic", "--batches", "2", "--batch-pairs", "2", "--device", "cpu"}
	for range 2 {
		if code, _, stderr := pdmflow(t, args...); code != exitOK {
			t.Fatalf("produce: exit %d\n%s", code, stderr)
		}
	}
	host, _ := os.Hostname()
	id := defaultProducerID(host)
	st, err := js.Stream(ctx, "PDMFLOW_PAIRS_r1")
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for s := uint64(1); s <= st.CachedInfo().State.LastSeq; s++ {
		m, err := st.GetMsg(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := schema.Decode(m.Data, schema.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if b.Pairs[0].ProducerID != id {
			t.Errorf("seq %d is producer %q's, want this host's %q", s, b.Pairs[0].ProducerID, id)
		}
		seqs = append(seqs, b.Pairs[0].BatchSeq)
	}
	if fmt.Sprint(seqs) != "[0 1 2 3]" {
		t.Errorf("batch sequences %v: the restarted producer did not continue the first one's", seqs)
	}
	// Another live process holds the id: refused without waiting.
	l, err := registry.AcquireLease(ctx, js, "r1", id, registry.Holder{Host: "elsewhere", PID: 7, Instance: "other"}, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	code, _, stderr := pdmflow(t, append(args, "--id-wait", "0")...)
	if code != exitFailure || !strings.Contains(stderr, "held by pid 7 on elsewhere") {
		t.Errorf("a second process with the same id: exit %d\n%s", code, stderr)
	}
}
