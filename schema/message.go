package schema

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	flatbuffers "github.com/google/flatbuffers/go"
)

// This file writes uncompressed messages directly: the Arrow IPC stream is
// laid out in one allocation and every column is written into place, so a
// producer can cut its crops and resize them straight into the message
// (NewMessage, Message.XRef, Message.YRef) instead of building Go slices,
// copying them into Arrow buffers and copying those into an output buffer.
// The bytes are exactly those arrow-go's ipc.Writer gives for the same
// batch (encodeArrow, the reference, which the tests compare against on
// random batches, and which Encode still uses for compressed messages).

// Arrow IPC constants (format/Message.fbs, format/Schema.fbs) as arrow-go
// writes them; the message header types are prescan.go's.
const (
	ipcContinuation = 0xFFFFFFFF
	ipcMetadataV5   = 4  // MetadataVersion.V5
	ipcBitmapPad    = 64 // arrow-go pads a fresh all-null bitmap to this
)

// schemaMessages caches the encoded schema message (framing included) of
// every header seen. The schema message depends on the header alone, and a
// process sees few headers.
var schemaMessages sync.Map // Header -> []byte

// schemaMessage returns the encoded schema message of h, as arrow-go's
// writer frames it at the start of a stream.
func schemaMessage(h Header) ([]byte, error) {
	if v, ok := schemaMessages.Load(h); ok {
		return v.([]byte), nil
	}
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(ArrowSchema(h)))
	if err := w.Close(); err != nil { // writes the schema, then the end-of-stream marker
		return nil, fmt.Errorf("schema: encode the schema message: %w", err)
	}
	b := buf.Bytes()
	if len(b) < len(eos) || [8]byte(b[len(b)-len(eos):]) != eos {
		return nil, fmt.Errorf("schema: arrow-go's stream of an empty schema does not end with the end-of-stream marker")
	}
	b = b[:len(b)-len(eos)]
	v, _ := schemaMessages.LoadOrStore(h, b)
	return v.([]byte), nil
}

// pad8 rounds n up to a multiple of 8, as arrow-go pads every body buffer.
func pad8(n int) int { return (n + 7) &^ 7 }

// Message is one uncompressed message being laid out for a batch. The
// values of x_ref, y_ref and kernel that the batch leaves nil are written
// in place by the caller (XRef, YRef, Kernel); Bytes writes everything else
// from the batch and validates it.
type Message struct {
	b          *Batch
	data       []byte
	body       int // offset of the body in data
	xn, yn, kn int
	strOff     [numColumns][2]int // string columns: offsets and values buffers (body offsets)
	strLen     [numColumns]int    // string columns: bytes of values
	valOff     [numColumns]int    // other columns: values buffer (body offset)
	bitmap     ipcBuffer          // the kernel column's validity bitmap, when KernelSize is 0
	done       bool
}

// ipcBuffer is one body buffer of the record batch: where it starts in the
// body and its length before padding.
type ipcBuffer struct{ off, len int }

