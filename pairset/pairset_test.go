package pairset_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/pairset"
	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

// sent is one message given to a writer.
type sent struct {
	o pairset.Origin
	b *schema.Batch
}

// testBatch returns a valid batch of n random pairs under h.
func testBatch(r *rand.Rand, h schema.Header, run, producer string, seq uint64, n int) *schema.Batch {
	b := &schema.Batch{Header: h}
	sha := fmt.Sprintf("%064x", r.Uint64())
	for i := range n {
		p := schema.Pair{
			SampleID: schema.FormatSampleID(run, producer, seq, uint32(i)), RunID: run, ProducerID: producer,
			BatchSeq: seq, Index: uint32(i), Seed: r.Uint64(), WeightsVersion: 1 + seq%3, WeightsSHA256: sha,
			SourceImage: fmt.Sprintf("img%03d.png", r.IntN(100)),
			CropX:       r.Int32N(500), CropY: r.Int32N(500), CropW: int32(h.HRW), CropH: int32(h.HRH), Dihedral: uint8(r.IntN(8)),
			XRef: make([]uint8, 3*h.HRH*h.HRW), YRef: make([]float32, 3*h.LRH*h.LRW),
			NoiseMean: float32(r.NormFloat64() * 1e-3), NoiseStd: float32(r.Float64() * 0.02),
		}
		for j := range p.XRef {
			p.XRef[j] = uint8(r.IntN(256))
		}
		for j := range p.YRef {
			p.YRef[j] = float32(r.Float64()*1.2 - 0.1) // outside [0, 1] too: the stream does not clamp
		}
		if k := h.KernelSize; k > 0 {
			p.Kernel = make([]float32, k*k)
			var s float64
			for j := range p.Kernel {
				p.Kernel[j] = float32(r.Float64())
				s += float64(p.Kernel[j])
			}
			for j := range p.Kernel {
				p.Kernel[j] = float32(float64(p.Kernel[j]) / s)
			}
		}
		b.Pairs = append(b.Pairs, p)
	}
	if err := b.Validate(); err != nil {
		panic(err)
	}
	return b
}

// testStream is messages of two runs with different headers (one without
// kernels), a batch republished (its pairs are duplicates) and one
// undecodable message.
func testStream() (msgs []sent, bad pairset.Origin) {
	r := rand.New(rand.NewPCG(1, 2))
	pdm := schema.Header{Scale: 2, HRH: 8, HRW: 6, LRH: 4, LRW: 3, KernelSize: 3, Degradation: "pdm"}
	bic := schema.Header{Scale: 4, HRH: 8, HRW: 8, LRH: 2, LRW: 2, Degradation: "bicubic", Device: "cuda/fp32"}
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 123456789, time.UTC)
	seq := uint64(10)
	add := func(b *schema.Batch) {
		msgs = append(msgs, sent{pairset.Origin{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Millisecond), Subject: "pdmflow.pairs." + b.Pairs[0].RunID + "." + b.Pairs[0].ProducerID}, b})
		seq++
	}
	for s := range uint64(3) {
		add(testBatch(r, pdm, "run-a", "p0", s, 3))
		add(testBatch(r, pdm, "run-a", "p_1", s, 2))
	}
	add(msgs[0].b) // republished
	bad = pairset.Origin{Seq: seq, Subject: "pdmflow.pairs.run-a.p0"}
	seq++
	for s := range uint64(2) {
		b := testBatch(r, bic, "run-b", "p0", s, 2)
		for i := range b.Pairs {
			b.Pairs[i].WeightsVersion, b.Pairs[i].WeightsSHA256 = 0, ""
		}
		add(b)
	}
	return msgs, bad
}

// uniquePairs is the pairs of msgs in order, each sample id once, with
// their origins.
func uniquePairs(msgs []sent) (pairs []*schema.Pair, hdr []*schema.Header, origin []pairset.Origin) {
	seen := map[string]bool{}
	for _, m := range msgs {
		for i := range m.b.Pairs {
			p := &m.b.Pairs[i]
			if seen[p.SampleID] {
				continue
			}
			seen[p.SampleID] = true
			pairs, hdr, origin = append(pairs, p), append(hdr, &m.b.Header), append(origin, m.o)
		}
	}
	return pairs, hdr, origin
}

