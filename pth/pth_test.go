package pth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type expectedFile struct {
	Tensors []struct {
		Name   string    `json:"name"`
		DType  string    `json:"dtype"`
		Shape  []int     `json:"shape"`
		Values []float64 `json:"values"`
	} `json:"tensors"`
	Values map[string]any `json:"values"`
}

// decodeValues reads a tensor's raw bytes as float64 by its dtype,
// independently of Tensor.Float32s.
func decodeValues(t *testing.T, ts Tensor) []float64 {
	t.Helper()
	es := elemSizes[ts.DType]
	n := len(ts.Data) / es
	out := make([]float64, n)
	for i := range out {
		b := ts.Data[i*es:]
		switch ts.DType {
		case "F32":
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		case "F64":
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b))
		case "F16":
			// binary16 by its definition: (-1)^s 2^(e-15) (1 + f/1024).
			h := binary.LittleEndian.Uint16(b)
			s, e, f := h>>15, int(h>>10&0x1f), float64(h&0x3ff)
			switch {
			case e == 31:
				out[i] = math.Inf(1)
			case e == 0:
				out[i] = math.Ldexp(f/1024, -14)
			default:
				out[i] = math.Ldexp(1+f/1024, e-15)
			}
			if s == 1 {
				out[i] = -out[i]
			}
		case "BF16":
			out[i] = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16))
		case "I64":
			out[i] = float64(int64(binary.LittleEndian.Uint64(b)))
		case "I8":
			out[i] = float64(int8(b[0]))
		case "BOOL", "U8":
			out[i] = float64(b[0])
		default:
			t.Fatalf("%s: dtype %s", ts.Name, ts.DType)
		}
	}
	return out
}

// TestFixtures: checkpoints torch.save wrote (make_fixtures.py) in the zip
// format with pickle protocols 2 and 4 and in the legacy format give
// exactly PyTorch's tensors (names in order, dtypes, shapes, values),
// views of a shared storage included, and the plain values.
func TestFixtures(t *testing.T) {
	raw, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var want expectedFile
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"zip.pth", "proto4.pth", "legacy.pth"} {
		t.Run(name, func(t *testing.T) {
			f, err := ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			wantFormat := "zip"
			if name == "legacy.pth" {
				wantFormat = "legacy"
			}
			if f.Format != wantFormat {
				t.Errorf("format %q, want %q", f.Format, wantFormat)
			}
			if len(f.Tensors) != len(want.Tensors) {
				t.Fatalf("%d tensors %v, want %d", len(f.Tensors), f.Names(), len(want.Tensors))
			}
			for i, w := range want.Tensors {
				g := f.Tensors[i]
				if g.Name != w.Name || g.DType != w.DType || !reflect.DeepEqual(append([]int{}, g.Shape...), append([]int{}, w.Shape...)) {
					t.Errorf("tensor %d: %s %s %v, want %s %s %v", i, g.Name, g.DType, g.Shape, w.Name, w.DType, w.Shape)
					continue
				}
				got := decodeValues(t, g)
				if !reflect.DeepEqual(got, w.Values) && !(len(got) == 0 && len(w.Values) == 0) {
					t.Errorf("%s: values %v, want %v", g.Name, got, w.Values)
				}
			}
			for k, v := range want.Values {
				gv, ok := f.Values[k]
				if !ok {
					t.Errorf("value %s missing (have %v)", k, sortedKeys(f.Values))
					continue
				}
				if n, isInt := gv.(int64); isInt {
					gv = float64(n)
				}
				if !reflect.DeepEqual(gv, v) {
					t.Errorf("value %s = %#v, want %#v", k, gv, v)
				}
			}
		})
	}
}

