package pairset_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/pdmflow/pdmflow/pairset"
	"github.com/pdmflow/pdmflow/schema"
)

// arrowType names a type as Columns does.
func arrowType(dt arrow.DataType) string {
	switch t := dt.(type) {
	case *arrow.ListType:
		return "list<" + arrowType(t.Elem()) + ">"
	case *arrow.StringType:
		return "string"
	case *arrow.TimestampType:
		return fmt.Sprintf("timestamp[%s, %s]", t.Unit, t.TimeZone)
	}
	return dt.String()
}

// TestParquetReadBack writes testStream in small files and row groups,
// reads every file back with arrow-go's Parquet reader and compares every
// pair, field by field and bit for bit, with the stream's.
func TestParquetReadBack(t *testing.T) {
	ctx := context.Background()
	msgs, bad := testStream()
	dst := openDir(t, t.TempDir())
	w, err := pairset.NewParquet(ctx, dst, pairset.Options{RowsPerFile: 7, RowGroupRows: 3, Version: "test", Source: "unit test"})
	if err != nil {
		t.Fatal(err)
	}
	m := write(t, w, msgs, bad)
	pairs, hdrs, origins := uniquePairs(msgs)
	checkManifest(t, dst, m, pairset.FormatParquet, len(pairs))
	if want := (len(pairs) + 6) / 7; len(m.Files) != want {
		t.Errorf("%d files, want %d", len(m.Files), want)
	}

	row := 0
	for fi, f := range m.Files {
		if want := fmt.Sprintf("pairs-%05d.parquet", fi); f.Key != want {
			t.Errorf("file %d is %s, want %s", fi, f.Key, want)
		}
		data, err := dst.Get(ctx, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		pf, err := file.NewParquetReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if got := pf.MetaData().KeyValueMetadata().FindValue("pdmflow.format"); got == nil || *got != pairset.FormatParquet {
			t.Errorf("%s: pdmflow.format %v", f.Key, got)
		}
		if rg := pf.NumRowGroups(); rg != (f.Rows+2)/3 {
			t.Errorf("%s: %d row groups for %d rows, want groups of 3", f.Key, rg, f.Rows)
		}
		pf.Close()
		tbl, err := pqarrow.ReadTable(ctx, bytes.NewReader(data), parquet.NewReaderProperties(memory.DefaultAllocator), pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatalf("%s: %v", f.Key, err)
		}
		sc := tbl.Schema()
		if sc.NumFields() != len(pairset.Columns) {
			t.Fatalf("%s: %d columns, want %d", f.Key, sc.NumFields(), len(pairset.Columns))
		}
		for i, c := range pairset.Columns {
			if fd := sc.Field(i); fd.Name != c.Name || arrowType(fd.Type) != c.Type || fd.Nullable != (c.Name == "kernel") {
				t.Errorf("column %d: %s %s nullable=%v, want %s %s", i, fd.Name, arrowType(fd.Type), fd.Nullable, c.Name, c.Type)
			}
		}
		if int(tbl.NumRows()) != f.Rows {
			t.Errorf("%s: %d rows, manifest says %d", f.Key, tbl.NumRows(), f.Rows)
		}
		tr := array.NewTableReader(tbl, 0)
		for tr.Next() {
			rec := tr.RecordBatch()
			col := func(name string) arrow.Array { return rec.Column(rec.Schema().FieldIndices(name)[0]) }
			for i := range int(rec.NumRows()) {
				if row >= len(pairs) {
					t.Fatalf("more rows than pairs")
				}
				p, h, o := pairs[row], hdrs[row], origins[row]
				name, _ := pairset.Name(p.SampleID)
				got := schema.Pair{
					SampleID: col("sample_id").(*array.String).Value(i), RunID: col("run_id").(*array.String).Value(i),
					ProducerID: col("producer_id").(*array.String).Value(i), BatchSeq: col("batch_seq").(*array.Uint64).Value(i),
					Index: col("index").(*array.Uint32).Value(i), Seed: col("seed").(*array.Uint64).Value(i),
					WeightsVersion: col("weights_version").(*array.Uint64).Value(i), WeightsSHA256: col("weights_sha256").(*array.String).Value(i),
					SourceImage: col("source_image").(*array.String).Value(i),
					CropX:       col("crop_x").(*array.Int32).Value(i), CropY: col("crop_y").(*array.Int32).Value(i),
					CropW: col("crop_w").(*array.Int32).Value(i), CropH: col("crop_h").(*array.Int32).Value(i),
					Dihedral:  col("dihedral").(*array.Uint8).Value(i),
					NoiseMean: col("noise_mean").(*array.Float32).Value(i), NoiseStd: col("noise_std").(*array.Float32).Value(i),
				}
				gh := schema.Header{
					Scale: int(col("scale").(*array.Int32).Value(i)), HRH: int(col("hr_h").(*array.Int32).Value(i)), HRW: int(col("hr_w").(*array.Int32).Value(i)),
					LRH: int(col("lr_h").(*array.Int32).Value(i)), LRW: int(col("lr_w").(*array.Int32).Value(i)),
					KernelSize: int(col("kernel_size").(*array.Int32).Value(i)), Degradation: col("degradation").(*array.String).Value(i),
					Device: col("device").(*array.String).Value(i),
				}
				want := *p
				want.XRef, want.YRef, want.Kernel = nil, nil, nil
				if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) || gh != *h {
					t.Errorf("row %d (%s):\n got %+v %+v\nwant %+v %+v", row, p.SampleID, got, gh, want, *h)
				}
				if n := col("name").(*array.String).Value(i); n != name {
					t.Errorf("row %d: name %q, want %q", row, n, name)
				}
				if s, ts, sub := col("stream_seq").(*array.Uint64).Value(i), col("stream_time").(*array.Timestamp).Value(i), col("subject").(*array.String).Value(i); s != o.Seq || int64(ts) != o.Time.UnixNano() || sub != o.Subject {
					t.Errorf("row %d: stream %d %d %s, want %d %d %s", row, s, ts, sub, o.Seq, o.Time.UnixNano(), o.Subject)
				}
				xl := col("x_ref").(*array.List)
				a, b := xl.ValueOffsets(i)
				if x := xl.ListValues().(*array.Uint8).Uint8Values()[a:b]; !bytes.Equal(x, p.XRef) {
					t.Errorf("row %d: x_ref differs", row)
				}
				yl := col("y_ref").(*array.List)
				a, b = yl.ValueOffsets(i)
				if y := yl.ListValues().(*array.Float32).Float32Values()[a:b]; !equalF32(y, p.YRef) {
					t.Errorf("row %d: y_ref differs", row)
				}
				kl := col("kernel").(*array.List)
				if h.KernelSize == 0 {
					if !kl.IsNull(i) {
						t.Errorf("row %d: kernel not null without kernels", row)
					}
				} else {
					a, b = kl.ValueOffsets(i)
					if kl.IsNull(i) || !equalF32(kl.ListValues().(*array.Float32).Float32Values()[a:b], p.Kernel) {
						t.Errorf("row %d: kernel differs", row)
					}
				}
				row++
			}
		}
		if err := tr.Err(); err != nil {
			t.Fatal(err)
		}
		tr.Release()
		tbl.Release()
	}
	if row != len(pairs) {
		t.Errorf("read %d rows, want %d", row, len(pairs))
	}
}
