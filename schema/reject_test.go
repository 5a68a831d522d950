package schema

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestTruncatedEveryOffset(t *testing.T) {
	for _, deg := range goldens {
		for _, comp := range compressions {
			msg := mustEncode(t, fixedBatch(deg), comp)
			for n := 0; n < len(msg); n++ {
				_, err := decodeT(t, msg[:n], 0)
				if err == nil {
					t.Fatalf("%s/%q cut at %d of %d: no error", deg, comp, n, len(msg))
				}
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("%s/%q cut at %d of %d: %v, want ErrTruncated", deg, comp, n, len(msg), err)
				}
			}
		}
	}
}

// TestTruncatedBeforeMarker cuts the message just before its end-of-stream
// marker and puts a marker back: the framing then ends inside a message.
func TestTruncatedBeforeMarker(t *testing.T) {
	msg := mustEncode(t, fixedBatch(DegradationPDM), "")
	body := msg[:len(msg)-len(eos)]
	for _, cut := range []int{1, 8, 100, len(body) / 2} {
		m := append(append([]byte(nil), body[:len(body)-cut]...), eos[:]...)
		_, err := decodeT(t, m, 0)
		if err == nil || !(errors.Is(err, ErrTruncated) || errors.Is(err, ErrInvalid)) {
			t.Fatalf("cut %d: %v", cut, err)
		}
	}
}

func TestTooLarge(t *testing.T) {
	msg := mustEncode(t, fixedBatch(DegradationPDM), "")
	_, err := decodeT(t, msg, len(msg)-1)
	wantErr(t, err, ErrTooLarge, "limit")
	if _, err := decodeT(t, msg, len(msg)); err != nil {
		t.Fatalf("message of exactly the limit: %v", err)
	}
	big := make([]byte, DefaultMaxMessageBytes+1)
	_, err = decodeT(t, big, 0)
	wantErr(t, err, ErrTooLarge, "8388609")
}

func TestArena(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	a := newArena(mem, 1000)
	b1 := a.Allocate(600)
	b2 := a.Allocate(100)
	b2 = a.Reallocate(300, b2)
	func() {
		defer func() {
			if _, ok := recover().(budgetError); !ok {
				t.Fatal("allocation over the limit did not panic with budgetError")
			}
		}()
		a.Allocate(101)
	}()
	if !a.exceeded {
		t.Fatal("exceeded not set")
	}
	a.Free(b1)
	if a.size != 300 {
		t.Fatalf("size %d, want 300", a.size)
	}
	_ = b2
	if n := a.sweep(); n != 300 {
		t.Fatalf("sweep freed %d, want 300", n)
	}
	mem.AssertSize(t, 0)
}

// TestDecompressionBomb patches the uncompressed-length prefix of the x_ref
// buffer of a compressed message to a huge value.
func TestDecompressionBomb(t *testing.T) {
	b := fixedBatch(DegradationPDM)
	n := len(b.Pairs) * len(b.Pairs[0].XRef)
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(n))
	for _, comp := range []string{"lz4", "zstd"} {
		msg := mustEncode(t, b, comp)
		i := bytes.LastIndex(msg, prefix[:]) // in the body, after the metadata
		if i < 0 {
			t.Fatalf("%s: no length prefix %d in message", comp, n)
		}
		const max = 1 << 20 // budget: 64 MiB
		budget := decodeBudget(max)
		for _, c := range []struct {
			size    uint64
			mention string
		}{
			{1 << 40, "decompresses to more than"},
			{1 << 62, "decompresses to more than"},
			{uint64(budget) + 1, "decompresses to more than"},
		} {
			m := bytes.Clone(msg)
			binary.LittleEndian.PutUint64(m[i:], c.size)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			_, err := Decode(m, DecodeOptions{Allocator: mem, MaxMessageBytes: max})
			mem.AssertSize(t, 0)
			wantErr(t, err, ErrTooLarge, c.mention)
		}
		m := bytes.Clone(msg)
		binary.LittleEndian.PutUint64(m[i:], uint64(1<<64-2)) // -2
		_, err := decodeT(t, m, 0)
		wantErr(t, err, ErrInvalid, "uncompressed length -2")
		// A lie in the other direction is corruption.
		m = bytes.Clone(msg)
		binary.LittleEndian.PutUint64(m[i:], uint64(n+1))
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		_, err = Decode(m, DecodeOptions{Allocator: mem})
		mem.AssertSize(t, 0)
		wantErr(t, err, ErrInvalid)
	}
}

