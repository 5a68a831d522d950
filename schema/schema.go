package schema

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

const (
	Major = 1 // incompatible changes; Decode rejects any other major
	Minor = 1 // compatible additions; Decode accepts a newer minor
)

// Version returns the newest schema version this package writes, "1.1".
// A message is written as 1.0 when it uses nothing of 1.1 (Header.Device),
// so that the bytes of such messages are those of a 1.0 writer.
func Version() string { return strconv.Itoa(Major) + "." + strconv.Itoa(Minor) }

// versionOf is the version a header is written with: 1.1 when it records
// a device, else 1.0.
func versionOf(h Header) string {
	if h.Device != "" {
		return Version()
	}
	return strconv.Itoa(Major) + ".0"
}

// DefaultMaxMessageBytes is the largest message Decode accepts by default
// (8 MiB, the broker's max_payload).
const DefaultMaxMessageBytes = 8 << 20

// MaxPairs is the largest number of rows a batch may hold. Validate, and so
// Encode and Decode, reject larger batches; it bounds what a small but highly
// compressed message can make Decode allocate.
const MaxPairs = 1 << 16

// Limits on the header, far above what the pipeline uses; they keep every
// list size inside Arrow's int32 and every size computation far from
// overflow.
const (
	maxSide       = 1 << 14 // HR height and width
	maxKernelSize = 255     // kernel side
)

// Degradation names accepted in Header.Degradation.
const (
	DegradationPDM      = "pdm"
	DegradationBicubic  = "bicubic"
	DegradationGaussian = "gaussian"
)

// Header is what every row of a batch shares; it travels in the Arrow schema
// metadata.
type Header struct {
	Scale       int    // SR factor (2, 3 or 4)
	HRH, HRW    int    // x_ref height and width (HR pixels)
	LRH, LRW    int    // y_ref height and width; must equal (HRH-1)/Scale+1 and (HRW-1)/Scale+1
	KernelSize  int    // side k of the kernel column (odd); 0 when the batch has no kernels
	Degradation string // "pdm", "bicubic" or "gaussian"
	// Device is the arithmetic that made the batch's y_ref, kernels and
	// noise statistics when it is not the CPU reference: KIND/PRECISION,
	// e.g. "cuda/fp32" (schema 1.1, metadata pdmflow.device). Empty for the
	// CPU, whose samples regenerate bit for bit; the other devices'
	// samples regenerate within a stated tolerance. Batches of one stream
	// may differ in Device (SameStream).
	Device string
}

// SameStream reports whether batches with headers h and o can be mixed in
// one training stream: every field equal except Device.
func (h Header) SameStream(o Header) bool {
	o.Device = h.Device
	return h == o
}

// LRSize returns the y_ref height and width that go with an HR size at a
// scale: ((hrH-1)/scale+1, (hrW-1)/scale+1), i.e. ceil(hr/scale).
func LRSize(hrH, hrW, scale int) (lrH, lrW int) {
	return (hrH-1)/scale + 1, (hrW-1)/scale + 1
}

// Pair is one row.
type Pair struct {
	SampleID       string // FormatSampleID(RunID, ProducerID, BatchSeq, Index): unique within the batch
	RunID          string // a valid id (ValidID)
	ProducerID     string // a valid id (ValidID)
	BatchSeq       uint64 // the producer's batch counter
	Index          uint32 // row within the batch
	Seed           uint64 // the per-sample seed that drew crop, transform and latents
	WeightsVersion uint64 // PDM weights version used (0: none, e.g. bicubic)
	WeightsSHA256  string // lower-case hex sha256 of those weights ("" when none)
	SourceImage    string // id of the HR source image (e.g. its file name or object key)
	CropX, CropY   int32  // top-left of the crop box in the source image (HR px, before the transform)
	CropW, CropH   int32  // its size
	// Dihedral is the transform applied to the crop, 0..7: bit0 = flip
	// left-right, bit1 = flip up-down, bit2 = transpose, applied in that
	// order (see the package documentation for the exact mapping).
	Dihedral            uint8
	XRef                []uint8   // 3*HRH*HRW, CHW, RGB
	YRef                []float32 // 3*LRH*LRW, CHW, RGB, exactly as generated: NOT rounded or clamped
	Kernel              []float32 // KernelSize*KernelSize row-major, or nil (null) when the batch has no kernel
	NoiseMean, NoiseStd float32   // statistics of the added noise over the sample (0 when none)
}