// TestFloat32s: half and bfloat16 convert exactly (against the definition
// of binary16 in decodeValues), float64 rounds to nearest; integers are
// refused.
func TestFloat32s(t *testing.T) {
	f, err := ReadFile("testdata/zip.pth")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"f16", "bf16", "f64", "base", "transposed"} {
		ts, ok := f.Get(name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		got, err := ts.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		want := decodeValues(t, *ts)
		for i := range want {
			if got[i] != float32(want[i]) {
				t.Errorf("%s[%d] = %g, want %g", name, i, got[i], float32(want[i]))
			}
		}
	}
	ts, _ := f.Get("net.1.num_batches_tracked")
	if _, err := ts.Float32s(); err == nil || !strings.Contains(err.Error(), "I64") {
		t.Errorf("Float32s of an int64 tensor: %v", err)
	}
	// Subnormal, negative and infinite halves against hand values.
	for h, want := range map[uint16]float32{0x0001: 5.960464477539063e-08, 0x8000: float32(math.Copysign(0, -1)), 0x3c00: 1, 0xc000: -2, 0x7c00: float32(math.Inf(1)), 0x7bff: 65504} {
		if got := halfToFloat(h); got != want || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("half 0x%04x = %g, want %g", h, got, want)
		}
	}
}

// TestEvilRefused: a checkpoint whose pickle calls os.system is refused at
// the GLOBAL opcode, with an error naming the global; nothing runs.
func TestEvilRefused(t *testing.T) {
	_, err := ReadFile("testdata/evil.pth")
	if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "global posix.system is not allowed") {
		t.Fatalf("err = %v", err)
	}
}

// pickle assembly for hand-made checkpoints.
type pk struct{ bytes.Buffer }