func TestVersionCheck(t *testing.T) {
	b := fixedBatch(DegradationPDM)
	for _, v := range []string{"2.0", "0.9", "1", "one.zero", "", "1.0.1", "+1.0", "1.-1"} {
		_, err := decodeT(t, rawMessage(t, b, withMeta(MetaSchemaVersion, v)), 0)
		wantErr(t, err, ErrVersion, MetaSchemaVersion)
	}
	_, err := decodeT(t, rawMessage(t, b, withMeta(MetaSchemaVersion, "<delete>")), 0)
	wantErr(t, err, ErrVersion, MetaSchemaVersion)

	// The version is checked before the rest of the stream: a message of
	// another major is ErrVersion even if it breaks 1.x framing rules.
	mem := checkedMem(t)
	rec, err := buildRecord(b, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	sc := withMeta(MetaSchemaVersion, "2.0")(rec.Schema())
	rec2 := array.NewRecordBatch(sc, rec.Columns(), rec.NumRows())
	defer rec2.Release()
	_, err = decodeT(t, writeStream(t, mem, sc, rec2, rec2), 0)
	wantErr(t, err, ErrVersion, "2.0")

	for _, v := range []string{"1.7", "1.0", "1.12"} {
		got, err := decodeT(t, rawMessage(t, b, withMeta(MetaSchemaVersion, v)), 0)
		if err != nil {
			t.Fatalf("version %s: %v", v, err)
		}
		if d := diffBatch(b, got); d != "" {
			t.Fatalf("version %s: %s", v, d)
		}
	}
	// Unknown metadata keys are ignored.
	if _, err := decodeT(t, rawMessage(t, b, withMeta("pdmflow.future", "x")), 0); err != nil {
		t.Fatal(err)
	}
}

// withExtraColumn appends a column "extra" and sets the version.
func extraColumnMessage(t *testing.T, b *Batch, version string) []byte {
	mem := checkedMem(t)
	rec, err := buildRecord(b, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	extra := primitiveArray(mem, arrow.PrimitiveTypes.Uint32, len(b.Pairs), func(i int) uint32 { return uint32(i) })
	defer extra.Release()
	sc := withMeta(MetaSchemaVersion, version)(rec.Schema())
	sc, err = sc.AddField(sc.NumFields(), arrow.Field{Name: "extra", Type: arrow.PrimitiveTypes.Uint32})
	if err != nil {
		t.Fatal(err)
	}
	rec2 := array.NewRecordBatch(sc, append(rec.Columns(), extra), rec.NumRows())
	defer rec2.Release()
	return writeStream(t, mem, sc, rec2)
}

func TestExtraColumns(t *testing.T) {
	b := fixedBatch(DegradationBicubic)
	got, err := decodeT(t, extraColumnMessage(t, b, "1.3"), 0)
	if err != nil {
		t.Fatalf("newer minor with an extra column: %v", err)
	}
	if d := diffBatch(b, got); d != "" {
		t.Fatal(d)
	}
	_, err = decodeT(t, extraColumnMessage(t, b, "1.0"), 0)
	wantErr(t, err, ErrInvalid, "extra")
}

func TestMetadataRejected(t *testing.T) {
	b := fixedBatch(DegradationPDM)
	for _, c := range []struct{ key, val, mention string }{
		{MetaHRShape, "<delete>", MetaHRShape},
		{MetaLRShape, "<delete>", MetaLRShape},
		{MetaScale, "<delete>", MetaScale},
		{MetaKernelSize, "<delete>", MetaKernelSize},
		{MetaDegradation, "<delete>", MetaDegradation},
		{MetaLRShape, "3,3,3", "lr_shape"},
		{MetaLRShape, "3,2", MetaLRShape},
		{MetaHRShape, "1,8,8", MetaHRShape},
		{MetaHRShape, "3,8,x", MetaHRShape},
		{MetaScale, "5", "scale"},
		{MetaScale, "-4", MetaScale},
		{MetaScale, "2", "lr_shape"}, // HR 8 at scale 2 wants LR 4
		{MetaKernelSize, "4", "kernel_size"},
		{MetaKernelSize, "5", "kernel"}, // list size 9 != 25
		{MetaDegradation, "jpeg", "degradation"},
		{MetaHRShape, "3,8,7", "x_ref"}, // LR stays 2x2, x_ref list size 192 != 168
	} {
		_, err := decodeT(t, rawMessage(t, b, withMeta(c.key, c.val)), 0)
		wantErr(t, err, ErrInvalid, c.mention)
	}
}

// replaceColumn rewrites column i of the batch's record with arr under
// field f.
func replaceColumn(t *testing.T, b *Batch, i int, f arrow.Field, arr func(mem memory.Allocator) arrow.Array) []byte {
	mem := checkedMem(t)
	rec, err := buildRecord(b, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	fields := append([]arrow.Field(nil), rec.Schema().Fields()...)
	fields[i] = f
	md := rec.Schema().Metadata()
	sc := arrow.NewSchema(fields, &md)
	cols := append([]arrow.Array(nil), rec.Columns()...)
	a := arr(mem)
	defer a.Release()
	cols[i] = a
	rec2 := array.NewRecordBatch(sc, cols, rec.NumRows())
	defer rec2.Release()
	return writeStream(t, mem, sc, rec2)
}

func TestColumnsRejected(t *testing.T) {
	b := fixedBatch(DegradationPDM)
	n := len(b.Pairs)

	// Wrong type.
	msg := replaceColumn(t, b, iBatchSeq, arrow.Field{Name: ColBatchSeq, Type: arrow.PrimitiveTypes.Int64},
		func(mem memory.Allocator) arrow.Array {
			return primitiveArray(mem, arrow.PrimitiveTypes.Int64, n, func(int) int64 { return 42 })
		})
	_, err := decodeT(t, msg, 0)
	wantErr(t, err, ErrInvalid, "batch_seq", "int64")

	// Wrong name.
	msg = replaceColumn(t, b, iSeed, arrow.Field{Name: "sede", Type: arrow.PrimitiveTypes.Uint64},
		func(mem memory.Allocator) arrow.Array {
			return primitiveArray(mem, arrow.PrimitiveTypes.Uint64, n, func(int) uint64 { return 1 })
		})
	_, err = decodeT(t, msg, 0)
	wantErr(t, err, ErrInvalid, "seed", "sede")

	// Wrong list size: y_ref of 13 values where the metadata says 3x2x2.
	yt := arrow.FixedSizeListOfNonNullable(13, arrow.PrimitiveTypes.Float32)
	msg = replaceColumn(t, b, iYRef, arrow.Field{Name: ColYRef, Type: yt},
		func(mem memory.Allocator) arrow.Array {
			return listArray(mem, yt, n, 13, func(int) []float32 { return make([]float32, 13) })
		})
	_, err = decodeT(t, msg, 0)
	wantErr(t, err, ErrInvalid, "y_ref", "13", "12")

	// Wrong element type in a list.
	xt := arrow.FixedSizeListOfNonNullable(192, arrow.PrimitiveTypes.Int32)
	msg = replaceColumn(t, b, iXRef, arrow.Field{Name: ColXRef, Type: xt},
		func(mem memory.Allocator) arrow.Array {
			return listArray(mem, xt, n, 192, func(int) []int32 { return make([]int32, 192) })
		})
	_, err = decodeT(t, msg, 0)
	wantErr(t, err, ErrInvalid, "x_ref")

	// Null in a non-nullable column.
	msg = replaceColumn(t, b, iRunID, arrow.Field{Name: ColRunID, Type: arrow.BinaryTypes.String, Nullable: true},
		func(mem memory.Allocator) arrow.Array {
			bld := array.NewStringBuilder(mem)
			defer bld.Release()
			bld.Append("golden-run")
			bld.AppendNull()
			return bld.NewArray()
		})
	_, err = decodeT(t, msg, 0)
	wantErr(t, err, ErrInvalid, "row 1", "run_id", "null")

	// Null y_ref row.
	msg = replaceColumn(t, b, iYRef, arrow.Field{Name: ColYRef, Type: arrow.FixedSizeListOfNonNullable(12, arrow.PrimitiveTypes.Float32), Nullable: true},
		func(mem memory.Allocator) arrow.Array {
			return listArray(mem, arrow.FixedSizeListOfNonNullable(12, arrow.PrimitiveTypes.Float32), n, 12,
				func(i int) []float32 { return b.Pairs[i].YRef[:i*12] })
		})
	_, err = decodeT(t, msg, 0)
	wantErr(t, err, ErrInvalid, "row 0", "y_ref", "null")

	// Missing kernel in a batch with kernel_size 3.
	kt := arrow.FixedSizeListOfNonNullable(9, arrow.PrimitiveTypes.Float32)
	msg = replaceColumn(t, b, iKernel, arrow.Field{Name: ColKernel, Type: kt, Nullable: true},
		func(mem memory.Allocator) arrow.Array {
			return listArray(mem, kt, n, 9, func(i int) []float32 { return b.Pairs[i].Kernel[:9*(1-i)] })
		})
	_, err = decodeT(t, msg, 0)
	wantErr(t, err, ErrInvalid, "row 1", "kernel", "null")

	// Missing columns.
	mem := checkedMem(t)
	rec, err := buildRecord(b, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	md := rec.Schema().Metadata()
	sc := arrow.NewSchema(rec.Schema().Fields()[:iNoiseStd], &md)
	rec2 := array.NewRecordBatch(sc, rec.Columns()[:iNoiseStd], rec.NumRows())
	defer rec2.Release()
	_, err = decodeT(t, writeStream(t, mem, sc, rec2), 0)
	wantErr(t, err, ErrInvalid, "noise_std")
}

func TestBatchCountRejected(t *testing.T) {
	b := fixedBatch(DegradationPDM)
	mem := checkedMem(t)
	rec, err := buildRecord(b, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()

	_, err = decodeT(t, writeStream(t, mem, rec.Schema(), rec, rec), 0)
	wantErr(t, err, ErrInvalid, "more than one record batch")

	_, err = decodeT(t, writeStream(t, mem, rec.Schema()), 0)
	wantErr(t, err, ErrInvalid, "no record batch")

	// Bytes after the end-of-stream marker (which then ends the message again).
	msg := writeStream(t, mem, rec.Schema(), rec)
	_, err = decodeT(t, append(bytes.Clone(msg), eos[:]...), 0)
	wantErr(t, err, ErrInvalid, "after the end-of-stream marker")

	// Only a marker: no schema.
	_, err = decodeT(t, eos[:], 0)
	wantErr(t, err, ErrTruncated)
}

// TestValuesRejected checks Decode applies Validate to what it read and
// Encode refuses the same batches.
func TestValuesRejected(t *testing.T) {
	for _, c := range []struct {
		name    string
		mutate  func(b *Batch)
		mention []string
	}{
		{"nan y_ref", func(b *Batch) { b.Pairs[1].YRef[3] = float32(math.NaN()) }, []string{"row 1", "y_ref[3]", "NaN"}},
		{"inf y_ref", func(b *Batch) { b.Pairs[0].YRef[0] = float32(math.Inf(-1)) }, []string{"row 0", "y_ref[0]"}},
		{"kernel sum", func(b *Batch) { b.Pairs[1].Kernel[4] = 0.5 }, []string{"row 1", "kernel", "sums to"}},
		{"kernel negative", func(b *Batch) { b.Pairs[0].Kernel[0], b.Pairs[0].Kernel[1] = -0.0625, 0.25 }, []string{"row 0", "kernel[0]"}},
		{"kernel nan", func(b *Batch) { b.Pairs[0].Kernel[8] = float32(math.NaN()) }, []string{"row 0", "kernel[8]"}},
		{"dihedral 8", func(b *Batch) { b.Pairs[1].Dihedral = 8 }, []string{"row 1", "dihedral", "8"}},
		{"empty sample id", func(b *Batch) { b.Pairs[0].SampleID = "" }, []string{"row 0", "sample_id", "empty"}},
		{"duplicate sample id", func(b *Batch) { b.Pairs[1].Index, b.Pairs[1].SampleID = 0, b.Pairs[0].SampleID }, []string{"row 1", "sample_id", "repeats row 0"}},
		{"empty run id", func(b *Batch) { b.Pairs[1].RunID = "" }, []string{"row 1", "run_id"}},
		{"empty producer id", func(b *Batch) { b.Pairs[1].ProducerID = "" }, []string{"row 1", "producer_id"}},
		{"empty source", func(b *Batch) { b.Pairs[0].SourceImage = "" }, []string{"row 0", "source_image"}},
		// Sample ids have one format, and it names the row.
		{"dot-dot sample id", func(b *Batch) { b.Pairs[0].SampleID = ".." }, []string{"row 0", "sample_id", `".."`}},
		{"path sample id", func(b *Batch) { b.Pairs[1].SampleID = "golden-run/../42/1" }, []string{"row 1", "sample_id"}},
		{"sample id of another producer", func(b *Batch) {
			b.Pairs[1].SampleID = FormatSampleID("golden-run", "producer-9", 42, 1)
		}, []string{"row 1", "sample_id", "producer-9", "golden-run/producer-0/42/1"}},
		{"sample id of another batch", func(b *Batch) {
			b.Pairs[0].SampleID = FormatSampleID("golden-run", "producer-0", 7, 0)
		}, []string{"row 0", "sample_id"}},
		{"sample id with a leading zero", func(b *Batch) { b.Pairs[1].SampleID = "golden-run/producer-0/042/1" }, []string{"row 1", "sample_id"}},
		{"run id with a slash", func(b *Batch) {
			b.Pairs[1].RunID = "golden/run"
			b.Pairs[1].SampleID = FormatSampleID("golden/run", "producer-0", 42, 1)
		}, []string{"row 1", "run_id", "A-Z"}},
		{"producer id of dots", func(b *Batch) {
			b.Pairs[0].ProducerID = ".."
			b.Pairs[0].SampleID = FormatSampleID("golden-run", "..", 42, 0)
		}, []string{"row 0", "producer_id"}},
		{"producer id too long", func(b *Batch) {
			id := strings.Repeat("p", MaxIDLen+1)
			b.Pairs[0].ProducerID = id
			b.Pairs[0].SampleID = FormatSampleID("golden-run", id, 42, 0)
		}, []string{"row 0", "producer_id"}},
		{"bad utf8", func(b *Batch) { b.Pairs[0].SourceImage = "a\xffb" }, []string{"row 0", "source_image", "UTF-8"}},
		{"bad sha", func(b *Batch) { b.Pairs[0].WeightsSHA256 = strings.ToUpper(b.Pairs[0].WeightsSHA256) }, []string{"row 0", "weights_sha256"}},
		{"sha without version", func(b *Batch) { b.Pairs[1].WeightsVersion = 0 }, []string{"row 1", "weights_sha256", "weights_version"}},
		{"negative crop", func(b *Batch) { b.Pairs[1].CropX = -1 }, []string{"row 1", "crop_x"}},
		{"empty crop", func(b *Batch) { b.Pairs[1].CropH = 0 }, []string{"row 1", "crop_h"}},
		{"noise std", func(b *Batch) { b.Pairs[0].NoiseStd = -0.1 }, []string{"row 0", "noise_std"}},
		{"noise mean", func(b *Batch) { b.Pairs[0].NoiseMean = float32(math.Inf(1)) }, []string{"row 0", "noise_mean"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := fixedBatch(DegradationPDM)
			c.mutate(b)
			_, err := Encode(b, EncodeOptions{Allocator: checkedMem(t)})
			wantErr(t, err, ErrInvalid, c.mention...)
			_, err = decodeT(t, rawMessage(t, b, nil), 0)
			wantErr(t, err, ErrInvalid, c.mention...)
		})
	}
}

// TestValidate covers shapes, which Encode checks before building anything.
func TestValidate(t *testing.T) {
	ok := fixedBatch(DegradationPDM)
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		mutate  func(b *Batch)
		mention []string
	}{
		{"scale", func(b *Batch) { b.Scale = 5 }, []string{"scale"}},
		{"lr formula", func(b *Batch) { b.LRH = 3 }, []string{"lr_shape", "3x3x2", "want 3x2x2"}},
		{"hr zero", func(b *Batch) { b.HRW = 0 }, []string{"hr_shape"}},
		{"even kernel", func(b *Batch) { b.KernelSize = 2 }, []string{"kernel_size"}},
		{"degradation", func(b *Batch) { b.Degradation = "PDM" }, []string{"degradation"}},
		{"no pairs", func(b *Batch) { b.Pairs = nil }, []string{"no pairs"}},
		{"x_ref length", func(b *Batch) { b.Pairs[1].XRef = b.Pairs[1].XRef[1:] }, []string{"row 1", "x_ref has 191 values, want 192 (3x8x8)"}},
		{"y_ref length", func(b *Batch) { b.Pairs[0].YRef = b.Pairs[0].YRef[1:] }, []string{"schema: row 0: y_ref has 11 values, want 12 (3x2x2)"}},
		{"kernel length", func(b *Batch) { b.Pairs[0].Kernel = b.Pairs[0].Kernel[:4] }, []string{"row 0", "kernel has 4 values, want 9"}},
		{"kernel missing", func(b *Batch) { b.Pairs[0].Kernel = nil }, []string{"row 0", "kernel is null"}},
		{"kernel without size", func(b *Batch) { b.KernelSize = 0 }, []string{"row 0", "kernel has 9 values, want none"}},
	} {
		b := fixedBatch(DegradationPDM)
		c.mutate(b)
		err := b.Validate()
		wantErr(t, err, ErrInvalid, c.mention...)
		_, err = Encode(b, EncodeOptions{Allocator: checkedMem(t)})
		wantErr(t, err, ErrInvalid, c.mention...)
	}
	if _, err := Encode(ok, EncodeOptions{Compression: "gzip"}); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Fatalf("unknown compression: %v", err)
	}
	if _, err := Encode(nil, EncodeOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil batch: %v", err)
	}
}

// TestCorruptBytes flips bytes of the golden messages one at a time: Decode
// must return (an error or a valid batch), never panic, and free everything.
func TestCorruptBytes(t *testing.T) {
	for _, deg := range goldens {
		for _, comp := range compressions {
			msg := mustEncode(t, fixedBatch(deg), comp)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			flips := []byte{0xff}
			if comp == "" {
				flips = append(flips, 0x01)
			}
			for i := range msg {
				for _, x := range flips {
					m := bytes.Clone(msg)
					m[i] ^= x
					b, err := Decode(m, DecodeOptions{Allocator: mem})
					if err == nil {
						if verr := b.Validate(); verr != nil {
							t.Fatalf("byte %d ^ %#x: Decode accepted an invalid batch: %v", i, x, verr)
						}
						continue
					}
					if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrTooLarge) {
						t.Fatalf("byte %d ^ %#x: error %v wraps no sentinel", i, x, err)
					}
				}
			}
			mem.AssertSize(t, 0)
		}
	}
}

// TestHugeVectorLength: a schema whose custom_metadata vector claims 2^31
// entries. Handed to arrow-go's ipc.NewReader as is, this 4 KiB message
// makes it allocate tens of GiB and die of a fatal out-of-memory error
// (no recover catches that); Decode must reject it before arrow-go sees it.
// testdata/fuzz/FuzzDecode/schema-metadata-length is the same input.
func TestHugeVectorLength(t *testing.T) {
	msg := mustEncode(t, fixedBatch(DegradationPDM), "")
	m := bytes.Clone(msg)
	// The schema's custom_metadata vector length, found by walking the
	// flatbuffer as scanStream does.
	meta := m[8 : 8+int(binary.LittleEndian.Uint32(m[4:]))]
	f := &fbuf{b: meta}
	root, err := f.indirect(0)
	if err != nil {
		t.Fatal(err)
	}
	msgT, err := f.table(root)
	if err != nil {
		t.Fatal(err)
	}
	hp, err := f.ref(msgT, 2)
	if err != nil {
		t.Fatal(err)
	}
	schemaT, err := f.table(hp)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.ref(schemaT, 2)
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint32(meta[p:]); n != 8 {
		t.Fatalf("found a vector of %d, want the 8 metadata pairs", n)
	}
	meta[p+3] ^= 0x7f
	_, err = decodeT(t, m, 0)
	wantErr(t, err, ErrInvalid, "metadata of message 0")
}

// extraFieldMessage is a message of a newer minor (1.2) with one extra
// column of type dt.
func extraFieldMessage(t *testing.T, dt arrow.DataType) []byte {
	b := fixedBatch(DegradationBicubic)
	mem := checkedMem(t)
	rec, err := buildRecord(b, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	extra := array.MakeArrayOfNull(mem, dt, len(b.Pairs))
	defer extra.Release()
	sc := withMeta(MetaSchemaVersion, "1.2")(rec.Schema())
	sc, err = sc.AddField(sc.NumFields(), arrow.Field{Name: "extra", Type: dt, Nullable: true})
	if err != nil {
		t.Fatal(err)
	}
	rec2 := array.NewRecordBatch(sc, append(rec.Columns(), extra), rec.NumRows())
	defer rec2.Release()
	return writeStream(t, mem, sc, rec2)
}

func TestSchemaLimits(t *testing.T) {
	var deep arrow.DataType = arrow.PrimitiveTypes.Uint8
	for i := 0; i < maxFieldDepth+2; i++ {
		deep = arrow.StructOf(arrow.Field{Name: "s", Type: deep, Nullable: true})
	}
	_, err := decodeT(t, extraFieldMessage(t, deep), 0)
	wantErr(t, err, ErrInvalid, "nested deeper")

	wide := make([]arrow.Field, maxFields)
	for i := range wide {
		wide[i] = arrow.Field{Name: "w", Type: arrow.PrimitiveTypes.Uint8, Nullable: true}
	}
	_, err = decodeT(t, extraFieldMessage(t, arrow.StructOf(wide...)), 0)
	wantErr(t, err, ErrInvalid, "more than 4096 fields")

	// A shallow nested extra column is fine in a newer minor.
	if _, err := decodeT(t, extraFieldMessage(t, arrow.StructOf(wide[:3]...)), 0); err != nil {
		t.Fatal(err)
	}
	// Dictionaries are not part of the format.
	dict := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	_, err = decodeT(t, extraFieldMessage(t, dict), 0)
	wantErr(t, err, ErrInvalid, "dictionar")
}

// TestParseSampleID: the one parser of sample ids accepts exactly what
// FormatSampleID writes for valid ids.
func TestParseSampleID(t *testing.T) {
	for _, want := range []SampleID{
		{"r", "p", 0, 0},
		{"run-1_A", "host-12345-cuda0", 1<<64 - 1, 1<<32 - 1},
		{strings.Repeat("a", MaxIDLen), strings.Repeat("Z", MaxIDLen), 10, 7},
	} {
		got, err := ParseSampleID(want.String())
		if err != nil || got != want {
			t.Fatalf("ParseSampleID(%q) = %+v, %v; want %+v", want.String(), got, err, want)
		}
	}
	for _, bad := range []string{
		"", "..", ".", "/", "r/p/1", "r/p/1/2/3", "r//1/2", "/p/1/2", "r/p//2", "r/p/1/",
		"../p/1/2", "r/../1/2", "r/./1/2", "r/p/-1/2", "r/p/+1/2", "r/p/01/2", "r/p/1/02", "r/p/1/4294967296",
		"r/p/18446744073709551616/0", "r/p/1 /2", "r p/q/1/2", "r/p\\x/1/2", "r/p\x00/1/2", "rü/p/1/2",
		strings.Repeat("a", MaxIDLen+1) + "/p/1/2",
	} {
		if got, err := ParseSampleID(bad); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSampleID(%q) = %+v, %v; want an ErrInvalid error", bad, got, err)
		}
	}
}

func FuzzParseSampleID(f *testing.F) {
	f.Add("r/p/1/2")
	f.Add("../../1/2")
	f.Add("run/prod/18446744073709551615/4294967295")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseSampleID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseSampleID(%q) = %+v, which formats as %q", s, id, id.String())
		}
		if strings.Contains(s, "..") || strings.ContainsAny(s, "\\\x00 .") {
			t.Fatalf("ParseSampleID accepted %q", s)
		}
	})
}