// NewMessage lays out the message of b: what the layout needs is the
// header, the number of rows and the length of every string, which must
// not change until Bytes. Everything else (scalars, list values, the string
// contents) is written by Bytes from b, except the x_ref, y_ref and kernel
// values that b leaves nil: those the caller writes in place (XRef, YRef,
// Kernel) before Bytes, which points b's pairs at them. Every row has a
// kernel when the header's KernelSize is not 0, none when it is.
//
// When buf has the capacity the message is laid out in it (a producer
// recycles the buffers of acked messages), else in a new allocation. The
// caller must then write every value it left nil in full: those bytes are
// not cleared.
func NewMessage(b *Batch, buf []byte) (*Message, error) {
	if b == nil {
		return nil, invalidf(-1, "", "nil batch")
	}
	h := b.Header
	if err := h.Validate(); err != nil {
		return nil, err
	}
	n := len(b.Pairs)
	if n == 0 {
		return nil, invalidf(-1, "", "batch has no pairs")
	}
	if n > MaxPairs {
		return nil, invalidf(-1, "", "batch has %d pairs, limit %d", n, MaxPairs)
	}
	sm, err := schemaMessage(h)
	if err != nil {
		return nil, err
	}
	m := &Message{b: b}
	m.xn, m.yn, m.kn = h.listSizes()

	// The body: the buffers of every column in schema order, as arrow-go's
	// writer visits them, each padded to 8 bytes.
	var (
		nodes [][2]int64
		bufs  []ipcBuffer
		body  int
	)
	add := func(size int) int {
		off := body
		bufs = append(bufs, ipcBuffer{off, size})
		body += pad8(size)
		return off
	}
	for i, c := range columns {
		nulls := 0
		if i == iKernel && h.KernelSize == 0 {
			nulls = n
		}
		nodes = append(nodes, [2]int64{int64(n), int64(nulls)})
		// The validity bitmap: none without nulls; when every row is null
		// arrow-go writes a fresh zeroed one padded to 64 bytes.
		if nulls == 0 {
			add(0)
		} else {
			m.bitmap = ipcBuffer{add(pad64((n + 7) / 8)), pad64((n + 7) / 8)}
		}
		switch c.id {
		case arrow.STRING:
			total := 0
			for r := range b.Pairs {
				total += len(stringCol(&b.Pairs[r], i))
			}
			if total > math.MaxInt32 {
				return nil, invalidf(-1, c.name, "%s holds %d bytes of strings, Arrow utf8 limit %d", c.name, total, math.MaxInt32)
			}
			m.strLen[i] = total
			m.strOff[i][0] = add(4 * (n + 1))
			m.strOff[i][1] = add(total)
		case arrow.FIXED_SIZE_LIST:
			size := m.listSize(i)
			nodes = append(nodes, [2]int64{int64(n * size), 0})
			add(0) // the values have no nulls
			m.valOff[i] = add(n * size * elemWidth(i))
		default:
			m.valOff[i] = add(n * scalarWidth(c.id))
		}
	}

	meta := recordBatchMetadata(n, body, nodes, bufs)
	metaLen := pad8(len(meta) + 8) // prefix, flatbuffer, padding
	m.body = len(sm) + metaLen
	total := m.body + body + len(eos)
	if cap(buf) >= total {
		m.data = buf[:total]
	} else {
		m.data = make([]byte, total)
	}
	d := m.data
	copy(d, sm)
	binary.LittleEndian.PutUint32(d[len(sm):], ipcContinuation)
	binary.LittleEndian.PutUint32(d[len(sm)+4:], uint32(metaLen-8))
	clear(d[len(sm)+8+copy(d[len(sm)+8:], meta) : m.body])
	copy(d[m.body+body:], eos[:])
	// Bytes and the caller write every byte of every buffer; in a reused
	// buffer the padding and the (all-zero) bitmaps must be cleared.
	bd := d[m.body : m.body+body]
	for _, bf := range bufs {
		clear(bd[bf.off+bf.len : bf.off+pad8(bf.len)])
	}
	if h.KernelSize == 0 {
		// Every kernel is null: zero bitmap, zero values.
		clear(bd[m.bitmap.off : m.bitmap.off+m.bitmap.len])
		clear(bd[m.valOff[iKernel] : m.valOff[iKernel]+4*n*m.kn])
	}
	return m, nil
}

func (m *Message) listSize(i int) int {
	switch i {
	case iXRef:
		return m.xn
	case iYRef:
		return m.yn
	}
	return m.kn
}

// XRef returns row i's x_ref values inside the message.
func (m *Message) XRef(i int) []uint8 {
	o := m.body + m.valOff[iXRef] + i*m.xn
	return m.data[o : o+m.xn : o+m.xn]
}

