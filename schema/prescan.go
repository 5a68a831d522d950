package schema

import (
	"encoding/binary"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// This file walks the framing of an IPC stream and verifies the flatbuffer
// metadata of every message before arrow-go sees any of it.
//
// arrow-go trusts the flatbuffers it reads: a corrupt vector length makes
// it allocate that many elements up front (a 4 KiB message can ask for tens
// of GiB, a fatal out-of-memory that no recover catches), and a schema whose
// field tables share children can make it build exponentially many fields.
// The walk below bounds-checks every table, vtable, vector and string
// arrow-go will read, caps the number and depth of fields, checks every
// body buffer lies inside its body, and sums what compressed buffers will
// decompress to, so that the messages arrow-go parses are at least
// well-formed flatbuffers of sane size.

const (
	maxFields        = 1 << 12 // fields, nested ones included, in a schema
	maxFieldDepth    = 32      // nesting of fields
	maxMetadataPairs = 1 << 12 // key-value pairs in one custom_metadata
	maxZstdWindow    = 8 << 20 // zstd window accepted regardless of the buffer size (arrow-go writes 8 MiB)
)

// Message header types (Message.fbs).
const (
	fbSchema          = 1
	fbDictionaryBatch = 2
	fbRecordBatch     = 3
)

// Compression codecs (Message.fbs).
const (
	codecNone = -1
	codecLZ4  = 0
	codecZstd = 1
)

type fbError string

func (e fbError) Error() string { return string(e) }

// fbuf is a flatbuffer being verified.
type fbuf struct {
	b      []byte
	fields int // fields visited so far
}

type fbTable struct {
	pos, vt, vtLen, tLen int
}

func (f *fbuf) u16(p int) int { return int(binary.LittleEndian.Uint16(f.b[p:])) }
func (f *fbuf) u32(p int) int { return int(binary.LittleEndian.Uint32(f.b[p:])) }

// table checks the table at pos and its vtable.
func (f *fbuf) table(pos int) (fbTable, error) {
	if pos < 0 || pos > len(f.b)-4 {
		return fbTable{}, fbError("table outside the buffer")
	}
	vt := pos - int(int32(binary.LittleEndian.Uint32(f.b[pos:])))
	if vt < 0 || vt > len(f.b)-4 {
		return fbTable{}, fbError("vtable outside the buffer")
	}
	t := fbTable{pos: pos, vt: vt, vtLen: f.u16(vt), tLen: f.u16(vt + 2)}
	if t.vtLen < 4 || t.vtLen%2 != 0 || t.vt+t.vtLen > len(f.b) || t.tLen < 4 || t.pos+t.tLen > len(f.b) {
		return fbTable{}, fbError("bad vtable")
	}
	return t, nil
}

// slot returns the offset of field slot inside table t, 0 when absent.
func (f *fbuf) slot(t fbTable, slot int) int {
	o := 4 + 2*slot
	if o+2 > t.vtLen {
		return 0
	}
	return f.u16(t.vt + o)
}

// scalar checks a scalar of size bytes in slot and returns its position
// (0 when absent).
func (f *fbuf) scalar(t fbTable, slot, size int) (int, error) {
	o := f.slot(t, slot)
	if o == 0 {
		return 0, nil
	}
	if o+size > t.tLen {
		return 0, fbError("field outside its table")
	}
	return t.pos + o, nil
}

// ref follows the offset in slot and returns the position it points to
// (-1 when absent).
func (f *fbuf) ref(t fbTable, slot int) (int, error) {
	p, err := f.scalar(t, slot, 4)
	if err != nil || p == 0 {
		return -1, err
	}
	return f.indirect(p)
}

func (f *fbuf) indirect(p int) (int, error) {
	target := p + f.u32(p)
	if target > len(f.b)-4 {
		return -1, fbError("offset outside the buffer")
	}
	return target, nil
}

// vector checks the vector in slot, of elements of size bytes, and returns
// its first element's position and its length (0, 0 when absent).
func (f *fbuf) vector(t fbTable, slot, size int) (start, n int, err error) {
	p, err := f.ref(t, slot)
	if err != nil || p < 0 {
		return 0, 0, err
	}
	n, start = f.u32(p), p+4
	if n > (len(f.b)-start)/size {
		return 0, 0, fbError("vector outside the buffer")
	}
	return start, n, nil
}

// tables checks a vector of tables in slot, at most max of them, calling
// check on each.
func (f *fbuf) tables(t fbTable, slot, max int, check func(fbTable) error) error {
	start, n, err := f.vector(t, slot, 4)
	if err != nil {
		return err
	}
	if n > max {
		return fbError(fmt.Sprintf("vector of %d tables, limit %d", n, max))
	}
	for i := 0; i < n; i++ {
		p, err := f.indirect(start + 4*i)
		if err != nil {
			return err
		}
		e, err := f.table(p)
		if err != nil {
			return err
		}
		if err := check(e); err != nil {
			return err
		}
	}
	return nil
}

func (f *fbuf) metadata(t fbTable, slot int) error {
	_, _, err := f.metadataValue(t, slot, "")
	return err
}

// metadataValue checks a custom_metadata vector and returns the value of
// key in it, if there.
func (f *fbuf) metadataValue(t fbTable, slot int, key string) (value string, found bool, err error) {
	err = f.tables(t, slot, maxMetadataPairs, func(kv fbTable) error {
		ks, kn, err := f.vector(kv, 0, 1)
		if err != nil {
			return err
		}
		vs, vn, err := f.vector(kv, 1, 1)
		if err != nil {
			return err
		}
		if key != "" && !found && string(f.b[ks:ks+kn]) == key {
			value, found = string(f.b[vs:vs+vn]), true
		}
		return nil
	})
	return value, found, err
}

// typeLayouts gives, for each Arrow type (the Type union of Schema.fbs),
// the layout of its table: a scalar's size, or strField / intVec.
const (
	strField = -1
	intVec   = -4
)

var typeLayouts = map[int][]int{
	1:  nil,                   // Null
	2:  {4, 1},                // Int: bitWidth, is_signed
	3:  {2},                   // FloatingPoint: precision
	4:  nil,                   // Binary
	5:  nil,                   // Utf8
	6:  nil,                   // Bool
	7:  {4, 4, 4},             // Decimal: precision, scale, bitWidth
	8:  {2},                   // Date: unit
	9:  {2, 4},                // Time: unit, bitWidth
	10: {2, strField},         // Timestamp: unit, timezone
	11: {2},                   // Interval: unit
	12: nil,                   // List
	13: nil,                   // Struct_
	14: {2, intVec},           // Union: mode, typeIds
	15: {4},                   // FixedSizeBinary: byteWidth
	16: {4},                   // FixedSizeList: listSize
	17: {1},                   // Map: keysSorted
	18: {2},                   // Duration: unit
	19: nil, 20: nil, 21: nil, // LargeBinary, LargeUtf8, LargeList
	22: nil, 23: nil, 24: nil, // RunEndEncoded, BinaryView, Utf8View
	25: nil, 26: nil, // ListView, LargeListView
}

func (f *fbuf) field(t fbTable, depth int) error {
	f.fields++
	if f.fields > maxFields {
		return fbError(fmt.Sprintf("schema has more than %d fields", maxFields))
	}
	if depth > maxFieldDepth {
		return fbError(fmt.Sprintf("fields nested deeper than %d", maxFieldDepth))
	}
	if _, _, err := f.vector(t, 0, 1); err != nil { // name
		return err
	}
	if _, err := f.scalar(t, 1, 1); err != nil { // nullable
		return err
	}
	p, err := f.scalar(t, 2, 1) // type_type
	if err != nil {
		return err
	}
	typ := 0
	if p != 0 {
		typ = int(f.b[p])
	}
	layout, ok := typeLayouts[typ]
	if !ok {
		return fbError(fmt.Sprintf("unknown field type %d", typ))
	}
	tp, err := f.ref(t, 3) // type
	if err != nil {
		return err
	}
	if tp < 0 {
		return fbError("field without a type")
	}
	tt, err := f.table(tp)
	if err != nil {
		return err
	}
	if typ == 16 { // FixedSizeList: arrow-go panics on a size below 1
		p, err := f.scalar(tt, 0, 4)
		if err != nil {
			return err
		}
		if p == 0 || int32(binary.LittleEndian.Uint32(f.b[p:])) < 1 {
			return fbError("fixed-size list of size < 1")
		}
	}
	for s, size := range layout {
		switch size {
		case strField:
			_, _, err = f.vector(tt, s, 1)
		case intVec:
			_, _, err = f.vector(tt, s, 4)
		default:
			_, err = f.scalar(tt, s, size)
		}
		if err != nil {
			return err
		}
	}
	if d, err := f.ref(t, 4); err != nil || d >= 0 { // dictionary
		if err != nil {
			return err
		}
		return fbError("dictionary-encoded field (the format has no dictionaries)")
	}
	if err := f.tables(t, 5, maxFields, func(c fbTable) error { return f.field(c, depth+1) }); err != nil {
		return err
	}
	return f.metadata(t, 6)
}

// ipcMsg is what the walk learns about one message.
type ipcMsg struct {
	typ     int
	bodyLen int64
	// schema messages only: the pdmflow.schema_version value, if any
	version      string
	versionFound bool
	// record batches only
	frames  [2]frame // where the schema message and this one lie in the stream
	length  int64
	codec   int
	nodes   [][2]int64 // length, null count
	buffers [][2]int64 // offset, length
	sizes   []int64    // each buffer's size once decompressed
}

// verifyMessage verifies the flatbuffer metadata of one message.
func verifyMessage(meta []byte) (ipcMsg, error) {
	f := &fbuf{b: meta}
	var m ipcMsg
	if len(meta) < 4 {
		return m, fbError("metadata shorter than a flatbuffer")
	}
	root, err := f.indirect(0)
	if err != nil {
		return m, err
	}
	t, err := f.table(root)
	if err != nil {
		return m, err
	}
	if _, err := f.scalar(t, 0, 2); err != nil { // version
		return m, err
	}
	p, err := f.scalar(t, 1, 1) // header_type
	if err != nil {
		return m, err
	}
	if p != 0 {
		m.typ = int(meta[p])
	}
	hp, err := f.ref(t, 2) // header
	if err != nil {
		return m, err
	}
	if hp < 0 {
		return m, fbError("message without a header")
	}
	h, err := f.table(hp)
	if err != nil {
		return m, err
	}
	if p, err = f.scalar(t, 3, 8); err != nil { // bodyLength
		return m, err
	}
	if p != 0 {
		m.bodyLen = int64(binary.LittleEndian.Uint64(meta[p:]))
	}
	if err := f.metadata(t, 4); err != nil {
		return m, err
	}
	switch m.typ {
	case fbSchema:
		if _, err := f.scalar(h, 0, 2); err != nil { // endianness
			return m, err
		}
		if err := f.tables(h, 1, maxFields, func(c fbTable) error { return f.field(c, 0) }); err != nil {
			return m, err
		}
		if m.version, m.versionFound, err = f.metadataValue(h, 2, MetaSchemaVersion); err != nil {
			return m, err
		}
		_, _, err = f.vector(h, 3, 8) // features
		return m, err
	case fbRecordBatch:
		return m, f.recordBatch(h, &m)
	}
	return m, nil
}

func (f *fbuf) recordBatch(h fbTable, m *ipcMsg) error {
	p, err := f.scalar(h, 0, 8) // length
	if err != nil {
		return err
	}
	if p != 0 {
		m.length = int64(binary.LittleEndian.Uint64(f.b[p:]))
	}
	start, n, err := f.vector(h, 1, 16) // nodes
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		p := start + 16*i
		m.nodes = append(m.nodes, [2]int64{
			int64(binary.LittleEndian.Uint64(f.b[p:])),
			int64(binary.LittleEndian.Uint64(f.b[p+8:])),
		})
	}
	start, n, err = f.vector(h, 2, 16) // buffers
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		p := start + 16*i
		m.buffers = append(m.buffers, [2]int64{
			int64(binary.LittleEndian.Uint64(f.b[p:])),
			int64(binary.LittleEndian.Uint64(f.b[p+8:])),
		})
	}
	m.codec = codecNone
	cp, err := f.ref(h, 3) // compression
	if err != nil {
		return err
	}
	if cp >= 0 {
		c, err := f.table(cp)
		if err != nil {
			return err
		}
		p, err := f.scalar(c, 0, 1) // codec
		if err != nil {
			return err
		}
		m.codec = codecLZ4 // the default
		if p != 0 {
			m.codec = int(int8(f.b[p]))
		}
		if p, err = f.scalar(c, 1, 1); err != nil { // method
			return err
		}
		if p != 0 && f.b[p] != 0 {
			return fbError("unknown body compression method")
		}
		if m.codec != codecLZ4 && m.codec != codecZstd {
			return fbError(fmt.Sprintf("unknown compression codec %d", m.codec))
		}
	}
	_, _, err = f.vector(h, 4, 8) // variadicBufferCounts
	return err
}

