// Package safetensors reads and writes the safetensors format
// (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length, a JSON header mapping tensor names to dtype, shape and
// byte offsets (plus an optional "__metadata__" string map), then the raw
// little-endian tensor bytes. pdmflow stores weights and checkpoints in it.
//
// Decode validates everything it reads (header size, JSON, dtypes, shapes,
// offsets that must tile the data exactly) and never panics on bad input.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// Supported dtypes.
const (
	F32 = "F32"
	F64 = "F64"
	U8  = "U8"
	I64 = "I64"
)

// MaxHeader bounds the JSON header; larger headers are refused as corrupt.
const MaxHeader = 64 << 20

// ErrFormat is wrapped by every error about malformed input.
var ErrFormat = errors.New("safetensors: invalid format")

func elemSize(dtype string) int {
	switch dtype {
	case F32:
		return 4
	case F64, I64:
		return 8
	case U8:
		return 1
	}
	return 0
}

// Tensor is one named tensor: dtype, shape and its raw little-endian bytes.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

// NumElements is the product of the shape (1 for a scalar).
func (t Tensor) NumElements() int {
	n := 1
	for _, s := range t.Shape {
		n *= s
	}
	return n
}

// Float32s decodes an F32 tensor.
func (t Tensor) Float32s() ([]float32, error) {
	if t.DType != F32 {
		return nil, fmt.Errorf("safetensors: %s is %s, not F32", t.Name, t.DType)
	}
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// Float64s decodes an F64 tensor.
func (t Tensor) Float64s() ([]float64, error) {
	if t.DType != F64 {
		return nil, fmt.Errorf("safetensors: %s is %s, not F64", t.Name, t.DType)
	}
	out := make([]float64, len(t.Data)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out, nil
}

// FromFloat32s makes an F32 tensor.
func FromFloat32s(name string, shape []int, v []float32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// FromFloat64s makes an F64 tensor.
func FromFloat64s(name string, shape []int, v []float64) Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return Tensor{Name: name, DType: F64, Shape: append([]int(nil), shape...), Data: b}
}

// File is a decoded safetensors file.
type File struct {
	Metadata map[string]string
	Tensors  []Tensor // in order of their data offsets
}

// Get returns the tensor with the given name.
func (f *File) Get(name string) (Tensor, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

type entry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// Encode writes tensors (in the given order) and metadata to w.
func Encode(w io.Writer, meta map[string]string, tensors []Tensor) error {
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	var off int64
	seen := map[string]bool{}
	for _, t := range tensors {
		if t.Name == "" || t.Name == "__metadata__" || seen[t.Name] {
			return fmt.Errorf("safetensors: bad or duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		es := elemSize(t.DType)
		if es == 0 {
			return fmt.Errorf("safetensors: %s: unsupported dtype %q", t.Name, t.DType)
		}
		for _, s := range t.Shape {
			if s < 0 {
				return fmt.Errorf("safetensors: %s: negative dimension in %v", t.Name, t.Shape)
			}
		}
		if len(t.Data) != es*t.NumElements() {
			return fmt.Errorf("safetensors: %s: %d bytes for %s %v", t.Name, len(t.Data), t.DType, t.Shape)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = entry{DType: t.DType, Shape: shape, DataOffsets: [2]int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	h, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors: header: %w", err)
	}
	// Pad the header with spaces so the data starts 8-byte aligned.
	if pad := (8 - len(h)%8) % 8; pad > 0 {
		h = append(h, bytes.Repeat([]byte(" "), pad)...)
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(h)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// Decode parses a whole safetensors file held in memory. Tensor data
// aliases b.
func Decode(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the 8-byte header length", ErrFormat, len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeader || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("%w: header length %d does not fit in %d bytes", ErrFormat, n, len(b))
	}
	hdr := b[8 : 8+n]
	data := b[8+n:]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("%w: header JSON: %v", ErrFormat, err)
	}
	f := &File{}
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &f.Metadata); err != nil {
			return nil, fmt.Errorf("%w: __metadata__ is not a string map: %v", ErrFormat, err)
		}
		delete(raw, "__metadata__")
	}
	type span struct {
		name       string
		begin, end int64
		e          entry
	}
	spans := make([]span, 0, len(raw))
	for name, msg := range raw {
		if name == "" {
			return nil, fmt.Errorf("%w: empty tensor name", ErrFormat)
		}
		var e entry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrFormat, name, err)
		}
		es := elemSize(e.DType)
		if es == 0 {
			return nil, fmt.Errorf("%w: tensor %q: unsupported dtype %q", ErrFormat, name, e.DType)
		}
		count := int64(1)
		for _, s := range e.Shape {
			if s < 0 || (s > 0 && count > math.MaxInt64/int64(es)/int64(s)) {
				return nil, fmt.Errorf("%w: tensor %q: bad shape %v", ErrFormat, name, e.Shape)
			}
			count *= int64(s)
		}
		b0, b1 := e.DataOffsets[0], e.DataOffsets[1]
		if b0 < 0 || b1 < b0 || b1 > int64(len(data)) {
			return nil, fmt.Errorf("%w: tensor %q: offsets [%d, %d) outside %d data bytes", ErrFormat, name, b0, b1, len(data))
		}
		if b1-b0 != count*int64(es) {
			return nil, fmt.Errorf("%w: tensor %q: %d bytes for %s %v", ErrFormat, name, b1-b0, e.DType, e.Shape)
		}
		spans = append(spans, span{name, b0, b1, e})
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	var pos int64
	for _, s := range spans {
		if s.begin != pos {
			return nil, fmt.Errorf("%w: tensor %q starts at byte %d, expected %d (gap or overlap)", ErrFormat, s.name, s.begin, pos)
		}
		pos = s.end
		f.Tensors = append(f.Tensors, Tensor{Name: s.name, DType: s.e.DType, Shape: s.e.Shape, Data: data[s.begin:s.end]})
	}
	if pos != int64(len(data)) {
		return nil, fmt.Errorf("%w: %d trailing data bytes after the last tensor", ErrFormat, int64(len(data))-pos)
	}
	return f, nil
}
