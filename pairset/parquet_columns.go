package pairset

import (
	"fmt"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	pqschema "github.com/apache/arrow-go/v18/parquet/schema"
)

// pcol is one Parquet column: its schema node and how a row group's rows
// fill it. The order and names are Columns' (TestColumnsMatch).
type pcol struct {
	name  string
	node  func() (pqschema.Node, error)
	write func(cw file.ColumnChunkWriter, rows []prow) error
}

var parquetColumns = []pcol{
	strCol("sample_id", func(r *prow) string { return r.p.SampleID }),
	strCol("name", func(r *prow) string { return r.name }),
	strCol("run_id", func(r *prow) string { return r.p.RunID }),
	strCol("producer_id", func(r *prow) string { return r.p.ProducerID }),
	i64Col("batch_seq", false, func(r *prow) int64 { return int64(r.p.BatchSeq) }),
	i32Col("index", 32, false, func(r *prow) int32 { return int32(r.p.Index) }),
	i64Col("seed", false, func(r *prow) int64 { return int64(r.p.Seed) }),
	i64Col("weights_version", false, func(r *prow) int64 { return int64(r.p.WeightsVersion) }),
	strCol("weights_sha256", func(r *prow) string { return r.p.WeightsSHA256 }),
	strCol("source_image", func(r *prow) string { return r.p.SourceImage }),
	i32Col("crop_x", 32, true, func(r *prow) int32 { return r.p.CropX }),
	i32Col("crop_y", 32, true, func(r *prow) int32 { return r.p.CropY }),
	i32Col("crop_w", 32, true, func(r *prow) int32 { return r.p.CropW }),
	i32Col("crop_h", 32, true, func(r *prow) int32 { return r.p.CropH }),
	i32Col("dihedral", 8, false, func(r *prow) int32 { return int32(r.p.Dihedral) }),
	i32Col("scale", 32, true, func(r *prow) int32 { return int32(r.h.Scale) }),
	i32Col("hr_h", 32, true, func(r *prow) int32 { return int32(r.h.HRH) }),
	i32Col("hr_w", 32, true, func(r *prow) int32 { return int32(r.h.HRW) }),
	i32Col("lr_h", 32, true, func(r *prow) int32 { return int32(r.h.LRH) }),
	i32Col("lr_w", 32, true, func(r *prow) int32 { return int32(r.h.LRW) }),
	i32Col("kernel_size", 32, true, func(r *prow) int32 { return int32(r.h.KernelSize) }),
	strCol("degradation", func(r *prow) string { return r.h.Degradation }),
	strCol("device", func(r *prow) string { return r.h.Device }),
	u8ListCol("x_ref", func(r *prow) []uint8 { return r.p.XRef }),
	f32ListCol("y_ref", false, func(r *prow) []float32 { return r.p.YRef }),
	f32ListCol("kernel", true, func(r *prow) []float32 { return r.p.Kernel }),
	f32Col("noise_mean", func(r *prow) float32 { return r.p.NoiseMean }),
	f32Col("noise_std", func(r *prow) float32 { return r.p.NoiseStd }),
	i64Col("stream_seq", false, func(r *prow) int64 { return int64(r.o.Seq) }),
	{
		name: "stream_time",
		node: func() (pqschema.Node, error) {
			return pqschema.NewPrimitiveNodeLogical("stream_time", parquet.Repetitions.Required,
				pqschema.NewTimestampLogicalType(true, pqschema.TimeUnitNanos), parquet.Types.Int64, -1, -1)
		},
		write: scalar(func(r *prow) int64 { return r.o.Time.UnixNano() }, (*file.Int64ColumnChunkWriter).WriteBatch),
	},
	strCol("subject", func(r *prow) string { return r.o.Subject }),
}

// scalar returns the writer of a required scalar column: no levels.
func scalar[T any, W file.ColumnChunkWriter](get func(*prow) T, batch func(W, []T, []int16, []int16) (int64, error)) func(file.ColumnChunkWriter, []prow) error {
	return func(cw file.ColumnChunkWriter, rows []prow) error {
		w, ok := cw.(W)
		if !ok {
			return fmt.Errorf("column writer %T", cw)
		}
		v := make([]T, len(rows))
		for i := range rows {
			v[i] = get(&rows[i])
		}
		_, err := batch(w, v, nil, nil)
		return err
	}
}

func strCol(name string, get func(*prow) string) pcol {
	return pcol{
		name: name,
		node: func() (pqschema.Node, error) {
			return pqschema.NewPrimitiveNodeLogical(name, parquet.Repetitions.Required, pqschema.StringLogicalType{}, parquet.Types.ByteArray, -1, -1)
		},
		write: scalar(func(r *prow) parquet.ByteArray { return parquet.ByteArray(get(r)) }, (*file.ByteArrayColumnChunkWriter).WriteBatch),
	}
}

