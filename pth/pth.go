package pth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Tensor is one tensor of a checkpoint: its dtype (safetensors' names),
// shape and values, contiguous in row-major order, little-endian.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

// NumElements is the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, s := range t.Shape {
		n *= s
	}
	return n
}

// Float32s returns the values as float32: F32 as stored, F16 and BF16
// exactly, F64 rounded to the nearest float32. Integer tensors are refused.
func (t *Tensor) Float32s() ([]float32, error) {
	n := t.NumElements()
	out := make([]float32, n)
	switch t.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:])))
		}
	case "F16":
		for i := range out {
			out[i] = halfToFloat(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16)
		}
	default:
		return nil, fmt.Errorf("pth: tensor %s is %s, not a floating-point tensor", t.Name, t.DType)
	}
	return out, nil
}

// halfToFloat converts an IEEE 754 binary16 value exactly.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := int(h>>10) & 0x1f
	frac := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp == 0:
		// Zero or subnormal: frac * 2^-24.
		v := float32(frac) * float32(1.0/(1<<24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | frac<<13)
}

var elemSizes = map[string]int{"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}

// File is a decoded checkpoint.
type File struct {
	// Format is "zip" or "legacy".
	Format string
	// Tensors in the order the dicts list them, named by their dotted
	// key path.
	Tensors []Tensor
	// Values holds the other leaves (numbers, strings, booleans, None as
	// nil), by the same names: an epoch counter, a config string.
	Values map[string]any
}

// Get returns the tensor with the given name.
func (f *File) Get(name string) (*Tensor, bool) {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i], true
		}
	}
	return nil, false
}

// storageRef is a storage of the file: its dtype and bytes.
type storageRef struct {
	dtype string
	data  []byte
}

// view is a tensor as the pickle describes it: a strided view of a
// storage, made contiguous by rebuild.
type view struct {
	st           *storageRef
	off          int64
	size, stride []int64
}

func (s *storageRef) numel() int64 { return int64(len(s.data) / elemSizes[s.dtype]) }

// rebuild makes the contiguous tensor of a strided view of st, checking
// that the view lies inside the storage and takes at most budget bytes.
func rebuild(st *storageRef, off int64, size, stride []int64, budget int64) (*Tensor, error) {
	if len(size) != len(stride) {
		return nil, fmt.Errorf("%w: tensor of %d dimensions with %d strides", ErrFormat, len(size), len(stride))
	}
	if len(size) > 64 {
		return nil, fmt.Errorf("%w: tensor of %d dimensions", ErrFormat, len(size))
	}
	numel := st.numel()
	if off < 0 || off > numel {
		return nil, fmt.Errorf("%w: storage offset %d outside a storage of %d elements", ErrFormat, off, numel)
	}
	count := int64(1)
	for i, s := range size {
		if s < 0 || stride[i] < 0 {
			return nil, fmt.Errorf("%w: tensor size %v stride %v", ErrFormat, size, stride)
		}
		if s == 0 {
			count = 0
		}
	}
	if count != 0 {
		// No more elements than the storage (so an expanded view, whose
		// stride 0 repeats elements, is refused), and the last element
		// the view reads, off + sum (size-1)*stride, inside it.
		last := off
		for i, s := range size {
			if s > numel/count {
				return nil, fmt.Errorf("%w: tensor of size %v has more elements than its storage (%d): an expanded view", ErrFormat, size, numel)
			}
			count *= s
			if s > 1 && stride[i] > 0 {
				if s-1 > (numel-1-last)/stride[i] {
					return nil, fmt.Errorf("%w: view (offset %d, size %v, stride %v) outside a storage of %d elements", ErrFormat, off, size, stride, numel)
				}
				last += (s - 1) * stride[i]
			}
		}
		if last >= numel {
			return nil, fmt.Errorf("%w: view (offset %d, size %v, stride %v) outside a storage of %d elements", ErrFormat, off, size, stride, numel)
		}
	}
	es := int64(elemSizes[st.dtype])
	if count*es > budget {
		return nil, fmt.Errorf("%w: tensors of more bytes than a checkpoint of this size can hold (one tensor under many names?)", ErrFormat)
	}
	t := &Tensor{DType: st.dtype, Shape: make([]int, len(size)), Data: make([]byte, count*es)}
	for i, s := range size {
		t.Shape[i] = int(s)
	}
	if count == 0 {
		return t, nil
	}
	// Walk the view in row-major order with an odometer.
	idx := make([]int64, len(size))
	src := off
	for o := int64(0); o < count; o++ {
		copy(t.Data[o*es:(o+1)*es], st.data[src*es:(src+1)*es])
		for d := len(size) - 1; d >= 0; d-- {
			idx[d]++
			src += stride[d]
			if idx[d] < size[d] {
				break
			}
			src -= idx[d] * stride[d]
			idx[d] = 0
		}
	}
	return t, nil
}

