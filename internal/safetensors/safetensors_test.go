package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func sample() []Tensor {
	return []Tensor{
		FromFloat32s("a.weight", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		FromFloat64s("b", []int{}, []float64{3.5}),
		{Name: "c", DType: U8, Shape: []int{0}, Data: []byte{}},
		FromFloat32s("d", []int{1, 1, 1}, []float32{-7}),
	}
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	meta := map[string]string{"config": `{"scale":4}`}
	if err := Encode(&buf, meta, sample()); err != nil {
		t.Fatal(err)
	}
	if hl := binary.LittleEndian.Uint64(buf.Bytes()); (8+hl)%8 != 0 {
		t.Errorf("data starts at %d, not 8-byte aligned", 8+hl)
	}
	f, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["config"] != meta["config"] {
		t.Errorf("metadata %v", f.Metadata)
	}
	if len(f.Tensors) != 4 {
		t.Fatalf("%d tensors", len(f.Tensors))
	}
	a, _ := f.Get("a.weight")
	v, err := a.Float32s()
	if err != nil || len(v) != 6 || v[5] != 6 || a.Shape[0] != 2 || a.Shape[1] != 3 {
		t.Errorf("a.weight = %v %v %v", v, a.Shape, err)
	}
	b, _ := f.Get("b")
	if w, err := b.Float64s(); err != nil || w[0] != 3.5 || len(b.Shape) != 0 {
		t.Errorf("b = %v %v", w, err)
	}
	if _, err := b.Float32s(); err == nil {
		t.Error("F64 read as F32")
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, ts := range [][]Tensor{
		{{Name: "x", DType: "BF16", Shape: []int{1}, Data: []byte{0, 0}}},
		{{Name: "x", DType: F32, Shape: []int{2}, Data: []byte{0, 0, 0, 0}}},
		{FromFloat32s("x", []int{1}, []float32{1}), FromFloat32s("x", []int{1}, []float32{1})},
		{FromFloat32s("__metadata__", []int{1}, []float32{1})},
	} {
		if err := Encode(&bytes.Buffer{}, nil, ts); err == nil {
			t.Errorf("accepted %v", ts)
		}
	}
}

func withHeader(h string, data []byte) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, uint64(len(h)))
	return append(append(b, h...), data...)
}

func TestDecodeRejects(t *testing.T) {
	cases := map[string][]byte{
		"empty":           {},
		"short":           {1, 2, 3},
		"huge header":     {255, 255, 255, 255, 255, 255, 255, 255},
		"header past end": withHeader("{}", nil)[:9],
		"not json":        withHeader("{x", nil),
		"bad dtype":       withHeader(`{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)),
		"size mismatch":   withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)),
		"past data":       withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 2)),
		"gap":             withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)),
		"overlap":         withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)),
		"trailing":        withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 6)),
		"negative shape":  withHeader(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, nil),
		"overflow shape":  withHeader(`{"a":{"dtype":"F64","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]}}`, nil),
		"bad metadata":    withHeader(`{"__metadata__":{"a":1}}`, nil),
		"empty name":      withHeader(`{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)),
		"unknown field":   withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, make([]byte, 4)),
	}
	for name, b := range cases {
		if _, err := Decode(b); err == nil || !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	if err := Encode(&buf, map[string]string{"k": "v"}, sample()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		file, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode again and decode to the same tensors.
		var out bytes.Buffer
		if err := Encode(&out, file.Metadata, file.Tensors); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := Decode(out.Bytes())
		if err != nil || len(again.Tensors) != len(file.Tensors) {
			t.Fatalf("re-decode: %v", err)
		}
		for i := range again.Tensors {
			if !bytes.Equal(again.Tensors[i].Data, file.Tensors[i].Data) || again.Tensors[i].Name != file.Tensors[i].Name {
				t.Fatalf("tensor %d changed", i)
			}
		}
	})
}