// YRef returns row i's y_ref values inside the message. The message's
// buffers are 8-byte aligned, so the values are properly aligned floats.
func (m *Message) YRef(i int) []float32 {
	return floats(m.data[m.body+m.valOff[iYRef]+4*i*m.yn:], m.yn)
}

// Kernel returns row i's kernel values inside the message (nil when the
// header's KernelSize is 0).
func (m *Message) Kernel(i int) []float32 {
	if m.b.KernelSize == 0 {
		return nil
	}
	return floats(m.data[m.body+m.valOff[iKernel]+4*i*m.kn:], m.kn)
}

// Bytes writes the batch's strings, scalars and the list values it holds
// into the message, points its nil x_ref, y_ref and kernel at the values
// written in place, validates it (Batch.Validate) and returns the message.
// It may be called once.
func (m *Message) Bytes() ([]byte, error) { return m.finish(true) }

func (m *Message) finish(validate bool) ([]byte, error) {
	if m.done {
		return nil, fmt.Errorf("schema: Message.Bytes called twice")
	}
	m.done = true
	b := m.b
	n := len(b.Pairs)
	bd := m.data[m.body:]
	for i, c := range columns {
		switch c.id {
		case arrow.STRING:
			offs := bd[m.strOff[i][0]:]
			vals := bd[m.strOff[i][1] : m.strOff[i][1]+m.strLen[i]]
			pos := 0
			for r := range b.Pairs {
				s := stringCol(&b.Pairs[r], i)
				if len(s) > len(vals)-pos {
					return nil, fmt.Errorf("schema: row %d: %s changed after NewMessage", r, c.name)
				}
				binary.LittleEndian.PutUint32(offs[4*r:], uint32(pos))
				pos += copy(vals[pos:], s)
			}
			if pos != len(vals) {
				return nil, fmt.Errorf("schema: %s changed after NewMessage", c.name)
			}
			binary.LittleEndian.PutUint32(offs[4*n:], uint32(pos))
		case arrow.FIXED_SIZE_LIST:
		default:
			writeScalars(bd[m.valOff[i]:], b.Pairs, i)
		}
	}
	for r := range b.Pairs {
		p := &b.Pairs[r]
		if p.XRef == nil {
			p.XRef = m.XRef(r)
		} else if len(p.XRef) != m.xn {
			return nil, invalidf(r, ColXRef, "x_ref has %d values, want %d (3x%dx%d)", len(p.XRef), m.xn, b.HRH, b.HRW)
		} else {
			copy(m.XRef(r), p.XRef)
		}
		if p.YRef == nil {
			p.YRef = m.YRef(r)
		} else if len(p.YRef) != m.yn {
			return nil, invalidf(r, ColYRef, "y_ref has %d values, want %d (3x%dx%d)", len(p.YRef), m.yn, b.LRH, b.LRW)
		} else {
			copy(m.YRef(r), p.YRef)
		}
		if b.KernelSize == 0 {
			if len(p.Kernel) != 0 {
				return nil, validateKernel(r, 0, p.Kernel)
			}
		} else if p.Kernel == nil {
			p.Kernel = m.Kernel(r)
		} else if len(p.Kernel) != m.kn {
			return nil, validateKernel(r, b.KernelSize, p.Kernel)
		} else {
			copy(m.Kernel(r), p.Kernel)
		}
	}
	if validate {
		if err := b.Validate(); err != nil {
			return nil, err
		}
	}
	return m.data, nil
}