// scanStream walks the messages of msg (which ends with the end-of-stream
// marker) and checks the stream is one schema message, one record batch
// and the marker, every message well-formed and inside msg, and that the
// record batch decompresses to at most budget bytes. It returns what it
// learnt of the record batch, with where both messages lie in msg.
func scanStream(msg []byte, budget int) (*ipcMsg, error) {
	var rb *ipcMsg
	var schema frame
	pos, n := 0, 0
	for {
		if len(msg)-pos < 8 {
			return nil, newErr(ErrTruncated, -1, "", "stream ends inside the prefix of message %d, at byte %d", n, pos)
		}
		if binary.LittleEndian.Uint32(msg[pos:]) != 0xFFFFFFFF {
			return nil, invalidf(-1, "", "message %d at byte %d has no continuation marker", n, pos)
		}
		mlen := int(int32(binary.LittleEndian.Uint32(msg[pos+4:])))
		pos += 8
		if mlen == 0 { // end of stream
			break
		}
		if mlen < 0 {
			return nil, invalidf(-1, "", "message %d has metadata length %d", n, mlen)
		}
		if mlen > len(msg)-pos {
			return nil, newErr(ErrTruncated, -1, "", "stream ends inside the metadata of message %d (%d bytes, %d left)", n, mlen, len(msg)-pos)
		}
		meta := msg[pos : pos+mlen]
		m, err := verifyMessage(meta)
		if err != nil {
			return nil, invalidf(-1, "", "metadata of message %d: %v", n, err)
		}
		pos += mlen
		if m.bodyLen < 0 {
			return nil, invalidf(-1, "", "message %d has body length %d", n, m.bodyLen)
		}
		if m.bodyLen > int64(len(msg)-pos) {
			return nil, newErr(ErrTruncated, -1, "", "stream ends inside the body of message %d (%d bytes, %d left)", n, m.bodyLen, len(msg)-pos)
		}
		body := msg[pos : pos+int(m.bodyLen) : pos+int(m.bodyLen)]
		pos += int(m.bodyLen)
		if n == 0 {
			schema = frame{meta: meta, body: body}
		}
		if n == 0 && m.typ == fbSchema {
			// Check the version first: another major may frame differently.
			if _, err := checkVersion(m.version, m.versionFound); err != nil {
				return nil, err
			}
		}
		switch {
		case n == 0 && m.typ != fbSchema:
			return nil, invalidf(-1, "", "stream starts with a message of type %d, not a schema", m.typ)
		case n > 0 && m.typ == fbSchema:
			return nil, invalidf(-1, "", "stream has a second schema message")
		case m.typ == fbDictionaryBatch:
			return nil, invalidf(-1, "", "stream has a dictionary batch (the format has no dictionaries)")
		case n > 1 && m.typ == fbRecordBatch:
			return nil, invalidf(-1, "", "stream has more than one record batch")
		case n > 0 && m.typ != fbRecordBatch:
			return nil, invalidf(-1, "", "stream has a message of type %d", m.typ)
		}
		if m.typ == fbRecordBatch {
			if err := checkBody(&m, body, budget); err != nil {
				return nil, err
			}
			m.frames = [2]frame{schema, {meta: meta, body: body}}
			rb = &m
		}
		n++
	}
	if pos != len(msg) {
		return nil, invalidf(-1, "", "%d bytes after the end-of-stream marker", len(msg)-pos)
	}
	switch n {
	case 0:
		return nil, newErr(ErrTruncated, -1, "", "stream has no schema message")
	case 1:
		return nil, invalidf(-1, "", "stream has no record batch")
	}
	return rb, nil
}

