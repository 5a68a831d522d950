package archive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/s3test"
	"github.com/pdmflow/pdmflow/internal/testutil"
	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

// weightsSHA is a stand-in weights hash for a version.
func weightsSHA(v uint64) string {
	h := sha256.Sum256([]byte(fmt.Sprint("weights-", v)))
	return hex.EncodeToString(h[:])
}

// testBatch is a small valid PDM batch: n rows of HR 8x8 at scale 4 with
// 3x3 kernels, made with weights version v.
func testBatch(run, producer string, seq uint64, n int, v uint64) *schema.Batch {
	h := schema.Header{Scale: 4, HRH: 8, HRW: 8, LRH: 2, LRW: 2, KernelSize: 3, Degradation: schema.DegradationPDM}
	b := &schema.Batch{Header: h}
	for i := 0; i < n; i++ {
		p := schema.Pair{
			SampleID: schema.FormatSampleID(run, producer, seq, uint32(i)), RunID: run, ProducerID: producer,
			BatchSeq: seq, Index: uint32(i), Seed: seq*1000 + uint64(i), SourceImage: "img0.png",
			CropX: int32(i), CropW: 8, CropH: 8, WeightsVersion: v, WeightsSHA256: weightsSHA(v),
			XRef: make([]uint8, 3*8*8), YRef: make([]float32, 3*2*2),
			Kernel:    []float32{0, 0, 0, 0, 0.5, 0.5, 0, 0, 0},
			NoiseMean: 0.01, NoiseStd: 0.02,
		}
		for j := range p.XRef {
			p.XRef[j] = uint8(j + i + int(seq))
		}
		for j := range p.YRef {
			p.YRef[j] = float32(j)/12 + float32(i)*0.01
		}
		b.Pairs = append(b.Pairs, p)
	}
	return b
}