// storageDType reads a persistent id's storage type.
func storageDType(v any) (string, error) {
	g, ok := v.(*pyGlobal)
	if !ok || g.module != "torch" {
		return "", fmt.Errorf("%w: persistent id names a %s, not a storage type", ErrFormat, typeName(v))
	}
	dt, ok := storageTypes[g.name]
	if !ok {
		return "", fmt.Errorf("%w: unknown storage type torch.%s", ErrFormat, g.name)
	}
	return dt, nil
}

// ReadFile reads a checkpoint from disk.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pth: %w", err)
	}
	f, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Decode parses a whole checkpoint held in memory: the zip format if b
// starts with a zip header, the legacy format if it starts with a pickle.
func Decode(b []byte) (*File, error) {
	switch {
	case len(b) >= 4 && string(b[:4]) == "PK\x03\x04":
		return decodeZip(b)
	case len(b) >= 2 && b[0] == 0x80 && b[1] <= 5:
		return decodeLegacy(b)
	case len(b) >= 262 && string(b[257:262]) == "ustar":
		return nil, fmt.Errorf("%w: the tar format of PyTorch before 0.4 is not supported: load and save the file again with a recent PyTorch", ErrFormat)
	}
	return nil, fmt.Errorf("%w: neither a zip (torch.save since 1.6) nor a legacy pickle checkpoint", ErrFormat)
}

// maxUnzipped bounds what the entries of a zip checkpoint may decompress to
// in all: torch.save stores entries uncompressed, and weights re-zipped with
// compression shrink by far less than 4x, so a file that claims more is
// refused rather than inflated (a zip bomb).
func maxUnzipped(fileSize int) int64 { return 4*int64(fileSize) + 1<<20 }

// readEntry reads one zip entry, counting its size against *budget.
func readEntry(f *zip.File, budget *int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(*budget) {
		return nil, fmt.Errorf("%w: zip entry %s claims %d bytes, more than a checkpoint of this size can hold", ErrFormat, f.Name, f.UncompressedSize64)
	}
	*budget -= int64(f.UncompressedSize64)
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: zip entry %s: %v", ErrFormat, f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(f.UncompressedSize64)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: zip entry %s: %v", ErrFormat, f.Name, err)
	}
	if uint64(len(b)) != f.UncompressedSize64 {
		return nil, fmt.Errorf("%w: zip entry %s has %d bytes, its header says %d", ErrFormat, f.Name, len(b), f.UncompressedSize64)
	}
	return b, nil
}

