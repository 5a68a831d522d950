package schema

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// EncodeOptions configures Encode.
type EncodeOptions struct {
	Allocator   memory.Allocator // nil: memory.DefaultAllocator
	Compression string           // "", "lz4" or "zstd" (Arrow IPC body compression)
}

// Encode validates b and returns one self-contained Arrow IPC stream (schema
// message + one record batch + end-of-stream marker) holding all rows.
//
// The returned bytes are ordinary Go memory owned by the caller; every Arrow
// buffer Encode allocates from o.Allocator is released before it returns.
// Uncompressed output is deterministic: the same batch always gives the same
// bytes. Encode does not enforce DefaultMaxMessageBytes; callers that publish
// the message check its length against their transport's limit.
func Encode(b *Batch, o EncodeOptions) ([]byte, error) {
	if b == nil {
		return nil, invalidf(-1, "", "nil batch")
	}
	var codec []ipc.Option
	switch o.Compression {
	case "":
	case "lz4":
		codec = append(codec, ipc.WithLZ4())
	case "zstd":
		codec = append(codec, ipc.WithZstd())
	default:
		return nil, fmt.Errorf("schema: unknown compression %q, want \"\", \"lz4\" or \"zstd\"", o.Compression)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if len(codec) == 0 {
		// Uncompressed: laid out directly, the same bytes as arrow-go's
		// writer gives (encodeArrow).
		m, err := NewMessage(b, nil)
		if err != nil {
			return nil, err
		}
		return m.finish(false)
	}
	return encodeArrow(b, o, codec)
}

// encodeArrow is Encode through arrow-go's record builder and IPC writer,
// for a valid batch: the reference of the direct layout (NewMessage) and
// the path of compressed messages.
func encodeArrow(b *Batch, o EncodeOptions, codec []ipc.Option) ([]byte, error) {
	mem := o.Allocator
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	rec, err := buildRecord(b, mem)
	if err != nil {
		return nil, err
	}
	defer rec.Release()

	var buf bytes.Buffer
	buf.Grow(encodedSizeHint(b))
	w := ipc.NewWriter(&buf, append([]ipc.Option{ipc.WithSchema(rec.Schema()), ipc.WithAllocator(mem)}, codec...)...)
	werr := w.Write(rec)
	if err := errors.Join(werr, w.Close()); err != nil {
		return nil, fmt.Errorf("schema: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// encodedSizeHint is about the uncompressed message size.
func encodedSizeHint(b *Batch) int {
	xn, yn, kn := b.Header.listSizes()
	return 4096 + len(b.Pairs)*(xn+4*yn+4*kn+256)
}

// buildRecord turns a valid batch into an Arrow record batch. The caller
// releases it.
func buildRecord(b *Batch, mem memory.Allocator) (arrow.RecordBatch, error) {
	sc := ArrowSchema(b.Header)
	ps := b.Pairs
	n := len(ps)
	cols := make([]arrow.Array, numColumns)
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	var err error
	strCol := func(i int, get func(p *Pair) string) {
		if err == nil {
			cols[i], err = stringArray(mem, columns[i].name, n, func(r int) string { return get(&ps[r]) })
		}
	}
	strCol(iSampleID, func(p *Pair) string { return p.SampleID })
	strCol(iRunID, func(p *Pair) string { return p.RunID })
	strCol(iProducerID, func(p *Pair) string { return p.ProducerID })
	strCol(iWeightsSHA256, func(p *Pair) string { return p.WeightsSHA256 })
	strCol(iSourceImage, func(p *Pair) string { return p.SourceImage })
	if err != nil {
		return nil, err
	}
	cols[iBatchSeq] = primitiveArray(mem, arrow.PrimitiveTypes.Uint64, n, func(r int) uint64 { return ps[r].BatchSeq })
	cols[iIndex] = primitiveArray(mem, arrow.PrimitiveTypes.Uint32, n, func(r int) uint32 { return ps[r].Index })
	cols[iSeed] = primitiveArray(mem, arrow.PrimitiveTypes.Uint64, n, func(r int) uint64 { return ps[r].Seed })
	cols[iWeightsVersion] = primitiveArray(mem, arrow.PrimitiveTypes.Uint64, n, func(r int) uint64 { return ps[r].WeightsVersion })
	cols[iCropX] = primitiveArray(mem, arrow.PrimitiveTypes.Int32, n, func(r int) int32 { return ps[r].CropX })
	cols[iCropY] = primitiveArray(mem, arrow.PrimitiveTypes.Int32, n, func(r int) int32 { return ps[r].CropY })
	cols[iCropW] = primitiveArray(mem, arrow.PrimitiveTypes.Int32, n, func(r int) int32 { return ps[r].CropW })
	cols[iCropH] = primitiveArray(mem, arrow.PrimitiveTypes.Int32, n, func(r int) int32 { return ps[r].CropH })
	cols[iDihedral] = primitiveArray(mem, arrow.PrimitiveTypes.Uint8, n, func(r int) uint8 { return ps[r].Dihedral })
	xn, yn, kn := b.Header.listSizes()
	cols[iXRef] = listArray(mem, sc.Field(iXRef).Type, n, xn, func(r int) []uint8 { return ps[r].XRef })
	cols[iYRef] = listArray(mem, sc.Field(iYRef).Type, n, yn, func(r int) []float32 { return ps[r].YRef })
	cols[iKernel] = listArray(mem, sc.Field(iKernel).Type, n, kn, func(r int) []float32 { return ps[r].Kernel })
	cols[iNoiseMean] = primitiveArray(mem, arrow.PrimitiveTypes.Float32, n, func(r int) float32 { return ps[r].NoiseMean })
	cols[iNoiseStd] = primitiveArray(mem, arrow.PrimitiveTypes.Float32, n, func(r int) float32 { return ps[r].NoiseStd })
	return array.NewRecordBatch(sc, cols, int64(n)), nil
}

// fixedWidth are the value types of the fixed-width columns, which Encode
// writes and Decode reads out of Arrow buffers.
type fixedWidth interface {
	~uint8 | ~uint32 | ~uint64 | ~int32 | ~int64 | ~float32
}

// newBuffer returns a buffer of exactly nbytes from mem.
func newBuffer(mem memory.Allocator, nbytes int) *memory.Buffer {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(nbytes)
	return buf
}

// makeArray wraps data in an array and drops the caller's references to
// data and its buffers.
func makeArray(data *array.Data, bufs ...*memory.Buffer) arrow.Array {
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	arr := array.MakeFromData(data)
	data.Release()
	return arr
}

func primitiveArray[T fixedWidth](mem memory.Allocator, dt arrow.DataType, n int, get func(int) T) arrow.Array {
	var zero T
	buf := newBuffer(mem, n*int(unsafe.Sizeof(zero)))
	vals := arrow.GetData[T](buf.Bytes())
	for i := range vals {
		vals[i] = get(i)
	}
	return makeArray(array.NewData(dt, n, []*memory.Buffer{nil, buf}, nil, 0, 0), buf)
}

// listArray builds a fixed-size list column of n rows of size values each.
// A row whose get returns an empty slice is null; its child values are
// written as zeros.
func listArray[T fixedWidth](mem memory.Allocator, dt arrow.DataType, n, size int, get func(int) []T) arrow.Array {
	var zero T
	elem := dt.(*arrow.FixedSizeListType).Elem()
	childBuf := newBuffer(mem, n*size*int(unsafe.Sizeof(zero)))
	vals := arrow.GetData[T](childBuf.Bytes())
	nulls := 0
	for i := 0; i < n; i++ {
		dst := vals[i*size : (i+1)*size]
		if v := get(i); len(v) == 0 {
			clear(dst)
			nulls++
		} else {
			copy(dst, v)
		}
	}
	var bitmap *memory.Buffer
	if nulls > 0 {
		bitmap = newBuffer(mem, int(bitutil.BytesForBits(int64(n))))
		bits := bitmap.Bytes()
		clear(bits)
		for i := 0; i < n; i++ {
			if len(get(i)) != 0 {
				bitutil.SetBit(bits, i)
			}
		}
	}
	child := array.NewData(elem, n*size, []*memory.Buffer{nil, childBuf}, nil, 0, 0)
	childBuf.Release()
	data := array.NewData(dt, n, []*memory.Buffer{bitmap}, []arrow.ArrayData{child}, nulls, 0)
	child.Release()
	return makeArray(data, bitmap)
}

func stringArray(mem memory.Allocator, name string, n int, get func(int) string) (arrow.Array, error) {
	total := 0
	for i := 0; i < n; i++ {
		total += len(get(i))
	}
	if total > math.MaxInt32 {
		return nil, invalidf(-1, name, "%s holds %d bytes of strings, Arrow utf8 limit %d", name, total, math.MaxInt32)
	}
	offBuf := newBuffer(mem, (n+1)*4)
	offs := arrow.GetData[int32](offBuf.Bytes())
	valBuf := newBuffer(mem, total)
	vals := valBuf.Bytes()
	pos := 0
	for i := 0; i < n; i++ {
		offs[i] = int32(pos)
		pos += copy(vals[pos:], get(i))
	}
	offs[n] = int32(pos)
	return makeArray(array.NewData(arrow.BinaryTypes.String, n, []*memory.Buffer{nil, offBuf, valBuf}, nil, 0, 0), offBuf, valBuf), nil
}