// FormatSampleID returns the sample id "run/producer/batchseq/index", the
// one format Validate accepts (see ParseSampleID).
func FormatSampleID(runID, producerID string, batchSeq uint64, index uint32) string {
	return runID + "/" + producerID + "/" + strconv.FormatUint(batchSeq, 10) + "/" + strconv.FormatUint(uint64(index), 10)
}

// MaxIDLen is the longest run or producer id.
const MaxIDLen = 64

// ValidID reports whether s can be a run or producer id: 1..MaxIDLen
// characters of A-Z, a-z, 0-9, '_' and '-'. Such an id is safe in NATS
// subjects, KV keys, object keys and file names (it can be neither "." nor
// "..", and holds no separator).
func ValidID(s string) bool {
	if len(s) < 1 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// SampleID is a parsed sample id: which run, producer, batch and row a
// sample is.
type SampleID struct {
	Run, Producer string
	BatchSeq      uint64
	Index         uint32
}

// String is the id in its one format, FormatSampleID's.
func (s SampleID) String() string { return FormatSampleID(s.Run, s.Producer, s.BatchSeq, s.Index) }

// ParseSampleID parses "run/producer/batchseq/index": run and producer
// valid ids (ValidID), batchseq and index decimal numbers without sign or
// leading zeros that fit uint64 and uint32. It is the one parser of sample
// ids; what it accepts is exactly what FormatSampleID writes. An error
// wraps ErrInvalid and quotes (a clipped) s.
func ParseSampleID(s string) (SampleID, error) {
	bad := func(why string) (SampleID, error) {
		return SampleID{}, invalidf(-1, ColSampleID, "sample id %q: %s (want RUN/PRODUCER/BATCHSEQ/INDEX)", clip(s), why)
	}
	parts := strings.Split(s, "/")
	if len(parts) != 4 {
		return bad(strconv.Itoa(len(parts)) + " parts separated by '/'")
	}
	if !ValidID(parts[0]) {
		return bad("the run is not 1-64 characters of A-Z a-z 0-9 _ -")
	}
	if !ValidID(parts[1]) {
		return bad("the producer is not 1-64 characters of A-Z a-z 0-9 _ -")
	}
	seq, ok := parseDecimal(parts[2], 64)
	if !ok {
		return bad("the batch sequence is not a decimal uint64 without leading zeros")
	}
	idx, ok := parseDecimal(parts[3], 32)
	if !ok {
		return bad("the index is not a decimal uint32 without leading zeros")
	}
	return SampleID{Run: parts[0], Producer: parts[1], BatchSeq: seq, Index: uint32(idx)}, nil
}

// parseDecimal parses a canonical decimal number (digits only, no leading
// zero unless it is "0") of at most bits bits.
func parseDecimal(s string, bits int) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, bits)
	return v, err == nil
}

// Batch is one message: a header and its rows.
type Batch struct {
	Header
	Pairs []Pair
}

// Sentinel errors, testable with errors.Is; returned errors wrap them and say
// what and where ("schema: row 3: y_ref has 3071 values, want 3072 (3x32x32)").
var (
	ErrTooLarge  = errors.New("schema: message too large")
	ErrTruncated = errors.New("schema: truncated message")
	ErrVersion   = errors.New("schema: unsupported schema version")
	ErrInvalid   = errors.New("schema: invalid batch") // shapes, values, missing/extra columns, wrong types
)

// Error is the type of the errors returned by Validate, Encode and Decode for
// a bad batch or message. It wraps one of the sentinel errors.
type Error struct {
	Kind  error  // ErrTooLarge, ErrTruncated, ErrVersion or ErrInvalid
	Row   int    // row index, or -1 when the problem is not in one row
	Field string // column name or metadata key at fault, "" when none in particular
	Msg   string // what is wrong, naming Field
}

func (e *Error) Error() string {
	if e.Row >= 0 {
		return "schema: row " + strconv.Itoa(e.Row) + ": " + e.Msg
	}
	return "schema: " + e.Msg
}

// Unwrap returns the sentinel (Kind).
func (e *Error) Unwrap() error { return e.Kind }