func decodeZip(b []byte) (*File, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	entries := map[string]*zip.File{}
	var pkl []string
	for _, f := range zr.File {
		if _, dup := entries[f.Name]; dup {
			return nil, fmt.Errorf("%w: zip entry %s appears twice", ErrFormat, f.Name)
		}
		entries[f.Name] = f
		if dir, base, ok := strings.Cut(f.Name, "/"); ok && base == "data.pkl" && dir != "" {
			pkl = append(pkl, f.Name)
		}
	}
	if len(pkl) != 1 {
		return nil, fmt.Errorf("%w: %d ARCHIVE/data.pkl entries in the zip, a checkpoint has one", ErrFormat, len(pkl))
	}
	prefix := strings.TrimSuffix(pkl[0], "data.pkl")
	budget := maxUnzipped(len(b))
	if bo, ok := entries[prefix+"byteorder"]; ok {
		if bo.UncompressedSize64 > 16 {
			return nil, fmt.Errorf("%w: byteorder entry of %d bytes", ErrFormat, bo.UncompressedSize64)
		}
		v, err := readEntry(bo, &budget)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(v)); s != "little" {
			return nil, fmt.Errorf("%w: byte order %q: only little-endian checkpoints are supported", ErrFormat, s)
		}
	}
	data, err := readEntry(entries[pkl[0]], &budget)
	if err != nil {
		return nil, err
	}
	loaded := map[string]*storageRef{}
	load := func(pid any) (any, error) {
		// ('storage', storage_type, key, location, numel)
		t, ok := pid.(pyTuple)
		if !ok || len(t) != 5 || t[0] != "storage" {
			return nil, fmt.Errorf("%w: persistent id %s is not ('storage', type, key, location, numel)", ErrFormat, describe(pid))
		}
		dt, err := storageDType(t[1])
		if err != nil {
			return nil, err
		}
		key, ok := t[2].(string)
		if !ok {
			return nil, fmt.Errorf("%w: storage key is a %s", ErrFormat, typeName(t[2]))
		}
		numel, ok := t[4].(int64)
		if !ok || numel < 0 {
			return nil, fmt.Errorf("%w: storage %s: element count %s", ErrFormat, key, describe(t[4]))
		}
		if st, ok := loaded[key]; ok {
			if st.dtype != dt || st.numel() != numel {
				return nil, fmt.Errorf("%w: storage %s is named as %s of %d and as %s of %d elements", ErrFormat, key, st.dtype, st.numel(), dt, numel)
			}
			return st, nil
		}
		ent, ok := entries[prefix+"data/"+key]
		if !ok {
			return nil, fmt.Errorf("%w: storage %s: no zip entry %sdata/%s", ErrFormat, key, prefix, key)
		}
		es := int64(elemSizes[dt])
		if numel > budget/es {
			return nil, fmt.Errorf("%w: storage %s claims %d elements", ErrFormat, key, numel)
		}
		raw, err := readEntry(ent, &budget)
		if err != nil {
			return nil, err
		}
		if int64(len(raw)) != numel*es {
			return nil, fmt.Errorf("%w: storage %s has %d bytes, %d %s elements need %d", ErrFormat, key, len(raw), numel, dt, numel*es)
		}
		st := &storageRef{dtype: dt, data: raw}
		loaded[key] = st
		return st, nil
	}
	v, n, err := unpickle(data, load)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("%w: %d bytes after the pickle in %s", ErrFormat, len(data)-n, pkl[0])
	}
	return flattenTop(v, "zip", len(b))
}

// legacyMagic is the first pickle of a legacy checkpoint.
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