// checkBody checks the buffers of a record batch lie inside its body and
// what compressed buffers will decompress to.
func checkBody(m *ipcMsg, body []byte, budget int) error {
	decoded := 0
	m.sizes = make([]int64, len(m.buffers))
	for i, b := range m.buffers {
		off, n := b[0], b[1]
		if off < 0 || n < 0 || off > int64(len(body)) || n > int64(len(body))-off {
			return invalidf(-1, "", "record batch buffer %d (%d bytes at %d) lies outside its %d-byte body", i, n, off, len(body))
		}
		m.sizes[i] = n
		if m.codec == codecNone || n == 0 {
			continue
		}
		if n < 8 {
			return invalidf(-1, "", "compressed buffer %d has %d bytes, no length prefix", i, n)
		}
		buf := body[off : off+n]
		size := int64(binary.LittleEndian.Uint64(buf))
		if size == -1 { // stored uncompressed
			m.sizes[i] = n - 8
			continue
		}
		m.sizes[i] = size
		if size < 0 {
			return invalidf(-1, "", "compressed buffer %d has uncompressed length %d", i, size)
		}
		if size > int64(budget-decoded) {
			return newErr(ErrTooLarge, -1, "", "record batch decompresses to more than %d bytes", budget)
		}
		decoded += int(size)
		if m.codec == codecZstd {
			if err := checkZstd(buf[8:], int(size)); err != nil {
				return invalidf(-1, "", "compressed buffer %d: %v", i, err)
			}
		}
	}
	return nil
}