func openDir(t *testing.T, dir string) *store.Bucket {
	t.Helper()
	b, err := store.Open(context.Background(), dir, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// write runs a whole export of msgs with w.
func write(t *testing.T, w pairset.Writer, msgs []sent, bad pairset.Origin) *pairset.Manifest {
	t.Helper()
	ctx := context.Background()
	for i, m := range msgs {
		if i == len(msgs)-2 {
			w.Skip(bad, errors.New("schema: truncated message"))
		}
		if err := w.Add(ctx, m.o, m.b); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkManifest checks what every layout's manifest says of testStream,
// and the files it lists against the store.
func checkManifest(t *testing.T, dst *store.Bucket, m *pairset.Manifest, format string, pairs int) {
	t.Helper()
	read, err := pairset.ReadManifest(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	if read.Format != format || read.Pairs != pairs || read.Duplicates != 3 || read.Messages != 9 ||
		read.FirstSeq != 10 || read.LastSeq != 19 || len(read.Skipped) != 1 || read.Skipped[0].Seq != 17 ||
		fmt.Sprint(read.Runs) != "[run-a run-b]" || len(read.Shapes) != 2 || read.Shapes[0].Pairs+read.Shapes[1].Pairs != pairs {
		t.Errorf("manifest %+v", read)
	}
	if fmt.Sprint(read) != fmt.Sprint(m) {
		t.Errorf("stored manifest differs from the returned one:\n%+v\n%+v", read, m)
	}
	for _, f := range read.Files {
		data, err := dst.Get(context.Background(), f.Key)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if int64(len(data)) != f.Bytes || hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("%s: %d bytes sha %x, manifest says %d %s", f.Key, len(data), sum, f.Bytes, f.SHA256)
		}
	}
}

func TestName(t *testing.T) {
	for id, want := range map[string]string{
		"run-a/p0/42/3":                    "run-a.p0.00000042.0003",
		"r_1/prod-x/123456789012/98765":    "r_1.prod-x.123456789012.98765",
		"r/p/18446744073709551615/4294967": "r.p.18446744073709551615.4294967",
	} {
		if got, err := pairset.Name(id); err != nil || got != want {
			t.Errorf("Name(%q) = %q, %v; want %q", id, got, err, want)
		}
	}
	for _, id := range []string{"", "../x/0/0", "a/b/01/0", "a.b/c/0/0", "a/b/0"} {
		if got, err := pairset.Name(id); err == nil {
			t.Errorf("Name(%q) = %q, want an error", id, got)
		}
	}
}

func TestRefusesAFinishedDestination(t *testing.T) {
	ctx := context.Background()
	msgs, bad := testStream()
	for _, tc := range []struct {
		name string
		open func(*store.Bucket) (pairset.Writer, error)
	}{
		{"parquet", func(b *store.Bucket) (pairset.Writer, error) { return pairset.NewParquet(ctx, b, pairset.Options{}) }},
		{"basicsr", func(b *store.Bucket) (pairset.Writer, error) { return pairset.NewBasicSR(ctx, b, pairset.Options{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := openDir(t, t.TempDir())
			w, err := tc.open(dst)
			if err != nil {
				t.Fatal(err)
			}
			write(t, w, msgs, bad)
			if _, err := w.Close(ctx); !errors.Is(err, pairset.ErrClosed) {
				t.Errorf("second Close: %v, want ErrClosed", err)
			}
			if _, err := tc.open(dst); !errors.Is(err, pairset.ErrExists) {
				t.Errorf("export into a finished pairset: %v, want ErrExists", err)
			}
		})
	}
}

// TestAbortLeavesNoManifestNorTemporaryFiles: an export that stops
// midway leaves an unfinished destination (no manifest) that a new export
// completes, and no temporary file.
func TestAbortLeavesNoManifestNorTemporaryFiles(t *testing.T) {
	ctx := context.Background()
	msgs, bad := testStream()
	tmp := t.TempDir()
	for _, tc := range []struct {
		name string
		open func(*store.Bucket) (pairset.Writer, error)
	}{
		{"parquet", func(b *store.Bucket) (pairset.Writer, error) {
			return pairset.NewParquet(ctx, b, pairset.Options{TempDir: tmp, RowsPerFile: 4})
		}},
		{"basicsr", func(b *store.Bucket) (pairset.Writer, error) {
			return pairset.NewBasicSR(ctx, b, pairset.Options{TempDir: tmp, RowsPerFile: 4})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := openDir(t, t.TempDir())
			w, err := tc.open(dst)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs[:3] {
				if err := w.Add(ctx, m.o, m.b); err != nil {
					t.Fatal(err)
				}
			}
			w.Abort()
			if err := w.Add(ctx, msgs[3].o, msgs[3].b); !errors.Is(err, pairset.ErrClosed) {
				t.Errorf("Add after Abort: %v, want ErrClosed", err)
			}
			if _, err := pairset.ReadManifest(ctx, dst); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("manifest after Abort: %v, want none", err)
			}
			if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
			w, err = tc.open(dst)
			if err != nil {
				t.Fatalf("a new export into an unfinished one: %v", err)
			}
			write(t, w, msgs, bad)
			if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestTempDirChecked(t *testing.T) {
	_, err := pairset.NewParquet(context.Background(), openDir(t, t.TempDir()), pairset.Options{TempDir: filepath.Join(t.TempDir(), "none")})
	if err == nil {
		t.Fatal("a missing temporary directory was accepted")
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
