package schema

import (
	"errors"
	"os"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// fuzzMax is the message limit FuzzDecode decodes with; seeds are far below
// it, so inputs above it test the limit.
const fuzzMax = 1 << 16

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic or hang,
// must free everything it allocates, must respect the size limit, and
// whatever it accepts must survive Encode and Decode unchanged.
func FuzzDecode(f *testing.F) {
	for _, deg := range goldens {
		if msg, err := os.ReadFile(goldenPath(deg)); err == nil {
			f.Add(msg)
		}
		for _, comp := range compressions {
			msg, err := Encode(fixedBatch(deg), EncodeOptions{Compression: comp})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(msg)
			f.Add(msg[:len(msg)/2])
			for _, i := range []int{8, 100, len(msg) / 3, len(msg) - 20} {
				m := append([]byte(nil), msg...)
				m[i] ^= 0xff
				f.Add(m)
			}
		}
	}
	f.Add([]byte{})
	f.Add(eos[:])
	f.Fuzz(func(t *testing.T, msg []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		b, err := Decode(msg, DecodeOptions{Allocator: mem, MaxMessageBytes: fuzzMax})
		mem.AssertSize(t, 0)
		if len(msg) > fuzzMax && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%d-byte message over the %d limit: err = %v", len(msg), fuzzMax, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if b != nil {
				t.Fatal("batch returned with an error")
			}
			return
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("Decode accepted an invalid batch: %v", err)
		}
		enc, err := Encode(b, EncodeOptions{Allocator: mem})
		mem.AssertSize(t, 0)
		if err != nil {
			t.Fatalf("Encode of a decoded batch: %v", err)
		}
		b2, err := Decode(enc, DecodeOptions{Allocator: mem, MaxMessageBytes: 2 * fuzzMax})
		mem.AssertSize(t, 0)
		if err != nil {
			t.Fatalf("Decode of a re-encoded batch: %v", err)
		}
		if d := diffBatch(b, b2); d != "" {
			t.Fatalf("re-encoded batch differs: %s", d)
		}
	})
}