// checkZstd walks the zstd frames of a buffer and checks their window
// sizes: the decoder allocates the declared window before decoding.
func checkZstd(data []byte, decoded int) error {
	limit := uint64(max(maxZstdWindow, decoded))
	for len(data) > 0 {
		if len(data) < 5 {
			return fbError("short zstd frame")
		}
		magic := binary.LittleEndian.Uint32(data)
		if magic&0xFFFFFFF0 == 0x184D2A50 { // skippable frame
			if len(data) < 8 {
				return fbError("short skippable frame")
			}
			size := uint64(binary.LittleEndian.Uint32(data[4:]))
			if size > uint64(len(data)-8) {
				return fbError("skippable frame overruns the buffer")
			}
			data = data[8+size:]
			continue
		}
		if magic != 0xFD2FB528 {
			return fbError("not a zstd frame")
		}
		fhd := data[4]
		p := 5
		single := fhd&0x20 != 0
		if fhd&0x08 != 0 {
			return fbError("zstd frame header reserved bit set")
		}
		var window uint64
		if !single {
			if p >= len(data) {
				return fbError("short zstd frame header")
			}
			wd := data[p]
			p++
			base := uint64(1) << (10 + wd>>3)
			window = base + base/8*uint64(wd&7)
		}
		p += [4]int{0, 1, 2, 4}[fhd&3] // dictionary id
		fcsSize := [4]int{0, 2, 4, 8}[fhd>>6]
		if single && fcsSize == 0 {
			fcsSize = 1
		}
		if p+fcsSize > len(data) {
			return fbError("short zstd frame header")
		}
		if single {
			var fcs uint64
			for i := fcsSize - 1; i >= 0; i-- {
				fcs = fcs<<8 | uint64(data[p+i])
			}
			if fcsSize == 2 {
				fcs += 256
			}
			window = fcs
		}
		p += fcsSize
		if window > limit {
			return fbError(fmt.Sprintf("zstd window of %d bytes, limit %d", window, limit))
		}
		for last := false; !last; {
			if p+3 > len(data) {
				return fbError("zstd frame overruns the buffer")
			}
			bh := int(data[p]) | int(data[p+1])<<8 | int(data[p+2])<<16
			p += 3
			last = bh&1 != 0
			size := bh >> 3
			switch (bh >> 1) & 3 {
			case 0, 2: // raw, compressed
				p += size
			case 1: // RLE
				p++
			default:
				return fbError("reserved zstd block type")
			}
			if p > len(data) {
				return fbError("zstd block overruns the buffer")
			}
		}
		if fhd&0x04 != 0 { // content checksum
			p += 4
			if p > len(data) {
				return fbError("zstd checksum overruns the buffer")
			}
		}
		data = data[p:]
	}
	return nil
}