func newErr(kind error, row int, field, format string, args ...any) *Error {
	return &Error{Kind: kind, Row: row, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// clip shortens a string from a message for quoting in an error.
func clip(s string) string {
	if len(s) > 48 {
		return s[:48] + "..."
	}
	return s
}

func invalidf(row int, field, format string, args ...any) *Error {
	return newErr(ErrInvalid, row, field, format, args...)
}

// NATS message headers that go with a message (set by the producer; the
// Nats-Msg-Id is "run/producer/weights_version/batch_seq").
const (
	HeaderBatchSeq = "Pdmflow-Batch-Seq"       // the batch sequence of every row, decimal
	HeaderPairs    = "Pdmflow-Pairs"           // the number of rows
	HeaderWeights  = "Pdmflow-Weights-Version" // the weights version of every row
	HeaderPad      = "Pdmflow-Pad"             // filler that aligns the payload (see package producer)
)

// Column names, in schema order.
const (
	ColSampleID       = "sample_id"
	ColRunID          = "run_id"
	ColProducerID     = "producer_id"
	ColBatchSeq       = "batch_seq"
	ColIndex          = "index"
	ColSeed           = "seed"
	ColWeightsVersion = "weights_version"
	ColWeightsSHA256  = "weights_sha256"
	ColSourceImage    = "source_image"
	ColCropX          = "crop_x"
	ColCropY          = "crop_y"
	ColCropW          = "crop_w"
	ColCropH          = "crop_h"
	ColDihedral       = "dihedral"
	ColXRef           = "x_ref"
	ColYRef           = "y_ref"
	ColKernel         = "kernel"
	ColNoiseMean      = "noise_mean"
	ColNoiseStd       = "noise_std"
)

// Schema metadata keys.
const (
	MetaSchemaVersion = "pdmflow.schema_version"
	MetaScale         = "pdmflow.scale"
	MetaHRShape       = "pdmflow.hr_shape"
	MetaLRShape       = "pdmflow.lr_shape"
	MetaKernelSize    = "pdmflow.kernel_size"
	MetaDegradation   = "pdmflow.degradation"
	MetaDevice        = "pdmflow.device" // 1.1, only when not the CPU reference
	MetaXRef          = "pdmflow.x_ref"
	MetaYRef          = "pdmflow.y_ref"

	// MetaShape is the field metadata key on x_ref, y_ref and kernel giving
	// the shape of one row's value ("3,H,W", "3,h,w", "k,k"; "0,0" for a
	// kernel column without kernels).
	MetaShape = "pdmflow.shape"
)

const (
	xRefDesc = "uint8 CHW RGB 0..255"
	yRefDesc = "float32 CHW RGB, unrounded"
)

// column indices, in schema order.
const (
	iSampleID = iota
	iRunID
	iProducerID
	iBatchSeq
	iIndex
	iSeed
	iWeightsVersion
	iWeightsSHA256
	iSourceImage
	iCropX
	iCropY
	iCropW
	iCropH
	iDihedral
	iXRef
	iYRef
	iKernel
	iNoiseMean
	iNoiseStd
	numColumns
)

// colSpec describes one column: its name, type id, and for the fixed-size
// lists the element type (the list size depends on the header).
type colSpec struct {
	name     string
	id       arrow.Type
	elem     arrow.DataType // fixed-size lists only
	nullable bool
}

var columns = [numColumns]colSpec{
	iSampleID:       {ColSampleID, arrow.STRING, nil, false},
	iRunID:          {ColRunID, arrow.STRING, nil, false},
	iProducerID:     {ColProducerID, arrow.STRING, nil, false},
	iBatchSeq:       {ColBatchSeq, arrow.UINT64, nil, false},
	iIndex:          {ColIndex, arrow.UINT32, nil, false},
	iSeed:           {ColSeed, arrow.UINT64, nil, false},
	iWeightsVersion: {ColWeightsVersion, arrow.UINT64, nil, false},
	iWeightsSHA256:  {ColWeightsSHA256, arrow.STRING, nil, false},
	iSourceImage:    {ColSourceImage, arrow.STRING, nil, false},
	iCropX:          {ColCropX, arrow.INT32, nil, false},
	iCropY:          {ColCropY, arrow.INT32, nil, false},
	iCropW:          {ColCropW, arrow.INT32, nil, false},
	iCropH:          {ColCropH, arrow.INT32, nil, false},
	iDihedral:       {ColDihedral, arrow.UINT8, nil, false},
	iXRef:           {ColXRef, arrow.FIXED_SIZE_LIST, arrow.PrimitiveTypes.Uint8, false},
	iYRef:           {ColYRef, arrow.FIXED_SIZE_LIST, arrow.PrimitiveTypes.Float32, false},
	iKernel:         {ColKernel, arrow.FIXED_SIZE_LIST, arrow.PrimitiveTypes.Float32, true},
	iNoiseMean:      {ColNoiseMean, arrow.FLOAT32, nil, false},
	iNoiseStd:       {ColNoiseStd, arrow.FLOAT32, nil, false},
}

var scalarTypes = map[arrow.Type]arrow.DataType{
	arrow.STRING:  arrow.BinaryTypes.String,
	arrow.UINT64:  arrow.PrimitiveTypes.Uint64,
	arrow.UINT32:  arrow.PrimitiveTypes.Uint32,
	arrow.INT32:   arrow.PrimitiveTypes.Int32,
	arrow.UINT8:   arrow.PrimitiveTypes.Uint8,
	arrow.FLOAT32: arrow.PrimitiveTypes.Float32,
}

// listSizes returns the list sizes of x_ref, y_ref and kernel for a header.
// The kernel column has list size 1 (every row null) when KernelSize is 0:
// Arrow has no fixed-size list of size 0 in every implementation.
func (h Header) listSizes() (x, y, k int) {
	k = h.KernelSize * h.KernelSize
	if k == 0 {
		k = 1
	}
	return 3 * h.HRH * h.HRW, 3 * h.LRH * h.LRW, k
}

func shape3(h, w int) string { return "3," + strconv.Itoa(h) + "," + strconv.Itoa(w) }

// ArrowSchema returns the Arrow schema for a header (with metadata), for
// documentation and for other tools (pyarrow readers). The header should be
// valid (see Header.Validate); for an invalid one the list sizes are
// clamped to 1..2^31-1 so that the call does not panic.
func ArrowSchema(h Header) *arrow.Schema {
	xn, yn, kn := h.listSizes()
	clamp := func(n int) int { return min(max(n, 1), math.MaxInt32) }
	xn, yn, kn = clamp(xn), clamp(yn), clamp(kn)
	fields := make([]arrow.Field, numColumns)
	for i, c := range columns {
		f := arrow.Field{Name: c.name, Nullable: c.nullable}
		switch i {
		case iXRef:
			f.Type = arrow.FixedSizeListOfNonNullable(int32(xn), c.elem)
			f.Metadata = arrow.NewMetadata([]string{MetaShape}, []string{shape3(h.HRH, h.HRW)})
		case iYRef:
			f.Type = arrow.FixedSizeListOfNonNullable(int32(yn), c.elem)
			f.Metadata = arrow.NewMetadata([]string{MetaShape}, []string{shape3(h.LRH, h.LRW)})
		case iKernel:
			f.Type = arrow.FixedSizeListOfNonNullable(int32(kn), c.elem)
			k := strconv.Itoa(h.KernelSize)
			f.Metadata = arrow.NewMetadata([]string{MetaShape}, []string{k + "," + k})
		default:
			f.Type = scalarTypes[c.id]
		}
		fields[i] = f
	}
	keys := []string{MetaSchemaVersion, MetaScale, MetaHRShape, MetaLRShape, MetaKernelSize, MetaDegradation, MetaXRef, MetaYRef}
	vals := []string{versionOf(h), strconv.Itoa(h.Scale), shape3(h.HRH, h.HRW), shape3(h.LRH, h.LRW), strconv.Itoa(h.KernelSize), h.Degradation, xRefDesc, yRefDesc}
	if h.Device != "" {
		keys, vals = append(keys, MetaDevice), append(vals, h.Device)
	}
	md := arrow.NewMetadata(keys, vals)
	return arrow.NewSchema(fields, &md)
}

// DihedralSource maps pixel (r, c) of a crop of cropH rows and cropW columns
// after dihedral transform d (see the package documentation) back to the
// pixel (y, x) of the crop it came from.
func DihedralSource(d uint8, r, c, cropH, cropW int) (y, x int) {
	u, v := r, c
	if d&4 != 0 {
		u, v = c, r
	}
	if d&2 != 0 {
		u = cropH - 1 - u
	}
	if d&1 != 0 {
		v = cropW - 1 - v
	}
	return u, v
}
