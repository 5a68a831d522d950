package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// swept counts the bytes Decode had to free on arrow-go's behalf.
var swept atomic.Int64

func TestMain(m *testing.M) {
	sweptHook = func(n int) { swept.Add(int64(n)) }
	os.Exit(m.Run())
}

// checkedMem returns a checked allocator and registers a cleanup asserting
// nothing is left allocated.
func checkedMem(t testing.TB) *memory.CheckedAllocator {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// noSweep fails the test if Decode had to free memory arrow-go leaked
// during f: normal paths, valid or not, must release everything themselves.
func noSweep(t testing.TB, f func()) {
	t.Helper()
	before := swept.Load()
	f()
	if n := swept.Load() - before; n != 0 {
		t.Errorf("Decode swept %d bytes leaked by arrow-go on a path that should release them", n)
	}
}

func mustEncode(t testing.TB, b *Batch, comp string) []byte {
	t.Helper()
	msg, err := Encode(b, EncodeOptions{Allocator: checkedMem(t), Compression: comp})
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return msg
}

// decode decodes with a checked allocator, asserting no leak and no sweep.
func decodeT(t testing.TB, msg []byte, max int) (*Batch, error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	var b *Batch
	var err error
	noSweep(t, func() { b, err = Decode(msg, DecodeOptions{Allocator: mem, MaxMessageBytes: max}) })
	mem.AssertSize(t, 0)
	return b, err
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// randomBatch draws a valid batch.
func randomBatch(rng *rand.Rand, rows, scale, hrH, hrW, k int, deg string) *Batch {
	lrH, lrW := LRSize(hrH, hrW, scale)
	b := &Batch{Header: Header{Scale: scale, HRH: hrH, HRW: hrW, LRH: lrH, LRW: lrW, KernelSize: k, Degradation: deg}}
	run, prod := fmt.Sprintf("run-%d", rng.IntN(100)), fmt.Sprintf("prod_%d", rng.IntN(100))
	seq := rng.Uint64()
	for i := 0; i < rows; i++ {
		p := Pair{
			SampleID:    FormatSampleID(run, prod, seq, uint32(i)),
			RunID:       run,
			ProducerID:  prod,
			BatchSeq:    seq,
			Index:       uint32(i),
			Seed:        rng.Uint64(),
			SourceImage: fmt.Sprintf("div2k/%04d 🙂.png", rng.IntN(900)),
			CropX:       rng.Int32N(2000),
			CropY:       rng.Int32N(2000),
			CropW:       int32(hrW),
			CropH:       int32(hrH),
			Dihedral:    uint8(rng.IntN(8)),
			XRef:        make([]uint8, 3*hrH*hrW),
			YRef:        make([]float32, 3*lrH*lrW),
			NoiseMean:   float32(rng.NormFloat64() * 0.01),
			NoiseStd:    float32(rng.Float64() * 0.05),
		}
		if deg == DegradationPDM {
			p.WeightsVersion = 1 + uint64(rng.IntN(50))
			p.WeightsSHA256 = sha(fmt.Sprint(p.WeightsVersion))
		}
		for j := range p.XRef {
			p.XRef[j] = uint8(rng.UintN(256))
		}
		for j := range p.YRef {
			p.YRef[j] = rng.Float32()*3 - 1 // outside [0,1] on both sides
		}
		// Values that rounding, clamping or a float64 detour would change.
		specials := []float32{float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, -1e30, 1e30, 0.1, -0.49999997, 255.5}
		for j, v := range specials {
			if j < len(p.YRef) {
				p.YRef[j] = v
			}
		}
		if k > 0 {
			p.Kernel = randomKernel(rng, k)
		}
		b.Pairs = append(b.Pairs, p)
	}
	return b
}

func randomKernel(rng *rand.Rand, k int) []float32 {
	kern := make([]float32, k*k)
	var sum float64
	for j := range kern {
		if j > 0 || k == 1 { // a zero weight is allowed
			kern[j] = rng.Float32() + 1e-3
		}
		sum += float64(kern[j])
	}
	for j := range kern {
		kern[j] = float32(float64(kern[j]) / sum)
	}
	return kern
}

// fixedBatch is the deterministic batch of a golden file: no random
// generator, only arithmetic, so it never changes.
func fixedBatch(deg string) *Batch {
	var h Header
	switch deg {
	case DegradationPDM:
		h = Header{Scale: 4, HRH: 8, HRW: 8, LRH: 2, LRW: 2, KernelSize: 3, Degradation: deg}
	case DegradationBicubic:
		h = Header{Scale: 3, HRH: 6, HRW: 5, LRH: 2, LRW: 2, Degradation: deg}
	default:
		panic(deg)
	}
	b := &Batch{Header: h}
	for i := 0; i < 2; i++ {
		p := Pair{
			SampleID:    FormatSampleID("golden-run", "producer-0", 42, uint32(i)),
			RunID:       "golden-run",
			ProducerID:  "producer-0",
			BatchSeq:    42,
			Index:       uint32(i),
			Seed:        0xdeadbeef00000000 + uint64(i),
			SourceImage: fmt.Sprintf("DIV2K/08%02d.png", i+1),
			CropX:       int32(16 * (i + 1)),
			CropY:       int32(24 * (i + 1)),
			CropW:       int32(h.HRW),
			CropH:       int32(h.HRH),
			Dihedral:    uint8(5 * i),
			XRef:        make([]uint8, 3*h.HRH*h.HRW),
			YRef:        make([]float32, 3*h.LRH*h.LRW),
			NoiseMean:   float32(i) * 0.001,
			NoiseStd:    0.01 + float32(i)*0.02,
		}
		if deg == DegradationPDM {
			p.WeightsVersion = 7
			p.WeightsSHA256 = sha("pdm-weights-v7")
			p.Kernel = make([]float32, 9)
			for j := range p.Kernel {
				p.Kernel[j] = []float32{1, 2, 1, 2, 4, 2, 1, 2, 1}[j] / 16
			}
		}
		for j := range p.XRef {
			p.XRef[j] = uint8(j*37 + i*101)
		}
		for j := range p.YRef {
			p.YRef[j] = float32(j-5)*0.1251 + float32(i) // from -0.6 up past 1
		}
		p.YRef[1] = float32(math.Copysign(0, -1))
		b.Pairs = append(b.Pairs, p)
	}
	return b
}

func f32eq(a, b []float32) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// diffBatch returns "" when a and b are equal bit for bit, else the first
// difference.
func diffBatch(a, b *Batch) string {
	if a.Header != b.Header {
		return fmt.Sprintf("header %+v != %+v", a.Header, b.Header)
	}
	if len(a.Pairs) != len(b.Pairs) {
		return fmt.Sprintf("%d pairs != %d", len(a.Pairs), len(b.Pairs))
	}
	for i := range a.Pairs {
		p, q := a.Pairs[i], b.Pairs[i]
		switch {
		case !bytes.Equal(p.XRef, q.XRef):
			return fmt.Sprintf("row %d: x_ref differs", i)
		case !f32eq(p.YRef, q.YRef):
			return fmt.Sprintf("row %d: y_ref differs", i)
		case !f32eq(p.Kernel, q.Kernel):
			return fmt.Sprintf("row %d: kernel differs: %v vs %v", i, p.Kernel, q.Kernel)
		case math.Float32bits(p.NoiseMean) != math.Float32bits(q.NoiseMean) || math.Float32bits(p.NoiseStd) != math.Float32bits(q.NoiseStd):
			return fmt.Sprintf("row %d: noise differs", i)
		}
		p.XRef, p.YRef, p.Kernel, q.XRef, q.YRef, q.Kernel = nil, nil, nil, nil, nil, nil
		p.NoiseMean, p.NoiseStd, q.NoiseMean, q.NoiseStd = 0, 0, 0, 0
		if !reflect.DeepEqual(p, q) {
			return fmt.Sprintf("row %d: %+v != %+v", i, p, q)
		}
	}
	return ""
}

// wantErr checks err wraps sentinel and mentions every word in mention.
func wantErr(t testing.TB, err, sentinel error, mention ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %v", err, sentinel)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %q is %T, not *Error", err, err)
	}
	for _, m := range mention {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
}

// writeStream writes an IPC stream of sc and recs by hand, bypassing Encode.
func writeStream(t testing.TB, mem memory.Allocator, sc *arrow.Schema, recs ...arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc), ipc.WithAllocator(mem))
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return buf.Bytes()
}