func decodeLegacy(b []byte) (*File, error) {
	pos := 0
	next := func(what string, load func(any) (any, error)) (any, error) {
		v, n, err := unpickle(b[pos:], load)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		pos += n
		return v, nil
	}
	magic, err := next("magic number", nil)
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, fmt.Errorf("%w: a pickle, but not a PyTorch checkpoint (magic number %s)", ErrFormat, describe(magic))
	}
	proto, err := next("protocol version", nil)
	if err != nil {
		return nil, err
	}
	if proto != int64(1001) {
		return nil, fmt.Errorf("%w: legacy protocol version %s, this reader knows 1001", ErrFormat, describe(proto))
	}
	info, err := next("system info", nil)
	if err != nil {
		return nil, err
	}
	if d, ok := info.(*pyDict); ok {
		if i, ok := d.index["slittle_endian"]; ok && d.vals[i] != true {
			return nil, fmt.Errorf("%w: a big-endian checkpoint: only little-endian checkpoints are supported", ErrFormat)
		}
	}
	// Storages follow the main pickle, so the persistent ids only record
	// what each key needs; the storages are filled in afterwards.
	type want struct {
		dtype string
		numel int64
		st    *storageRef
	}
	wants := map[string]*want{}
	load := func(pid any) (any, error) {
		// ('storage', storage_type, key, location, numel, view_metadata)
		t, ok := pid.(pyTuple)
		if !ok || len(t) != 6 || t[0] != "storage" {
			return nil, fmt.Errorf("%w: persistent id %s is not ('storage', type, key, location, numel, view)", ErrFormat, describe(pid))
		}
		dt, err := storageDType(t[1])
		if err != nil {
			return nil, err
		}
		key, ok := t[2].(string)
		if !ok {
			return nil, fmt.Errorf("%w: storage key is a %s", ErrFormat, typeName(t[2]))
		}
		numel, ok := t[4].(int64)
		if !ok || numel < 0 || numel > int64(len(b)) {
			return nil, fmt.Errorf("%w: storage %s: element count %s", ErrFormat, key, describe(t[4]))
		}
		if _, none := t[5].(pyNone); !none {
			return nil, fmt.Errorf("%w: storage %s is a view of another storage: not supported (save the file again with a recent PyTorch)", ErrFormat, key)
		}
		if w, ok := wants[key]; ok {
			if w.dtype != dt || w.numel != numel {
				return nil, fmt.Errorf("%w: storage %s is named as %s of %d and as %s of %d elements", ErrFormat, key, w.dtype, w.numel, dt, numel)
			}
			return w.st, nil
		}
		w := &want{dtype: dt, numel: numel, st: &storageRef{dtype: dt}}
		wants[key] = w
		return w.st, nil
	}
	obj, err := next("checkpoint", load)
	if err != nil {
		return nil, err
	}
	keysV, err := next("storage keys", nil)
	if err != nil {
		return nil, err
	}
	keys, ok := keysV.(*pyList)
	if !ok {
		return nil, fmt.Errorf("%w: storage keys are a %s, not a list", ErrFormat, typeName(keysV))
	}
	seen := map[string]bool{}
	for _, kv := range keys.items {
		key, ok := kv.(string)
		if !ok {
			return nil, fmt.Errorf("%w: storage key is a %s", ErrFormat, typeName(kv))
		}
		if seen[key] {
			return nil, fmt.Errorf("%w: storage %s listed twice", ErrFormat, key)
		}
		seen[key] = true
		w, ok := wants[key]
		if !ok {
			return nil, fmt.Errorf("%w: storage %s is listed but no tensor uses it", ErrFormat, key)
		}
		if len(b)-pos < 8 {
			return nil, fmt.Errorf("%w: storage %s: file ends before its size", ErrFormat, key)
		}
		n := int64(binary.LittleEndian.Uint64(b[pos:]))
		pos += 8
		es := int64(elemSizes[w.dtype])
		if n != w.numel {
			return nil, fmt.Errorf("%w: storage %s holds %d elements, its persistent id says %d", ErrFormat, key, n, w.numel)
		}
		if n > int64(len(b)-pos)/es {
			return nil, fmt.Errorf("%w: storage %s: %d %s elements but %d bytes left", ErrFormat, key, n, w.dtype, len(b)-pos)
		}
		w.st.data = b[pos : pos+int(n*es)]
		pos += int(n * es)
	}
	for key := range wants {
		if !seen[key] {
			return nil, fmt.Errorf("%w: storage %s is used but not in the file", ErrFormat, key)
		}
	}
	if pos != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after the last storage", ErrFormat, len(b)-pos)
	}
	return flattenTop(obj, "legacy", len(b))
}

// describe renders a small value for an error message.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case *big.Int:
		return v.String()
	case pyTuple:
		parts := make([]string, 0, len(v))
		for i, e := range v {
			if i == 8 {
				parts = append(parts, "...")
				break
			}
			parts = append(parts, describe(e))
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return typeName(v)
}

