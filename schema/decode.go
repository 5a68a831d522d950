package schema

import (
	"bytes"
	"strconv"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// DecodeOptions configures Decode.
type DecodeOptions struct {
	Allocator       memory.Allocator // nil: memory.DefaultAllocator
	MaxMessageBytes int              // 0: DefaultMaxMessageBytes
}

// decodeBudget is the most Arrow buffer memory Decode lets arrow-go hold at
// once for a message limit: room for the message itself plus its
// decompressed body at a generous compression ratio.
func decodeBudget(maxMessage int) int {
	const minBudget = 64 << 20
	return max(minBudget, 16*maxMessage)
}

// eos is the end-of-stream marker every message ends with: the continuation
// token 0xFFFFFFFF followed by a zero metadata length.
var eos = [8]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

// sweptHook, when set (by tests), is told how many bytes each Decode freed on
// arrow-go's behalf (see arena).
var sweptHook func(n int)

// Decode parses one message, validates everything and returns a batch of
// ordinary Go memory: no Arrow memory outlives the call, every buffer
// allocated from o.Allocator is freed before Decode returns, on error paths
// too.
//
// The batch may alias msg: for an uncompressed record batch whose body
// starts 8-byte aligned in memory, the XRef, YRef and Kernel slices of the
// returned pairs are windows into msg itself, not copies (YRef and Kernel
// only where their values are 4-byte aligned, which they are in every
// message Encode or another Arrow writer produces). The caller must
// therefore not modify msg, or reuse its memory, while it still uses any of
// those slices; and the slices keep all of msg reachable. Decode never
// writes to msg. When the body is not 8-byte aligned (a payload at an odd
// offset in a larger buffer, as NATS delivers it after its headers), Decode
// copies the body once into fresh aligned memory and aliases that; values
// that were compressed are always copied. Strings and scalars are always
// copied.
//
// It rejects a message longer than o.MaxMessageBytes with ErrTooLarge,
// before parsing anything. It then walks the framing of the whole stream:
// an empty message, one that does not end with the end-of-stream marker, or
// whose framing runs past its end is ErrTruncated; a schema message without
// a parsable pdmflow.schema_version, or of a major other than 1, is
// ErrVersion (any minor of major 1 is accepted), checked before anything
// else about the stream. Every other structural problem is ErrInvalid,
// naming the column or metadata key and the row where there is one:
// malformed Arrow metadata, no record batch or more than one, dictionaries,
// bytes after the marker, missing or bad pdmflow.* metadata, wrong column
// names, types, order or list sizes, extra columns in a message that claims
// minor 0, nulls where none are allowed, buffers too short for their
// columns, and any batch Validate rejects. A record batch that would
// decompress to more than max(64 MiB, 16×MaxMessageBytes) is ErrTooLarge.
//
// A message of a newer minor version may carry extra columns after the
// known ones and extra metadata keys; Decode ignores them.
func Decode(msg []byte, o DecodeOptions) (*Batch, error) {
	return decodeMsg(msg, o, false)
}

// decodeMsg is Decode; with copyAll it takes the copying path Decode took
// before it aliased msg (arrow-go's own message reader over a copy of each
// body, every column copied out), kept for the differential tests and
// benchmarks.
func decodeMsg(msg []byte, o DecodeOptions, copyAll bool) (b *Batch, err error) {
	limit := o.MaxMessageBytes
	if limit <= 0 {
		limit = DefaultMaxMessageBytes
	}
	if len(msg) > limit {
		return nil, newErr(ErrTooLarge, -1, "", "message is %d bytes, limit %d", len(msg), limit)
	}
	if len(msg) == 0 {
		return nil, newErr(ErrTruncated, -1, "", "empty message")
	}
	if !bytes.HasSuffix(msg, eos[:]) {
		return nil, newErr(ErrTruncated, -1, "", "message of %d bytes does not end with the end-of-stream marker", len(msg))
	}
	budget := decodeBudget(limit)
	rb, err := scanStream(msg, budget)
	if err != nil {
		return nil, err
	}
	mem := o.Allocator
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	ar := newArena(mem, budget)
	defer func() {
		n := ar.sweep()
		if sweptHook != nil {
			sweptHook(n)
		}
	}()
	// Last line of defence: arrow-go recovers its own panics on corrupt
	// input, and everything this package reads out of Arrow buffers is
	// bounds-checked first, but a panic must never escape Decode.
	defer func() {
		if r := recover(); r != nil {
			b = nil
			if ar.exceeded {
				err = ar.budgetErr()
			} else {
				err = invalidf(-1, "", "corrupt message: %v", r)
			}
		}
	}()
	return decode(msg, rb, ar, copyAll)
}

func (a *arena) budgetErr() error {
	return newErr(ErrTooLarge, -1, "", "decoding needs more than %d bytes of Arrow buffers", a.limit)
}

// readErr classifies an error from arrow-go's reader. scanStream has
// checked the framing by then, so an early end of data inside arrow-go (say
// in a decompressor) is corruption, not truncation.
func (a *arena) readErr(what string, err error) error {
	if a.exceeded {
		return a.budgetErr()
	}
	return invalidf(-1, "", "reading the %s: %v", what, err)
}

func decode(msg []byte, rb *ipcMsg, ar *arena, copyAll bool) (*Batch, error) {
	var (
		mr     ipc.MessageReader
		br     *bytes.Reader // copyAll: what arrow-go's message reader has not read
		region []byte        // the record batch body arrow-go reads in place: columns in it may be aliased
	)
	if copyAll {
		br = bytes.NewReader(msg)
		n := int64(len(msg))
		// ipc.NewReader does not apply size limits to the messages it
		// reads, so build it from a message reader that does: no metadata
		// or body allocation may exceed the message itself.
		mr = ipc.NewMessageReader(br, ipc.WithAllocator(ar), ipc.WithMetadataSizeLimit(n), ipc.WithBodySizeLimit(n))
	} else {
		zr, err := newMsgReader(rb, ar)
		if err != nil {
			return nil, err
		}
		mr, region = zr, zr.region
	}
	rdr, err := ipc.NewReaderFromMessageReader(mr, ipc.WithAllocator(ar)) // owns mr, releases it on error
	if err != nil {
		return nil, ar.readErr("schema message", err)
	}
	defer rdr.Release()

	sc := rdr.Schema()
	h, minor, err := headerFromSchema(sc)
	if err != nil {
		return nil, err
	}
	if err := checkFields(sc, h, minor); err != nil {
		return nil, err
	}
	if err := checkLayout(rb, h); err != nil {
		return nil, err
	}
	if !rdr.Next() {
		if err := rdr.Err(); err != nil {
			return nil, ar.readErr("record batch", err)
		}
		return nil, invalidf(-1, "", "stream has no record batch")
	}
	b, err := batchFromRecord(rdr.RecordBatch(), h, region)
	if err != nil {
		return nil, err
	}
	if rdr.Next() {
		return nil, invalidf(-1, "", "stream has more than one record batch")
	}
	if err := rdr.Err(); err != nil {
		return nil, ar.readErr("message after the record batch", err)
	}
	if br != nil && br.Len() != 0 {
		return nil, invalidf(-1, "", "%d bytes after the end-of-stream marker", br.Len())
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return b, nil
}

// parseUint parses a short decimal number, digits only.
func parseUint(s string) (int, bool) {
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// parseVersion parses "MAJOR.MINOR".
func parseVersion(s string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(s, ".")
	if !found {
		return 0, 0, false
	}
	major, ok1 := parseUint(a)
	minor, ok2 := parseUint(b)
	return major, minor, ok1 && ok2
}

// checkVersion checks the pdmflow.schema_version value v (found: present)
// and returns its minor.
func checkVersion(v string, found bool) (minor int, err error) {
	if !found {
		return 0, newErr(ErrVersion, -1, MetaSchemaVersion, "schema metadata has no %s", MetaSchemaVersion)
	}
	major, minor, ok := parseVersion(v)
	if !ok {
		return 0, newErr(ErrVersion, -1, MetaSchemaVersion, "%s %q is not MAJOR.MINOR", MetaSchemaVersion, clip(v))
	}
	if major != Major {
		return 0, newErr(ErrVersion, -1, MetaSchemaVersion, "%s is %q; this reader reads %d.x", MetaSchemaVersion, clip(v), Major)
	}
	return minor, nil
}

// parseShape3 parses "3,H,W".
func parseShape3(s string) (h, w int, ok bool) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 || parts[0] != "3" {
		return 0, 0, false
	}
	h, ok1 := parseUint(parts[1])
	w, ok2 := parseUint(parts[2])
	return h, w, ok1 && ok2
}

// headerFromSchema reads the version and the header from the schema
// metadata and validates the header.
func headerFromSchema(sc *arrow.Schema) (Header, int, error) {
	md := sc.Metadata()
	get := func(key string) (string, bool) {
		i := md.FindKey(key)
		if i < 0 {
			return "", false
		}
		return md.Values()[i], true
	}
	minor, err := checkVersion(get(MetaSchemaVersion))
	if err != nil {
		return Header{}, 0, err
	}
	var h Header
	var bad *Error
	need := func(key string) string {
		s, ok := get(key)
		if !ok && bad == nil {
			bad = invalidf(-1, key, "schema metadata has no %s", key)
		}
		return s
	}
	num := func(key string) int {
		s := need(key)
		n, ok := parseUint(s)
		if !ok && bad == nil {
			bad = invalidf(-1, key, "%s %q is not a number", key, clip(s))
		}
		return n
	}
	shape := func(key string) (int, int) {
		s := need(key)
		a, b, ok := parseShape3(s)
		if !ok && bad == nil {
			bad = invalidf(-1, key, "%s %q is not \"3,H,W\"", key, clip(s))
		}
		return a, b
	}
	h.Scale = num(MetaScale)
	h.HRH, h.HRW = shape(MetaHRShape)
	h.LRH, h.LRW = shape(MetaLRShape)
	h.KernelSize = num(MetaKernelSize)
	h.Degradation = need(MetaDegradation)
	h.Device, _ = get(MetaDevice)
	if bad != nil {
		return Header{}, 0, bad
	}
	if err := h.Validate(); err != nil {
		return Header{}, 0, err
	}
	return h, minor, nil
}

// checkFields checks column names, order and types against the header.
func checkFields(sc *arrow.Schema, h Header, minor int) error {
	fs := sc.Fields()
	if len(fs) < numColumns {
		c := columns[len(fs)].name
		return invalidf(-1, c, "schema has %d columns, want %d: no column %s", len(fs), numColumns, c)
	}
	if len(fs) > numColumns && minor <= Minor {
		return invalidf(-1, clip(fs[numColumns].Name), "schema has %d columns, want %d: extra column %q (allowed only in a newer minor version)",
			len(fs), numColumns, clip(fs[numColumns].Name))
	}
	want := ArrowSchema(h)
	xn, yn, kn := h.listSizes()
	for i, c := range columns {
		f := fs[i]
		if f.Name != c.name {
			return invalidf(-1, c.name, "column %d is %q, want %s", i, clip(f.Name), c.name)
		}
		wt := want.Field(i).Type
		if f.Type.ID() != c.id {
			return invalidf(-1, c.name, "column %s has type %s, want %s", c.name, f.Type, wt)
		}
		if c.id != arrow.FIXED_SIZE_LIST {
			continue
		}
		fl, ok := f.Type.(*arrow.FixedSizeListType)
		if !ok || fl.Elem().ID() != c.elem.ID() {
			return invalidf(-1, c.name, "column %s has type %s, want %s", c.name, f.Type, wt)
		}
		var size int
		var dims string
		switch i {
		case iXRef:
			size, dims = xn, "3x"+strconv.Itoa(h.HRH)+"x"+strconv.Itoa(h.HRW)+" from "+MetaHRShape
		case iYRef:
			size, dims = yn, "3x"+strconv.Itoa(h.LRH)+"x"+strconv.Itoa(h.LRW)+" from "+MetaLRShape
		default:
			size, dims = kn, "kernel_size "+strconv.Itoa(h.KernelSize)+" from "+MetaKernelSize
		}
		if int(fl.Len()) != size {
			return invalidf(-1, c.name, "column %s has list size %d, want %d (%s)", c.name, fl.Len(), size, dims)
		}
	}
	return nil
}

func bufBytes(bufs []*memory.Buffer, i int) []byte {
	if i >= len(bufs) || bufs[i] == nil {
		return nil
	}
	return bufs[i].Bytes()
}

// span checks that elements [off, off+n) of width w lie inside a buffer of
// nb bytes and returns their byte range. By the time it is called off and n
// are non-negative and below 2^48 (row offsets and counts are at most
// MaxPairs, list sizes below 2^30, child offsets below 2^31), so nothing
// overflows.
func span(off, n, w, nb int) (lo, hi int, ok bool) {
	lo, hi = off*w, (off+n)*w
	return lo, hi, hi <= nb
}

// checkData checks the length and offset of a column (or child) array.
func checkData(d arrow.ArrayData, name string, n int) error {
	if d.Len() != n {
		return invalidf(-1, name, "column %s has %d values, want %d", name, d.Len(), n)
	}
	if off := d.Offset(); off < 0 || off > MaxPairs {
		return invalidf(-1, name, "column %s has offset %d", name, off)
	}
	return nil
}

// validity returns the validity bitmap of an array, nil when the array
// declares no nulls, after checking the bitmap covers the array and agrees
// with the declared null count.
func validity(d arrow.ArrayData, name string) ([]byte, error) {
	declared := d.NullN() // the raw count: *array.Data does not compute it
	if declared == 0 {
		return nil, nil
	}
	bm := bufBytes(d.Buffers(), 0)
	off, n := d.Offset(), d.Len()
	if int64(len(bm)) < bitutil.BytesForBits(int64(off+n)) {
		return nil, invalidf(-1, name, "column %s declares %d nulls but its validity bitmap has %d bytes", name, declared, len(bm))
	}
	if count := n - bitutil.CountSetBits(bm, off, n); declared > 0 && declared != count {
		return nil, invalidf(-1, name, "column %s declares %d nulls, its validity bitmap has %d", name, declared, count)
	}
	return bm, nil
}

// firstNull returns the first null row in [0, n) of a bitmap at off, or -1.
func firstNull(bm []byte, off, n int) int {
	if bm == nil {
		return -1
	}
	for i := 0; i < n; i++ {
		if !bitutil.BitIsSet(bm, off+i) {
			return i
		}
	}
	return -1
}

// noNulls checks a non-nullable column.
func noNulls(d arrow.ArrayData, name string) error {
	bm, err := validity(d, name)
	if err != nil {
		return err
	}
	if r := firstNull(bm, d.Offset(), d.Len()); r >= 0 {
		return invalidf(r, name, "%s is null", name)
	}
	return nil
}

// readFixed reads a non-nullable primitive column. The values are a view
// of region when they lie in it (see view), else a copy; either way the
// caller copies them into the pairs.
func readFixed[T fixedWidth](d arrow.ArrayData, name string, rows int, region []byte) ([]T, error) {
	if err := checkData(d, name, rows); err != nil {
		return nil, err
	}
	if err := noNulls(d, name); err != nil {
		return nil, err
	}
	var zero T
	raw := bufBytes(d.Buffers(), 1)
	lo, hi, ok := span(d.Offset(), rows, int(unsafe.Sizeof(zero)), len(raw))
	if !ok {
		return nil, invalidf(-1, name, "column %s has a %d-byte values buffer, want %d", name, len(raw), hi)
	}
	if v, ok := view[T](region, raw[lo:hi]); ok {
		return v, nil
	}
	out := make([]T, rows)
	copy(arrow.GetBytes(out), raw[lo:hi]) // byte copy: the source may be unaligned
	return out, nil
}

func readStrings(d arrow.ArrayData, name string, rows int) ([]string, error) {
	if err := checkData(d, name, rows); err != nil {
		return nil, err
	}
	if err := noNulls(d, name); err != nil {
		return nil, err
	}
	bufs := d.Buffers()
	raw := bufBytes(bufs, 1)
	lo, hi, ok := span(d.Offset(), rows+1, 4, len(raw))
	if !ok {
		return nil, invalidf(-1, name, "column %s has a %d-byte offsets buffer, want %d", name, len(raw), hi)
	}
	offs := make([]int32, rows+1)
	copy(arrow.GetBytes(offs), raw[lo:hi])
	vals := bufBytes(bufs, 2)
	if offs[0] < 0 || int(offs[rows]) > len(vals) {
		return nil, invalidf(-1, name, "column %s has offsets %d..%d outside its %d-byte data", name, offs[0], offs[rows], len(vals))
	}
	for i := 0; i < rows; i++ {
		if offs[i+1] < offs[i] {
			return nil, invalidf(i, name, "%s has a negative length", name)
		}
	}
	all := string(vals[offs[0]:offs[rows]]) // one copy per column
	out := make([]string, rows)
	for i := range out {
		out[i] = all[offs[i]-offs[0] : offs[i+1]-offs[0]]
	}
	return out, nil
}

// readList reads a fixed-size list column of rows lists of size values.
// It returns the values of all rows end to end (null rows included, as
// stored) and the validity bitmap (nil: no nulls) with its offset. The
// values alias region when they lie inside it, suitably aligned (see view);
// otherwise they are a fresh copy.
func readList[T fixedWidth](d arrow.ArrayData, name string, rows, size int, nullable bool, region []byte) ([]T, []byte, int, error) {
	if err := checkData(d, name, rows); err != nil {
		return nil, nil, 0, err
	}
	bm, err := validity(d, name)
	if err != nil {
		return nil, nil, 0, err
	}
	off := d.Offset()
	if !nullable {
		if r := firstNull(bm, off, rows); r >= 0 {
			return nil, nil, 0, invalidf(r, name, "%s is null", name)
		}
	}
	kids := d.Children()
	if len(kids) != 1 || kids[0] == nil {
		return nil, nil, 0, invalidf(-1, name, "column %s has %d child arrays, want 1", name, len(kids))
	}
	c := kids[0]
	coff := c.Offset()
	if coff < 0 || coff > 1<<31 || c.Len() < (off+rows)*size || c.Len() > 1<<40 {
		return nil, nil, 0, invalidf(-1, name, "column %s has %d values at offset %d, want %d", name, c.Len(), coff, (off+rows)*size)
	}
	cbm, err := validity(c, name+" values")
	if err != nil {
		return nil, nil, 0, err
	}
	if cbm != nil {
		// Values may be null only inside null rows.
		for r := 0; r < rows; r++ {
			if bm != nil && !bitutil.BitIsSet(bm, off+r) {
				continue
			}
			start := coff + (off+r)*size
			if bitutil.CountSetBits(cbm, start, size) != size {
				return nil, nil, 0, invalidf(r, name, "%s has null values", name)
			}
		}
	}
	var zero T
	raw := bufBytes(c.Buffers(), 1)
	lo, hi, ok := span(coff+off*size, rows*size, int(unsafe.Sizeof(zero)), len(raw))
	if !ok {
		return nil, nil, 0, invalidf(-1, name, "column %s has a %d-byte values buffer, want %d", name, len(raw), hi)
	}
	if v, ok := view[T](region, raw[lo:hi]); ok {
		return v, bm, off, nil
	}
	out := make([]T, rows*size)
	copy(arrow.GetBytes(out), raw[lo:hi])
	return out, bm, off, nil
}

// batchFromRecord turns a record batch, whose schema checkFields accepted,
// into a Batch. It checks every buffer before reading it. List values that
// lie in region (the body arrow-go read in place; nil: none) are aliased,
// everything else is copied.
func batchFromRecord(rec arrow.RecordBatch, h Header, region []byte) (*Batch, error) {
	if rec == nil {
		return nil, invalidf(-1, "", "no record batch")
	}
	nr := rec.NumRows()
	if nr < 1 || nr > MaxPairs {
		return nil, invalidf(-1, "", "record batch has %d rows, want 1..%d", nr, MaxPairs)
	}
	if int(rec.NumCols()) < numColumns {
		return nil, invalidf(-1, "", "record batch has %d columns, want %d", rec.NumCols(), numColumns)
	}
	rows := int(nr)
	col := func(i int) arrow.ArrayData { return rec.Column(i).Data() }
	var firstErr error
	strs := func(i int) []string {
		if firstErr != nil {
			return nil
		}
		s, err := readStrings(col(i), columns[i].name, rows)
		firstErr = err
		return s
	}
	sampleID, runID, producerID := strs(iSampleID), strs(iRunID), strs(iProducerID)
	sha, source := strs(iWeightsSHA256), strs(iSourceImage)
	if firstErr != nil {
		return nil, firstErr
	}
	batchSeq, err := readFixed[uint64](col(iBatchSeq), ColBatchSeq, rows, region)
	if err != nil {
		return nil, err
	}
	index, err := readFixed[uint32](col(iIndex), ColIndex, rows, region)
	if err != nil {
		return nil, err
	}
	seed, err := readFixed[uint64](col(iSeed), ColSeed, rows, region)
	if err != nil {
		return nil, err
	}
	wv, err := readFixed[uint64](col(iWeightsVersion), ColWeightsVersion, rows, region)
	if err != nil {
		return nil, err
	}
	var crop [4][]int32
	for j, i := range [4]int{iCropX, iCropY, iCropW, iCropH} {
		if crop[j], err = readFixed[int32](col(i), columns[i].name, rows, region); err != nil {
			return nil, err
		}
	}
	dihedral, err := readFixed[uint8](col(iDihedral), ColDihedral, rows, region)
	if err != nil {
		return nil, err
	}
	noiseMean, err := readFixed[float32](col(iNoiseMean), ColNoiseMean, rows, region)
	if err != nil {
		return nil, err
	}
	noiseStd, err := readFixed[float32](col(iNoiseStd), ColNoiseStd, rows, region)
	if err != nil {
		return nil, err
	}
	xn, yn, kn := h.listSizes()
	xref, _, _, err := readList[uint8](col(iXRef), ColXRef, rows, xn, false, region)
	if err != nil {
		return nil, err
	}
	yref, _, _, err := readList[float32](col(iYRef), ColYRef, rows, yn, false, region)
	if err != nil {
		return nil, err
	}
	kern, kbm, koff, err := readList[float32](col(iKernel), ColKernel, rows, kn, true, region)
	if err != nil {
		return nil, err
	}

	b := &Batch{Header: h, Pairs: make([]Pair, rows)}
	for r := range b.Pairs {
		p := &b.Pairs[r]
		p.SampleID, p.RunID, p.ProducerID = sampleID[r], runID[r], producerID[r]
		p.BatchSeq, p.Index, p.Seed, p.WeightsVersion = batchSeq[r], index[r], seed[r], wv[r]
		p.WeightsSHA256, p.SourceImage = sha[r], source[r]
		p.CropX, p.CropY, p.CropW, p.CropH = crop[0][r], crop[1][r], crop[2][r], crop[3][r]
		p.Dihedral = dihedral[r]
		p.XRef = xref[r*xn : (r+1)*xn : (r+1)*xn]
		p.YRef = yref[r*yn : (r+1)*yn : (r+1)*yn]
		if kbm == nil || bitutil.BitIsSet(kbm, koff+r) {
			p.Kernel = kern[r*kn : (r+1)*kn : (r+1)*kn]
		}
		p.NoiseMean, p.NoiseStd = noiseMean[r], noiseStd[r]
	}
	return b, nil
}