// checkLayout checks, before arrow-go builds arrays from it, that the record
// batch has the field nodes and buffers the known columns need, with
// lengths and null counts in range and buffers large enough for them.
// Columns after the known ones (a newer minor) are not checked here.
func checkLayout(m *ipcMsg, h Header) error {
	rows := m.length
	if rows < 1 || rows > MaxPairs {
		return invalidf(-1, "", "record batch has %d rows, want 1..%d", rows, MaxPairs)
	}
	xn, yn, kn := h.listSizes()
	ni, bi := 0, 0
	node := func(name string, want int64) (length, nulls int64, err error) {
		if ni >= len(m.nodes) {
			return 0, 0, invalidf(-1, name, "record batch has %d field nodes, none left for column %s", len(m.nodes), name)
		}
		length, nulls = m.nodes[ni][0], m.nodes[ni][1]
		ni++
		if length != want {
			return 0, 0, invalidf(-1, name, "column %s has %d values, want %d", name, length, want)
		}
		if nulls < 0 || nulls > length {
			return 0, 0, invalidf(-1, name, "column %s has null count %d for %d values", name, nulls, length)
		}
		return length, nulls, nil
	}
	buf := func(name, what string, need int64) error {
		if bi >= len(m.sizes) {
			return invalidf(-1, name, "record batch has %d buffers, none left for the %s of column %s", len(m.sizes), what, name)
		}
		size := m.sizes[bi]
		bi++
		if size < need {
			return invalidf(-1, name, "column %s has a %d-byte %s buffer, want %d", name, size, what, need)
		}
		return nil
	}
	validity := func(name string, length, nulls int64) error {
		need := int64(0)
		if nulls > 0 {
			need = (length + 7) / 8
		}
		return buf(name, "validity", need)
	}
	width := map[arrow.Type]int64{arrow.UINT8: 1, arrow.UINT32: 4, arrow.INT32: 4, arrow.UINT64: 8, arrow.FLOAT32: 4}
	for i, c := range columns {
		length, nulls, err := node(c.name, rows)
		if err != nil {
			return err
		}
		if err := validity(c.name, length, nulls); err != nil {
			return err
		}
		switch c.id {
		case arrow.STRING:
			if err := buf(c.name, "offsets", 4*(rows+1)); err != nil {
				return err
			}
			if err := buf(c.name, "data", 0); err != nil {
				return err
			}
		case arrow.FIXED_SIZE_LIST:
			size := int64(xn)
			switch i {
			case iYRef:
				size = int64(yn)
			case iKernel:
				size = int64(kn)
			}
			name := c.name + " values"
			clen, cnulls, err := node(name, rows*size)
			if err != nil {
				return err
			}
			if err := validity(name, clen, cnulls); err != nil {
				return err
			}
			if err := buf(name, "values", clen*width[c.elem.ID()]); err != nil {
				return err
			}
		default:
			if err := buf(c.name, "values", rows*width[c.id]); err != nil {
				return err
			}
		}
	}
	return nil
}