func encode(t testing.TB, b *schema.Batch) []byte {
	t.Helper()
	data, err := schema.Encode(b, schema.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// published is one message put into the stream.
type published struct {
	seq     uint64
	subject string
	data    []byte
}

// fixture is a stream holding, in order: 2 batches of r1/p0 (weights v1),
// 1 batch of r2/p0 (v1), 1 batch of r1/p1 (v2), an undecodable message on
// r1/p0, and 1 batch of r1/p0 (v2).
type fixture struct {
	js   jetstream.JetStream
	msgs []published
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	_, js := testutil.JetStream(t)
	if _, err := consumer.EnsureStream(t.Context(), js, consumer.StreamConfig{Memory: true}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{js: js}
	f.publish(t, "pdmflow.pairs.r1.p0", encode(t, testBatch("r1", "p0", 0, 3, 1)))
	f.publish(t, "pdmflow.pairs.r1.p0", encode(t, testBatch("r1", "p0", 1, 3, 1)))
	f.publish(t, "pdmflow.pairs.r2.p0", encode(t, testBatch("r2", "p0", 0, 2, 1)))
	f.publish(t, "pdmflow.pairs.r1.p1", encode(t, testBatch("r1", "p1", 0, 4, 2)))
	f.publish(t, "pdmflow.pairs.r1.p0", []byte("not an Arrow stream"))
	f.publish(t, "pdmflow.pairs.r1.p0", encode(t, testBatch("r1", "p0", 2, 3, 2)))
	return f
}

func (f *fixture) publish(t *testing.T, subject string, data []byte) {
	t.Helper()
	ack, err := f.js.Publish(t.Context(), subject, data)
	if err != nil {
		t.Fatal(err)
	}
	f.msgs = append(f.msgs, published{ack.Sequence, subject, data})
}

func (f *fixture) seqs(keep func(published) bool) []uint64 {
	var s []uint64
	for _, m := range f.msgs {
		if keep == nil || keep(m) {
			s = append(s, m.seq)
		}
	}
	return s
}

func openDir(t *testing.T, dir string) *store.Bucket {
	t.Helper()
	b, err := store.Open(t.Context(), dir, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func openS3(t *testing.T, srv s3test.Server, prefix string, timeout time.Duration) *store.Bucket {
	t.Helper()
	cfg := store.Config{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Region: "us-east-1", Insecure: true, Timeout: timeout}
	b, err := store.Open(t.Context(), "s3://"+srv.Bucket+"/"+prefix, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func manifestSeqs(m *archive.Manifest) []uint64 {
	var s []uint64
	for _, msg := range m.Messages {
		s = append(s, msg.Seq)
	}
	return s
}

// TestExportAndRead exports the whole stream into a directory and into S3
// and reads every message back, byte for byte.
func TestExportAndRead(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		dst  func(t *testing.T) *store.Bucket
	}{
		{"file", func(t *testing.T) *store.Bucket { return openDir(t, t.TempDir()) }},
		{"s3", func(t *testing.T) *store.Bucket { return openS3(t, s3test.Start(t), "archives/a1", 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := tc.dst(t)
			var calls [][2]int
			m, err := archive.Export(t.Context(), f.js, dst, archive.ExportOptions{
				Progress: func(done, total int) { calls = append(calls, [2]int{done, total}) },
			})
			if err != nil {
				t.Fatal(err)
			}
			checkManifest(t, f, m)
			if last := calls[len(calls)-1]; last != [2]int{6, 6} || len(calls) != 7 {
				t.Errorf("progress calls %v, want 6 then a final (6, 6)", calls)
			}
			for _, c := range calls {
				if c[0] > c[1] {
					t.Errorf("progress (%d, %d): done exceeds total", c[0], c[1])
				}
			}

			r, err := archive.Open(t.Context(), dst)
			if err != nil {
				t.Fatal(err)
			}
			checkManifest(t, f, r.Manifest())
			for i, want := range f.msgs {
				got, err := r.Read(t.Context(), i)
				if err != nil {
					t.Fatalf("Read(%d): %v", i, err)
				}
				if !bytes.Equal(got, want.data) {
					t.Errorf("message %d (seq %d): archived bytes differ from the stream's", i, want.seq)
				}
				b, err := r.Batch(t.Context(), i)
				if i == 4 {
					if err == nil || !errors.Is(err, schema.ErrTruncated) {
						t.Errorf("Batch of the bad message: %v, want a schema error", err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Batch(%d): %v", i, err)
				}
				if msg := r.Manifest().Messages[i]; b.Pairs[0].SampleID != schema.FormatSampleID(msg.Run, msg.Producer, msg.BatchSeq, 0) || len(b.Pairs) != msg.Pairs {
					t.Errorf("Batch(%d) holds %s (%d rows), the manifest says %+v", i, b.Pairs[0].SampleID, len(b.Pairs), msg)
				}
			}
			if _, err := r.Read(t.Context(), len(f.msgs)); err == nil {
				t.Error("Read past the end succeeded")
			}

			// FindSample, from the manifest alone.
			for _, tc := range []struct {
				id       string
				msg, row int
			}{{"r1/p0/0/2", 0, 2}, {"r1/p1/0/3", 3, 3}, {"r2/p0/0/1", 2, 1}, {"r1/p0/2/0", 5, 0}} {
				msg, row, err := r.FindSample(tc.id)
				if err != nil || msg != tc.msg || row != tc.row {
					t.Errorf("FindSample(%q) = %d, %d, %v; want %d, %d", tc.id, msg, row, err, tc.msg, tc.row)
				}
			}
			for _, id := range []string{"r1/p0/0/3", "r1/p0/9/0", "r3/p0/0/0"} {
				if _, _, err := r.FindSample(id); !errors.Is(err, archive.ErrNotFound) {
					t.Errorf("FindSample(%q): %v, want ErrNotFound", id, err)
				}
			}
			for _, id := range []string{"", "r1", "r1/p0/0", "r1/p0/x/0", "r1/p0/0/-1", "/p0/0/0", "r1/p0/002/0", "r1/../0/0"} {
				if _, _, err := r.FindSample(id); err == nil || errors.Is(err, archive.ErrNotFound) {
					t.Errorf("FindSample(%q): %v, want a malformed-id error", id, err)
				}
			}
		})
	}
}

func checkManifest(t *testing.T, f *fixture, m *archive.Manifest) {
	t.Helper()
	if m.Format != archive.Format || m.Stream != "PDMFLOW_PAIRS" || m.Filter != "pdmflow.pairs.>" {
		t.Errorf("format %q stream %q filter %q", m.Format, m.Stream, m.Filter)
	}
	if got, want := manifestSeqs(m), f.seqs(nil); !slices.Equal(got, want) {
		t.Fatalf("archived seqs %v, want %v", got, want)
	}
	if m.FirstSeq != f.msgs[0].seq || m.LastSeq != f.msgs[5].seq || m.FirstTime.IsZero() || m.LastTime.Before(m.FirstTime) {
		t.Errorf("range %d..%d %v..%v", m.FirstSeq, m.LastSeq, m.FirstTime, m.LastTime)
	}
	if !slices.Equal(m.Runs, []string{"r1", "r2"}) {
		t.Errorf("runs %v", m.Runs)
	}
	wantW := []archive.Weights{{"r1", 1, weightsSHA(1)}, {"r1", 2, weightsSHA(2)}, {"r2", 1, weightsSHA(1)}}
	if !slices.Equal(m.Weights, wantW) {
		t.Errorf("weights %v, want %v", m.Weights, wantW)
	}
	if m.Header == nil || *m.Header != testBatch("r", "p", 0, 1, 1).Header {
		t.Errorf("header %+v", m.Header)
	}
	var bytes int64
	for i, msg := range m.Messages {
		p := f.msgs[i]
		bytes += int64(len(p.data))
		sum := sha256.Sum256(p.data)
		if msg.Key != archive.MessageKey(p.seq) || msg.Subject != p.subject || msg.Bytes != len(p.data) || msg.SHA256 != hex.EncodeToString(sum[:]) || msg.Time.IsZero() {
			t.Errorf("message %d: %+v", i, msg)
		}
	}
	if m.Pairs != 3+3+2+4+3 || m.Bytes != bytes {
		t.Errorf("pairs %d bytes %d, want 15 and %d", m.Pairs, m.Bytes, bytes)
	}
	bad := m.Messages[4]
	if bad.Error == "" || bad.Run != "" || bad.Pairs != 0 {
		t.Errorf("the undecodable message is recorded as %+v, want its error and no batch fields", bad)
	}
	good := m.Messages[3]
	if good.Error != "" || good.Run != "r1" || good.Producer != "p1" || good.BatchSeq != 0 || good.Pairs != 4 || good.WeightsVersion != 2 || good.WeightsSHA256 != weightsSHA(2) {
		t.Errorf("message 3: %+v", good)
	}
}

// TestExportRanges: sequence range, time range and run filter select
// exactly the messages they say; ranges past the end stop at the end.
func TestExportRanges(t *testing.T) {
	f := newFixture(t)
	s, err := f.js.Stream(t.Context(), "PDMFLOW_PAIRS")
	if err != nil {
		t.Fatal(err)
	}
	times := map[uint64]time.Time{}
	for _, m := range f.msgs {
		raw, err := s.GetMsg(t.Context(), m.seq)
		if err != nil {
			t.Fatal(err)
		}
		times[m.seq] = raw.Time
	}
	q := f.seqs(nil)
	r1 := f.seqs(func(p published) bool { return strings.HasPrefix(p.subject, "pdmflow.pairs.r1.") })
	for _, tc := range []struct {
		name string
		o    archive.ExportOptions
		want []uint64
	}{
		{"seq range", archive.ExportOptions{FromSeq: q[1], ToSeq: q[3]}, q[1:4]},
		{"from seq", archive.ExportOptions{FromSeq: q[4]}, q[4:]},
		{"to seq past the end", archive.ExportOptions{ToSeq: q[5] + 100}, q},
		{"time range", archive.ExportOptions{Since: times[q[2]], Until: times[q[4]]}, q[2:5]},
		{"since", archive.ExportOptions{Since: times[q[3]]}, q[3:]},
		{"seq and time", archive.ExportOptions{FromSeq: q[1], Until: times[q[2]]}, q[1:3]},
		{"run filter", archive.ExportOptions{Filter: "pdmflow.pairs.r1.>"}, r1},
		{"run filter and range", archive.ExportOptions{Filter: "pdmflow.pairs.r2.>", ToSeq: q[4]}, q[2:3]},
		{"filter ending before to-seq", archive.ExportOptions{Filter: "pdmflow.pairs.r2.>"}, q[2:3]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := openDir(t, t.TempDir())
			m, err := archive.Export(t.Context(), f.js, dst, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if got := manifestSeqs(m); !slices.Equal(got, tc.want) {
				t.Errorf("seqs %v, want %v", got, tc.want)
			}
			if tc.o.Filter != "" && m.Filter != tc.o.Filter {
				t.Errorf("filter %q", m.Filter)
			}
			keys, err := dst.List(t.Context(), "messages/")
			if err != nil || len(keys) != len(tc.want) {
				t.Errorf("%d message objects (%v), want %d", len(keys), err, len(tc.want))
			}
		})
	}

	// Nothing in the range: an error, and no manifest.
	for name, o := range map[string]archive.ExportOptions{
		"past the end":   {FromSeq: q[5] + 1},
		"no such run":    {Filter: "pdmflow.pairs.r9.>"},
		"run not there":  {Filter: "pdmflow.pairs.r2.>", FromSeq: q[3]},
		"time too early": {Until: times[q[0]].Add(-time.Second)},
		"time too late":  {Since: times[q[5]].Add(time.Second)},
	} {
		dst := openDir(t, t.TempDir())
		if _, err := archive.Export(t.Context(), f.js, dst, o); !errors.Is(err, archive.ErrEmpty) {
			t.Errorf("%s: %v, want ErrEmpty", name, err)
		}
		if _, err := dst.Stat(t.Context(), archive.ManifestKey); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: a manifest was written: %v", name, err)
		}
	}
	for name, o := range map[string]archive.ExportOptions{
		"from after to":    {FromSeq: 5, ToSeq: 4},
		"until before now": {Since: time.Now(), Until: time.Now().Add(-time.Hour)},
		"no such stream":   {Stream: "NOPE"},
	} {
		if _, err := archive.Export(t.Context(), f.js, openDir(t, t.TempDir()), o); err == nil || errors.Is(err, archive.ErrEmpty) {
			t.Errorf("%s: %v, want an error", name, err)
		}
	}
}

// TestExportStopsAtStart: messages published while the export runs are
// not part of it.
func TestExportStopsAtStart(t *testing.T) {
	f := newFixture(t)
	var once sync.Once
	late := make(chan uint64, 1)
	m, err := archive.Export(t.Context(), f.js, openDir(t, t.TempDir()), archive.ExportOptions{
		Progress: func(done, total int) {
			once.Do(func() {
				ack, err := f.js.Publish(context.Background(), "pdmflow.pairs.r1.p0", encode(t, testBatch("r1", "p0", 3, 1, 2)))
				if err != nil {
					t.Error(err)
					return
				}
				late <- ack.Sequence
			})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	seq := <-late
	if got := manifestSeqs(m); !slices.Equal(got, f.seqs(nil)) {
		t.Errorf("seqs %v, want %v (not the late seq %d)", got, f.seqs(nil), seq)
	}
}

// TestExportRefusesFinishedArchive: a second export into the same place
// fails and leaves the first archive as it was.
func TestExportRefusesFinishedArchive(t *testing.T) {
	f := newFixture(t)
	dst := openDir(t, t.TempDir())
	if _, err := archive.Export(t.Context(), f.js, dst, archive.ExportOptions{ToSeq: f.msgs[1].seq}); err != nil {
		t.Fatal(err)
	}
	before, err := dst.Get(t.Context(), archive.ManifestKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = archive.Export(t.Context(), f.js, dst, archive.ExportOptions{})
	if !errors.Is(err, archive.ErrExists) || !strings.Contains(err.Error(), dst.URL()) {
		t.Fatalf("second export: %v, want ErrExists naming %s", err, dst.URL())
	}
	after, _ := dst.Get(t.Context(), archive.ManifestKey)
	if !bytes.Equal(before, after) {
		t.Error("the manifest changed")
	}
	keys, _ := dst.List(t.Context(), "messages/")
	if len(keys) != 2 {
		t.Errorf("%d message objects, want 2", len(keys))
	}
}

// TestReadTampered: a message object that differs from the manifest, or is
// gone, fails Read with an error naming its key.
func TestReadTampered(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	dst := openDir(t, dir)
	m, err := archive.Export(t.Context(), f.js, dst, archive.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := func(i int) string { return filepath.Join(dir, filepath.FromSlash(m.Messages[i].Key)) }
	// One flipped byte, same size.
	data, err := os.ReadFile(path(1))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(path(1), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Truncated.
	if err := os.Truncate(path(2), 10); err != nil {
		t.Fatal(err)
	}
	// Gone.
	if err := os.Remove(path(3)); err != nil {
		t.Fatal(err)
	}
	r, err := archive.Open(t.Context(), dst)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range map[int]struct {
		sentinel error
		say      string
	}{1: {archive.ErrCorrupt, "SHA-256"}, 2: {archive.ErrCorrupt, "10 bytes"}, 3: {archive.ErrIncomplete, "missing"}} {
		_, err := r.Read(t.Context(), i)
		if !errors.Is(err, tc.sentinel) {
			t.Errorf("Read(%d): %v, want %v", i, err, tc.sentinel)
			continue
		}
		for _, s := range []string{m.Messages[i].Key, tc.say} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Read(%d): %q does not say %q", i, err, s)
			}
		}
		if tc.sentinel == archive.ErrCorrupt && !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("Read(%d): %q does not say corrupt", i, err)
		}
		if _, err := r.Batch(t.Context(), i); !errors.Is(err, tc.sentinel) {
			t.Errorf("Batch(%d): %v, want %v", i, err, tc.sentinel)
		}
	}
	if _, err := r.Read(t.Context(), 0); err != nil {
		t.Errorf("untouched message: %v", err)
	}
}

// TestOpenBadManifest: a missing, garbled or inconsistent manifest fails
// Open with an error that names it and says what is wrong.
func TestOpenBadManifest(t *testing.T) {
	good := func() *archive.Manifest {
		m := &archive.Manifest{Format: archive.Format, Stream: "S", Filter: "f.>", FirstSeq: 3, LastSeq: 7}
		for _, seq := range []uint64{3, 5, 7} {
			m.Messages = append(m.Messages, archive.Message{Seq: seq, Key: archive.MessageKey(seq), Bytes: 1, SHA256: strings.Repeat("ab", 32)})
		}
		return m
	}
	enc := func(edit func(m *archive.Manifest)) []byte {
		m := good()
		edit(m)
		b, err := m.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name     string
		data     []byte // nil: no manifest
		sentinel error
		say      string
	}{
		{"missing", nil, archive.ErrIncomplete, "has no manifest.json"},
		{"garbled", []byte(`{"format": "pdmflow-archive/1", "messages": [`), archive.ErrManifest, "not JSON"},
		{"not an object", []byte(`[1, 2]`), archive.ErrManifest, "not JSON"},
		{"trailing data", append(enc(func(*archive.Manifest) {}), []byte("{}")...), archive.ErrManifest, "after the JSON"},
		{"no format", []byte(`{"messages": []}`), archive.ErrManifest, `format ""`},
		{"wrong format", enc(func(m *archive.Manifest) { m.Format = "pdmflow-archive/2" }), archive.ErrManifest, "pdmflow-archive/2"},
		{"out of order", enc(func(m *archive.Manifest) { m.Messages[1], m.Messages[2] = m.Messages[2], m.Messages[1] }), archive.ErrManifest, "does not follow"},
		{"duplicate", enc(func(m *archive.Manifest) { m.Messages[2] = m.Messages[1]; m.LastSeq = 5 }), archive.ErrManifest, "does not follow"},
		{"wrong key", enc(func(m *archive.Manifest) { m.Messages[1].Key = "messages/5.arrows" }), archive.ErrManifest, "messages/5.arrows"},
		{"bad hash", enc(func(m *archive.Manifest) { m.Messages[0].SHA256 = "abc" }), archive.ErrManifest, "sha256"},
		{"negative size", enc(func(m *archive.Manifest) { m.Messages[0].Bytes = -1 }), archive.ErrManifest, "negative size"},
		{"range", enc(func(m *archive.Manifest) { m.LastSeq = 9 }), archive.ErrManifest, "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := openDir(t, t.TempDir())
			if tc.data != nil {
				if err := b.Put(t.Context(), archive.ManifestKey, tc.data); err != nil {
					t.Fatal(err)
				}
			}
			_, err := archive.Open(t.Context(), b)
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("Open: %v, want %v", err, tc.sentinel)
			}
			for _, s := range []string{archive.ManifestKey, b.URL(), tc.say} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
		})
	}
	b := openDir(t, t.TempDir())
	if err := b.Put(t.Context(), archive.ManifestKey, enc(func(*archive.Manifest) {})); err != nil {
		t.Fatal(err)
	}
	if _, err := archive.Open(t.Context(), b); err != nil {
		t.Errorf("a good manifest: %v", err)
	}
}

// TestExportS3Failure: when the S3 server goes away mid-export, Export
// fails naming a message key and leaves no manifest.
func TestExportS3Failure(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 10; i++ {
		f.publish(t, "pdmflow.pairs.r1.p2", encode(t, testBatch("r1", "p2", uint64(i), 2, 2)))
	}
	srv := s3test.Start(t)
	dst := openS3(t, srv, "broken", 2*time.Second)
	var once sync.Once
	_, err := archive.Export(t.Context(), f.js, dst, archive.ExportOptions{
		Progress: func(done, total int) { once.Do(srv.Stop) },
	})
	if err == nil {
		t.Fatal("export succeeded with the S3 server down")
	}
	if !strings.Contains(err.Error(), `"messages/`) || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("error %q names no message key or does not say the archive is incomplete", err)
	}
	t.Logf("export with the server down: %v", err)
	srv.Restart()
	if _, err := dst.Stat(t.Context(), archive.ManifestKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("manifest after a failed export: %v", err)
	}
	if _, err := archive.Open(t.Context(), dst); !errors.Is(err, archive.ErrIncomplete) {
		t.Errorf("Open of the failed export: %v, want ErrIncomplete", err)
	}
	// Again, with the server up: the same destination completes.
	m, err := archive.Export(t.Context(), f.js, dst, archive.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Messages) != len(f.msgs) {
		t.Errorf("%d messages, want %d", len(m.Messages), len(f.msgs))
	}
}

// TestExportCancelled: a cancelled export writes no manifest.
func TestExportCancelled(t *testing.T) {
	f := newFixture(t)
	dst := openDir(t, t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	_, err := archive.Export(ctx, f.js, dst, archive.ExportOptions{Progress: func(int, int) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("export: %v, want context.Canceled", err)
	}
	if _, err := dst.Stat(t.Context(), archive.ManifestKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("manifest after a cancelled export: %v", err)
	}
}

// TestDefaults: the package's defaults are the stream's.
func TestDefaults(t *testing.T) {
	var c consumer.StreamConfig
	c.Defaults()
	if archive.DefaultStream != c.Name || archive.DefaultFilter != c.Subject+".>" {
		t.Errorf("defaults %q %q, consumer's %q %q", archive.DefaultStream, archive.DefaultFilter, c.Name, c.Subject+".>")
	}
	if k := archive.MessageKey(42); k != "messages/00000000000000000042.arrows" {
		t.Errorf("MessageKey(42) = %q", k)
	}
}