// flattenTop names the tensors and plain values of the top-level dict.
func flattenTop(v any, format string, fileSize int) (*File, error) {
	d, ok := v.(*pyDict)
	if !ok {
		return nil, fmt.Errorf("%w: the checkpoint holds a %s, not a dict of tensors", ErrFormat, typeName(v))
	}
	fl := &flattener{
		f:      &File{Format: format, Values: map[string]any{}},
		names:  map[string]bool{},
		open:   map[any]bool{},
		visits: maxVisits,
		bytes:  4*int64(fileSize) + 1<<20,
	}
	if err := fl.walk(d, "", 0); err != nil {
		return nil, err
	}
	return fl.f, nil
}

// Limits of the walk over the unpickled value: a pickle can make a dict
// that contains itself, or lists that hold the same list twice at every
// level (2^depth paths), and a tensor shared between many names would be
// copied for each.
const (
	maxDepth  = 32
	maxVisits = 1 << 20
)

type flattener struct {
	f      *File
	names  map[string]bool
	open   map[any]bool // the containers on the current path
	visits int
	bytes  int64 // what tensors may still take
}

func (fl *flattener) add(name string) error {
	if fl.names[name] {
		return fmt.Errorf("%w: two entries named %s", ErrFormat, name)
	}
	fl.names[name] = true
	return nil
}

func (fl *flattener) walk(v any, name string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: %s: nested more than %d deep", ErrFormat, name, maxDepth)
	}
	if fl.visits--; fl.visits < 0 {
		return fmt.Errorf("%w: more than %d values in the checkpoint", ErrFormat, maxVisits)
	}
	join := func(k string) string {
		if name == "" {
			return k
		}
		return name + "." + k
	}
	enter := func(c any) error {
		if fl.open[c] {
			return fmt.Errorf("%w: %s contains itself", ErrFormat, name)
		}
		fl.open[c] = true
		return nil
	}
	switch x := v.(type) {
	case *pyDict:
		if err := enter(x); err != nil {
			return err
		}
		defer delete(fl.open, x)
		for i, k := range x.keys {
			var ks string
			switch kk := k.(type) {
			case string:
				ks = kk
			case int64:
				ks = strconv.FormatInt(kk, 10)
			default:
				return fmt.Errorf("%w: %s: a dict key of type %s", ErrFormat, join("?"), typeName(k))
			}
			if err := fl.walk(x.vals[i], join(ks), depth+1); err != nil {
				return err
			}
		}
	case *pyList:
		if err := enter(x); err != nil {
			return err
		}
		defer delete(fl.open, x)
		for i, e := range x.items {
			if err := fl.walk(e, join(strconv.Itoa(i)), depth+1); err != nil {
				return err
			}
		}
	case pyTuple:
		for i, e := range x {
			if err := fl.walk(e, join(strconv.Itoa(i)), depth+1); err != nil {
				return err
			}
		}
	case *view:
		if err := fl.add(name); err != nil {
			return err
		}
		t, err := rebuild(x.st, x.off, x.size, x.stride, fl.bytes)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		fl.bytes -= int64(len(t.Data))
		t.Name = name
		fl.f.Tensors = append(fl.f.Tensors, *t)
	case int64, float64, string, bool:
		if err := fl.add(name); err != nil {
			return err
		}
		fl.f.Values[name] = x
	case pyNone:
		if err := fl.add(name); err != nil {
			return err
		}
		fl.f.Values[name] = nil
	case *big.Int:
		if err := fl.add(name); err != nil {
			return err
		}
		fl.f.Values[name] = x.String()
	case pyBytes:
		if err := fl.add(name); err != nil {
			return err
		}
		fl.f.Values[name] = []byte(x)
	default:
		return fmt.Errorf("%w: %s is a %s", ErrFormat, name, typeName(v))
	}
	return nil
}

// Names lists the tensor names in order.
func (f *File) Names() []string {
	out := make([]string, len(f.Tensors))
	for i, t := range f.Tensors {
		out[i] = t.Name
	}
	return out
}

// sortedKeys is used by tests and messages.
func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