func (p *pk) op(b ...byte) *pk { p.Write(b); return p }
func (p *pk) str(s string) *pk {
	p.WriteByte('X')
	binary.Write(&p.Buffer, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}
func (p *pk) int(n int32) *pk {
	p.WriteByte('J')
	binary.Write(&p.Buffer, binary.LittleEndian, n)
	return p
}
func (p *pk) global(m, n string) *pk { p.WriteString("c" + m + "\n" + n + "\n"); return p }
func (p *pk) tuple(ns ...int32) *pk {
	p.op('(')
	for _, n := range ns {
		p.int(n)
	}
	return p.op('t')
}

// tensor appends _rebuild_tensor_v2 of storage key (FloatStorage of numel
// elements) at offset with size and stride.
func (p *pk) tensor(key string, numel int32, off int32, size, stride []int32) *pk {
	p.global("torch._utils", "_rebuild_tensor_v2").op('(')
	p.op('(').str("storage").global("torch", "FloatStorage").str(key).str("cpu").int(numel).op('t', 'Q')
	p.int(off).tuple(size...).tuple(stride...).op(0x89)
	p.global("collections", "OrderedDict").op(')', 'R')
	return p.op('t', 'R')
}

// zipCheckpoint builds a zip checkpoint of a pickle and storages (key to
// float32 values).
func zipCheckpoint(t *testing.T, pkl []byte, storages map[string][]float32, extra map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	add := func(name string, b []byte) {
		w, err := z.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	add("ck/data.pkl", pkl)
	for k, v := range storages {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		add("ck/data/"+k, b)
	}
	for k, v := range extra {
		add("ck/"+k, []byte(v))
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// oneTensor is a pickle of {"w": tensor}.
func oneTensor(numel, off int32, size, stride []int32) []byte {
	p := &pk{}
	p.op(0x80, 2, '}').str("w").tensor("0", numel, off, size, stride).op('s', '.')
	return p.Bytes()
}

// doubling is a pickle of {"x": l_n} where l_0 = [] and l_i = [l_(i-1), l_(i-1)].
func doubling(n int) []byte {
	p := &pk{}
	p.op(0x80, 2, '}').str("x").op(']')
	for i := 0; i < n; i++ {
		p.op('q', byte(i), '0', ']', 'h', byte(i), 'a', 'h', byte(i), 'a')
	}
	return p.op('s', '.').Bytes()
}

// TestHandMade: hand-assembled checkpoints: a valid strided view; views
// outside their storage, expanded views, storages of the wrong size or
// missing, a big-endian byte order, other globals, a dict that contains
// itself, and truncations are refused with errors that say what is wrong.
func TestHandMade(t *testing.T) {
	six := map[string][]float32{"0": {0, 1, 2, 3, 4, 5}}
	// A 2x2 view at offset 1 with strides (3, 2): elements 1, 3, 4, 6 -> 6
	// is outside; (3, 1): 1, 2, 4, 5.
	b := zipCheckpoint(t, oneTensor(6, 1, []int32{2, 2}, []int32{3, 1}), six, nil)
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := f.Tensors[0].Float32s()
	if !reflect.DeepEqual(v, []float32{1, 2, 4, 5}) || !reflect.DeepEqual(f.Tensors[0].Shape, []int{2, 2}) {
		t.Errorf("view = %v %v", v, f.Tensors[0].Shape)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"outside", zipCheckpoint(t, oneTensor(6, 1, []int32{2, 2}, []int32{3, 2}), six, nil), "outside a storage of 6"},
		{"offset", zipCheckpoint(t, oneTensor(6, 7, []int32{1}, []int32{1}), six, nil), "storage offset 7"},
		{"expanded", zipCheckpoint(t, oneTensor(6, 0, []int32{4, 6}, []int32{0, 1}), six, nil), "expanded view"},
		{"negative", zipCheckpoint(t, oneTensor(6, 0, []int32{-1}, []int32{1}), six, nil), "size [-1]"},
		{"huge stride", zipCheckpoint(t, oneTensor(6, 0, []int32{2}, []int32{math.MaxInt32}), six, nil), "outside a storage"},
		{"short storage", zipCheckpoint(t, oneTensor(7, 0, []int32{6}, []int32{1}), six, nil), "storage 0 has 24 bytes, 7 F32 elements need 28"},
		{"missing storage", zipCheckpoint(t, oneTensor(6, 0, []int32{6}, []int32{1}), nil, nil), "no zip entry ck/data/0"},
		{"big endian", zipCheckpoint(t, oneTensor(6, 0, []int32{6}, []int32{1}), six, map[string]string{"byteorder": "big"}), `byte order "big"`},
		{"builtins.eval", zipCheckpoint(t, (&pk{}).op(0x80, 2).global("builtins", "eval").op('.').Bytes(), nil, nil), "global builtins.eval is not allowed"},
		{"call a storage type", zipCheckpoint(t, (&pk{}).op(0x80, 2).global("torch", "FloatStorage").op(')', 'R', '.').Bytes(), nil, nil), "torch.FloatStorage cannot be called"},
		{"self", zipCheckpoint(t, (&pk{}).op(0x80, 2, '}', 'q', 0).str("me").op('h', 0, 's', '.').Bytes(), nil, nil), "me contains itself"},
		// l0 = [], l1 = [l0, l0], ... l30 = [l29, l29]: 2^30 paths, within the depth limit.
		{"doubling", zipCheckpoint(t, doubling(30), nil, nil), "more than 1048576 values"},
		{"not a dict", zipCheckpoint(t, (&pk{}).op(0x80, 2, ']', '.').Bytes(), nil, nil), "holds a list"},
		{"no stop", zipCheckpoint(t, (&pk{}).op(0x80, 2, '}').Bytes(), nil, nil), "no STOP"},
		{"underflow", zipCheckpoint(t, (&pk{}).op(0x80, 2, 's', '.').Bytes(), nil, nil), "stack underflow"},
		{"inst", zipCheckpoint(t, (&pk{}).op(0x80, 2, 'i').Bytes(), nil, nil), "opcode 0x69"},
		{"empty", nil, "neither a zip"},
	}
	for _, c := range cases {
		_, err := Decode(c.data)
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one containing %q", c.name, err, c.want)
		}
	}
	// Every truncation of a real checkpoint is an error, not a panic.
	for _, name := range []string{"zip.pth", "legacy.pth"} {
		full, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(full); n += 7 {
			if _, err := Decode(full[:n]); err == nil {
				t.Errorf("%s cut to %d bytes decoded", name, n)
			}
		}
	}
}