// floats views the first n float32s of b (4-byte aligned) as a slice.
func floats(b []byte, n int) []float32 {
	if n == 0 {
		return nil
	}
	_ = b[4*n-1]
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

func pad64(n int) int { return (n + ipcBitmapPad - 1) / ipcBitmapPad * ipcBitmapPad }

// recordBatchMetadata is the flatbuffer of the record batch message, built
// with the same builder calls, in the same order, as arrow-go's writer
// (recordToFB and writeMessageFB in arrow/ipc/metadata.go), so that the
// bytes are the same.
func recordBatchMetadata(rows, bodyLen int, nodes [][2]int64, bufs []ipcBuffer) []byte {
	b := flatbuffers.NewBuilder(0)
	b.StartVector(16, len(nodes), 8)
	for i := len(nodes) - 1; i >= 0; i-- {
		b.Prep(8, 16)
		b.PrependInt64(nodes[i][1])
		b.PrependInt64(nodes[i][0])
	}
	nodesFB := b.EndVector(len(nodes))
	b.StartVector(16, len(bufs), 8)
	for i := len(bufs) - 1; i >= 0; i-- {
		b.Prep(8, 16)
		b.PrependInt64(int64(bufs[i].len))
		b.PrependInt64(int64(bufs[i].off))
	}
	bufsFB := b.EndVector(len(bufs))
	b.StartObject(5) // RecordBatch
	b.PrependInt64Slot(0, int64(rows), 0)
	b.PrependUOffsetTSlot(1, nodesFB, 0)
	b.PrependUOffsetTSlot(2, bufsFB, 0)
	rec := b.EndObject()
	b.StartObject(5) // Message
	b.PrependInt16Slot(0, ipcMetadataV5, 0)
	b.PrependByteSlot(1, fbRecordBatch, 0)
	b.PrependUOffsetTSlot(2, rec, 0)
	b.PrependInt64Slot(3, int64(bodyLen), 0)
	b.PrependUOffsetTSlot(4, 0, 0) // no custom metadata
	msg := b.EndObject()
	b.Finish(msg)
	return b.FinishedBytes()
}

// stringCol returns p's value of string column i.
func stringCol(p *Pair, i int) string {
	switch i {
	case iSampleID:
		return p.SampleID
	case iRunID:
		return p.RunID
	case iProducerID:
		return p.ProducerID
	case iWeightsSHA256:
		return p.WeightsSHA256
	case iSourceImage:
		return p.SourceImage
	}
	panic(fmt.Sprintf("schema: column %d is not a string column", i))
}

// scalarWidth is the byte width of a fixed-width scalar column type.
func scalarWidth(id arrow.Type) int {
	switch id {
	case arrow.UINT8:
		return 1
	case arrow.UINT32, arrow.INT32, arrow.FLOAT32:
		return 4
	case arrow.UINT64:
		return 8
	}
	panic(fmt.Sprintf("schema: no width for type %v", id))
}

// elemWidth is the byte width of the values of list column i.
func elemWidth(i int) int {
	if i == iXRef {
		return 1
	}
	return 4
}

// writeScalars writes scalar column i of every pair, little-endian.
func writeScalars(dst []byte, ps []Pair, i int) {
	le := binary.LittleEndian
	for r := range ps {
		p := &ps[r]
		switch i {
		case iBatchSeq:
			le.PutUint64(dst[8*r:], p.BatchSeq)
		case iIndex:
			le.PutUint32(dst[4*r:], p.Index)
		case iSeed:
			le.PutUint64(dst[8*r:], p.Seed)
		case iWeightsVersion:
			le.PutUint64(dst[8*r:], p.WeightsVersion)
		case iCropX:
			le.PutUint32(dst[4*r:], uint32(p.CropX))
		case iCropY:
			le.PutUint32(dst[4*r:], uint32(p.CropY))
		case iCropW:
			le.PutUint32(dst[4*r:], uint32(p.CropW))
		case iCropH:
			le.PutUint32(dst[4*r:], uint32(p.CropH))
		case iDihedral:
			dst[r] = p.Dihedral
		case iNoiseMean:
			le.PutUint32(dst[4*r:], math.Float32bits(p.NoiseMean))
		case iNoiseStd:
			le.PutUint32(dst[4*r:], math.Float32bits(p.NoiseStd))
		default:
			panic(fmt.Sprintf("schema: column %d is not a scalar column", i))
		}
	}
}
