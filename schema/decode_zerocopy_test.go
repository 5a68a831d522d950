package schema

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// placeAt returns a copy of msg at offset off (0..7 past an 8-byte aligned
// address) inside a larger buffer whose other bytes are garbage, so that
// reading outside msg shows.
func placeAt(msg []byte, off int) []byte {
	w := make([]uint64, (len(msg)+off+64+7)/8)
	buf := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), 8*len(w))
	for i := range buf {
		buf[i] = 0xA5
	}
	return buf[off : off+copy(buf[off:], msg) : off+len(msg)]
}

// within reports whether b lies inside region, by address.
func within(b, region []byte) bool {
	if len(b) == 0 || len(region) == 0 {
		return false
	}
	b0, r0 := addr(b), addr(region)
	return b0 >= r0 && b0+uintptr(len(b)) <= r0+uintptr(len(region))
}

func f32bytes(v []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// poisonAllocator scribbles over every buffer it frees, so that a batch
// still pointing into Arrow memory after Decode (say a decompressed
// column) reads garbage.
type poisonAllocator struct{ memory.Allocator }

func (p poisonAllocator) Free(b []byte) {
	for i := range b {
		b[i] = 0x5A
	}
	p.Allocator.Free(b)
}

func (p poisonAllocator) Reallocate(size int, b []byte) []byte {
	nb := p.Allocator.Allocate(size)
	copy(nb, b)
	p.Free(b)
	return nb
}

// decodeBoth decodes msg with the copying path and with Decode, each with a
// checked allocator (and, when strict, no sweep allowed: only inputs that
// make arrow-go panic may need one), and fails the test unless both give
// the same batch, or errors with the same text.
func decodeBoth(t *testing.T, msg []byte, max int, strict bool) (zc, cp *Batch, err error) {
	t.Helper()
	run := func(copyAll bool) (*Batch, error) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		var b *Batch
		var err error
		f := func() {
			b, err = decodeMsg(msg, DecodeOptions{Allocator: poisonAllocator{mem}, MaxMessageBytes: max}, copyAll)
		}
		if strict {
			noSweep(t, f)
		} else {
			f()
		}
		mem.AssertSize(t, 0)
		return b, err
	}
	before := bytes.Clone(msg)
	cp, cerr := run(true)
	zc, zerr := run(false)
	if !bytes.Equal(msg, before) {
		t.Fatal("Decode modified its input")
	}
	if (cerr == nil) != (zerr == nil) || (cerr != nil && cerr.Error() != zerr.Error()) {
		t.Fatalf("copying path: %v\nzero-copy path: %v", cerr, zerr)
	}
	if cerr != nil {
		if zc != nil || cp != nil {
			t.Fatal("batch returned with an error")
		}
		return nil, nil, cerr
	}
	if d := diffBatch(cp, zc); d != "" {
		t.Fatalf("zero-copy batch differs from the copying path's: %s", d)
	}
	for i := range zc.Pairs {
		p, q := &zc.Pairs[i], &cp.Pairs[i]
		if cap(p.XRef) != len(p.XRef) || cap(p.YRef) != len(p.YRef) || cap(p.Kernel) != len(p.Kernel) {
			t.Fatalf("row %d: capacities %d/%d/%d for lengths %d/%d/%d", i, cap(p.XRef), cap(p.YRef), cap(p.Kernel), len(p.XRef), len(p.YRef), len(p.Kernel))
		}
		if (p.Kernel == nil) != (q.Kernel == nil) {
			t.Fatalf("row %d: kernel nil %v, copying path %v", i, p.Kernel == nil, q.Kernel == nil)
		}
	}
	return zc, cp, nil
}