func i32Col(name string, bits int8, signed bool, get func(*prow) int32) pcol {
	return pcol{
		name: name,
		node: func() (pqschema.Node, error) {
			return pqschema.NewPrimitiveNodeLogical(name, parquet.Repetitions.Required, pqschema.NewIntLogicalType(bits, signed), parquet.Types.Int32, -1, -1)
		},
		write: scalar(get, (*file.Int32ColumnChunkWriter).WriteBatch),
	}
}

// i64Col is a 64-bit integer column; an unsigned one holds the uint64's
// bits (Parquet's UINT_64 annotation).
func i64Col(name string, signed bool, get func(*prow) int64) pcol {
	return pcol{
		name: name,
		node: func() (pqschema.Node, error) {
			return pqschema.NewPrimitiveNodeLogical(name, parquet.Repetitions.Required, pqschema.NewIntLogicalType(64, signed), parquet.Types.Int64, -1, -1)
		},
		write: scalar(get, (*file.Int64ColumnChunkWriter).WriteBatch),
	}
}

func f32Col(name string, get func(*prow) float32) pcol {
	return pcol{
		name: name,
		node: func() (pqschema.Node, error) {
			return pqschema.NewPrimitiveNode(name, parquet.Repetitions.Required, parquet.Types.Float, -1, -1)
		},
		write: scalar(get, (*file.Float32ColumnChunkWriter).WriteBatch),
	}
}

// listNode is "<rep> group name (LIST) { repeated group list { required
// element } }": its leaf has max repetition level 1 and max definition
// level 1 (required list) or 2 (optional list).
func listNode(name string, optional bool, elem func() (pqschema.Node, error)) func() (pqschema.Node, error) {
	return func() (pqschema.Node, error) {
		e, err := elem()
		if err != nil {
			return nil, err
		}
		rep := parquet.Repetitions.Required
		if optional {
			rep = parquet.Repetitions.Optional
		}
		return pqschema.ListOfWithName(name, e, rep, -1)
	}
}

// listLevels fills the levels of one row's list of n elements: def is
// the leaf's max definition level for each element, rep 0 for the first
// and 1 after. An empty list is one entry at def-1, a null list (optional
// lists only) one entry at 0.
func listLevels(n int, null bool, maxDef int16, def, rep []int16) ([]int16, []int16) {
	def, rep = def[:0], rep[:0]
	switch {
	case null:
		return append(def, 0), append(rep, 0)
	case n == 0:
		return append(def, maxDef-1), append(rep, 0)
	}
	for i := range n {
		def = append(def, maxDef)
		rep = append(rep, min(int16(i), 1))
	}
	return def, rep
}

func u8ListCol(name string, get func(*prow) []uint8) pcol {
	return pcol{
		name: name,
		node: listNode(name, false, func() (pqschema.Node, error) {
			return pqschema.NewPrimitiveNodeLogical("element", parquet.Repetitions.Required, pqschema.NewIntLogicalType(8, false), parquet.Types.Int32, -1, -1)
		}),
		write: func(cw file.ColumnChunkWriter, rows []prow) error {
			w, ok := cw.(*file.Int32ColumnChunkWriter)
			if !ok {
				return fmt.Errorf("column writer %T", cw)
			}
			var def, rep []int16
			var v []int32
			for i := range rows {
				b := get(&rows[i])
				v = v[:0]
				for _, x := range b {
					v = append(v, int32(x))
				}
				def, rep = listLevels(len(b), false, 1, def, rep)
				if _, err := w.WriteBatch(v, def, rep); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func f32ListCol(name string, optional bool, get func(*prow) []float32) pcol {
	maxDef := int16(1)
	if optional {
		maxDef = 2
	}
	return pcol{
		name: name,
		node: listNode(name, optional, func() (pqschema.Node, error) {
			return pqschema.NewPrimitiveNode("element", parquet.Repetitions.Required, parquet.Types.Float, -1, -1)
		}),
		write: func(cw file.ColumnChunkWriter, rows []prow) error {
			w, ok := cw.(*file.Float32ColumnChunkWriter)
			if !ok {
				return fmt.Errorf("column writer %T", cw)
			}
			var def, rep []int16
			for i := range rows {
				v := get(&rows[i])
				def, rep = listLevels(len(v), optional && len(v) == 0, maxDef, def, rep)
				if _, err := w.WriteBatch(v, def, rep); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