// rawMessage encodes b without validating it, with the schema rewritten by
// edit (nil: unchanged).
func rawMessage(t testing.TB, b *Batch, edit func(sc *arrow.Schema) *arrow.Schema) []byte {
	t.Helper()
	mem := checkedMem(t)
	rec, err := buildRecord(b, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if edit == nil {
		return writeStream(t, mem, rec.Schema(), rec)
	}
	sc := edit(rec.Schema())
	rec2 := array.NewRecordBatch(sc, rec.Columns(), rec.NumRows())
	defer rec2.Release()
	return writeStream(t, mem, sc, rec2)
}

// withMeta returns a copy of sc with metadata key set to v, or removed when
// v is "<delete>".
func withMeta(key, v string) func(*arrow.Schema) *arrow.Schema {
	return func(sc *arrow.Schema) *arrow.Schema {
		md := sc.Metadata()
		var keys, vals []string
		found := false
		for i, k := range md.Keys() {
			val := md.Values()[i]
			if k == key {
				found = true
				if v == "<delete>" {
					continue
				}
				val = v
			}
			keys, vals = append(keys, k), append(vals, val)
		}
		if !found && v != "<delete>" {
			keys, vals = append(keys, key), append(vals, v)
		}
		nmd := arrow.NewMetadata(keys, vals)
		return arrow.NewSchema(sc.Fields(), &nmd)
	}
}