// rawStream writes b with arrow-go directly (no validation), with extra
// writer options.
func rawStream(t *testing.T, b *Batch, opts ...ipc.Option) []byte {
	t.Helper()
	mem := checkedMem(t)
	rec, err := buildRecord(b, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, append([]ipc.Option{ipc.WithSchema(rec.Schema()), ipc.WithAllocator(mem)}, opts...)...)
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecodeZeroCopyDifferential decodes random batches, compressed or
// not, with and without kernels, with null kernel rows, placed at every
// offset 0..7, with both paths, and compares them field by field (and to
// the batch encoded). It also checks what aliases msg.
func TestDecodeZeroCopyDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	variants := []string{"", "lz4", "zstd", "lz4-stored", "zstd-stored"}
	for trial := 0; trial < 40; trial++ {
		rows := 1 + rng.IntN(9)
		scale := 2 + rng.IntN(3)
		hrH, hrW := 1+rng.IntN(40), 1+rng.IntN(40)
		k := []int{0, 0, 1, 3, 5, 7}[rng.IntN(6)]
		deg := []string{DegradationPDM, DegradationBicubic, DegradationGaussian}[rng.IntN(3)]
		b := randomBatch(rng, rows, scale, hrH, hrW, k, deg)
		nullRow := -1
		if k > 0 && trial%4 == 3 {
			// A null kernel row where the header says there are kernels:
			// both paths must refuse it the same way.
			nullRow = rng.IntN(rows)
			b.Pairs[nullRow].Kernel = nil
		}
		for _, v := range variants {
			var msg []byte
			switch v {
			case "":
				msg = rawStream(t, b)
			case "lz4", "zstd":
				msg = rawStream(t, b, codecOpt(v))
			default: // compressed message whose buffers are stored uncompressed (length prefix -1)
				msg = rawStream(t, b, codecOpt(v[:len(v)-len("-stored")]), ipc.WithMinSpaceSavings(1))
			}
			if nullRow < 0 && v == "" && !bytes.Equal(msg, mustEncode(t, b, "")) {
				t.Fatal("rawStream and Encode disagree")
			}
			for off := 0; off < 8; off++ {
				name := fmt.Sprintf("trial%d_rows%d_x%d_%dx%d_k%d_%s_off%d", trial, rows, scale, hrH, hrW, k, v, off)
				m := placeAt(msg, off)
				zc, _, err := decodeBoth(t, m, 0, true)
				if nullRow >= 0 {
					if err == nil {
						t.Fatalf("%s: null kernel row %d accepted", name, nullRow)
					}
					wantErr(t, err, ErrInvalid, ColKernel)
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if d := diffBatch(b, zc); d != "" {
					t.Fatalf("%s: %s", name, d)
				}
				// Where the values lie: in msg only for a stored body at an
				// aligned offset; never in msg otherwise.
				wantAlias := off == 0 && (v == "" || v == "lz4-stored" || v == "zstd-stored")
				for r, p := range zc.Pairs {
					cols := map[string][]byte{"x_ref": p.XRef, "y_ref": f32bytes(p.YRef), "kernel": f32bytes(p.Kernel)}
					for c, got := range cols {
						if len(got) == 0 {
							continue
						}
						if within(got, m) != wantAlias {
							t.Fatalf("%s: row %d: %s aliases msg: %v, want %v", name, r, c, within(got, m), wantAlias)
						}
					}
					if addr(f32bytes(p.YRef))%4 != 0 || (len(p.Kernel) > 0 && addr(f32bytes(p.Kernel))%4 != 0) {
						t.Fatalf("%s: row %d: misaligned float32 slice", name, r)
					}
				}
			}
		}
	}
}

func codecOpt(name string) ipc.Option {
	if name == "lz4" {
		return ipc.WithLZ4()
	}
	return ipc.WithZstd()
}

// TestDecodeAliasesMsg checks the ownership contract both ways: an
// aligned uncompressed message is read in place (changing msg changes the
// batch), a copied one (compressed, or at an odd offset) is not.
func TestDecodeAliasesMsg(t *testing.T) {
	b := fixedBatch(DegradationPDM)
	for _, c := range []struct {
		comp  string
		off   int
		alias bool
	}{
		{"", 0, true},
		{"", 3, false},
		{"", 4, false},
		{"lz4", 0, false},
		{"zstd", 0, false},
	} {
		t.Run(fmt.Sprintf("%s_off%d", c.comp, c.off), func(t *testing.T) {
			m := placeAt(mustEncode(t, b, c.comp), c.off)
			got, err := decodeT(t, m, 0)
			if err != nil {
				t.Fatal(err)
			}
			for r, p := range got.Pairs {
				for name, s := range map[string][]byte{"x_ref": p.XRef, "y_ref": f32bytes(p.YRef), "kernel": f32bytes(p.Kernel)} {
					if within(s, m) != c.alias {
						t.Fatalf("row %d: %s aliases msg: %v, want %v", r, name, !c.alias, c.alias)
					}
				}
			}
			// Appending to a row never writes into msg or the next row.
			before := bytes.Clone(m)
			_ = append(got.Pairs[0].XRef, 1)
			_ = append(got.Pairs[0].YRef, 1)
			_ = append(got.Pairs[0].Kernel, 1)
			if !bytes.Equal(m, before) {
				t.Fatal("appending to a decoded row wrote into msg")
			}
			if d := diffBatch(b, got); d != "" {
				t.Fatal(d)
			}
			// Scribble over msg: an aliasing batch sees it, a copied one does not.
			clear(m)
			d := diffBatch(b, got)
			if c.alias && d == "" {
				t.Fatal("clearing msg did not change a batch that aliases it")
			}
			if !c.alias && d != "" {
				t.Fatalf("clearing msg changed a batch that does not alias it: %s", d)
			}
			if got.Pairs[0].SampleID != b.Pairs[0].SampleID || got.Header != b.Header {
				t.Fatal("strings or header alias msg")
			}
		})
	}
}

// TestDecodeZeroCopyExtraColumns: a newer minor's extra columns come after
// the known ones; the known ones are still read in place.
func TestDecodeZeroCopyExtraColumns(t *testing.T) {
	b := fixedBatch(DegradationBicubic)
	msg := extraColumnMessage(t, b, "1.3")
	for off := 0; off < 8; off++ {
		m := placeAt(msg, off)
		got, _, err := decodeBoth(t, m, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffBatch(b, got); d != "" {
			t.Fatal(d)
		}
		if within(got.Pairs[0].XRef, m) != (off == 0) {
			t.Fatalf("offset %d: x_ref aliases msg: %v", off, off != 0)
		}
	}
}

// TestView checks view's range and alignment tests at their edges.
func TestView(t *testing.T) {
	w := make([]uint64, 8)
	region := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), 64)
	outside := make([]byte, 64)
	for _, c := range []struct {
		name   string
		b      []byte
		u8, fl bool
	}{
		{"whole", region, true, true},
		{"inner", region[8:16], true, true},
		{"end", region[60:64], true, true},
		{"odd", region[1:5], true, false},
		{"half-aligned", region[2:6], true, false},
		{"past the end", region[60:64:64][:4], true, true},
		{"outside", outside[:8], false, false},
		{"empty", region[:0], false, false},
	} {
		if _, ok := view[uint8](region, c.b); ok != c.u8 {
			t.Errorf("%s: view[uint8] ok=%v", c.name, ok)
		}
		if v, ok := view[float32](region, c.b); ok != c.fl {
			t.Errorf("%s: view[float32] ok=%v", c.name, ok)
		} else if ok && (len(v) != len(c.b)/4 || cap(v) != len(v) || !within(f32bytes(v), region)) {
			t.Errorf("%s: view[float32] len %d cap %d", c.name, len(v), cap(v))
		}
	}
	// A slice that starts inside region and runs past it.
	long := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), 64)
	if _, ok := view[uint8](long[:32], long[16:48]); ok {
		t.Error("a slice running past the region was viewed")
	}
	if _, ok := view[uint8](long[16:48], long[8:24]); ok {
		t.Error("a slice starting before the region was viewed")
	}
	if _, ok := view[float32](region, region[0:6]); ok {
		t.Error("a length that is not a multiple of 4 was viewed as float32")
	}
}

// FuzzDecodeZeroCopy: the in-place path must give exactly what the copying
// path gives (same error text, or the same batch), at any offset, and
// never modify msg. The first byte of the input picks the offset.
func FuzzDecodeZeroCopy(f *testing.F) {
	for _, deg := range goldens {
		if msg, err := os.ReadFile(goldenPath(deg)); err == nil {
			f.Add(append([]byte{0}, msg...))
		}
		for i, comp := range compressions {
			msg, err := Encode(fixedBatch(deg), EncodeOptions{Compression: comp})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(append([]byte{byte(i)}, msg...))
			f.Add(append([]byte{byte(i + 4)}, msg[:len(msg)/2]...))
			for _, j := range []int{8, 100, len(msg) / 3, len(msg) - 20} {
				m := append([]byte{byte(j)}, msg...)
				m[1+j] ^= 0xff
				f.Add(m)
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		msg := placeAt(in[1:], int(in[0]%8))
		zc, _, err := decodeBoth(t, msg, fuzzMax, false)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if err := zc.Validate(); err != nil {
			t.Fatalf("Decode accepted an invalid batch: %v", err)
		}
	})
}
