package schema

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"
)

// The direct layout must give exactly arrow-go's bytes, for every shape of
// batch: rows from 1 to a few hundred (bitmaps of partial bytes), every
// scale, odd sizes, kernels or none, empty and non-empty weights strings.
func TestMessageMatchesArrowWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := 0; trial < 60; trial++ {
		rows := 1 + rng.IntN(40)
		if trial%10 == 0 {
			rows = 100 + rng.IntN(200)
		}
		scale := 2 + rng.IntN(3)
		hrH, hrW := 1+rng.IntN(24), 1+rng.IntN(24)
		k := []int{0, 1, 3, 5, 21}[rng.IntN(5)]
		deg := []string{DegradationPDM, DegradationBicubic, DegradationGaussian}[rng.IntN(3)]
		b := randomBatch(rng, rows, scale, hrH, hrW, k, deg)
		name := fmt.Sprintf("rows%d_x%d_%dx%d_k%d_%s", rows, scale, hrH, hrW, k, deg)
		want, err := encodeArrow(b, EncodeOptions{}, nil)
		if err != nil {
			t.Fatalf("%s: encodeArrow: %v", name, err)
		}
		got, err := Encode(b, EncodeOptions{})
		if err != nil {
			t.Fatalf("%s: Encode: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			at := 0
			for at < min(len(got), len(want)) && got[at] == want[at] {
				at++
			}
			t.Fatalf("%s: %d bytes, arrow-go's writer %d; first difference at byte %d", name, len(got), len(want), at)
		}
	}
}

// Writing x_ref and y_ref in place gives the same message as handing them
// over, and leaves the batch's pairs pointing into the message.
func TestMessageInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, k := range []int{0, 5} {
		b := randomBatch(rng, 9, 4, 16, 12, k, DegradationPDM)
		want := mustEncode(t, b, "")
		c := &Batch{Header: b.Header, Pairs: append([]Pair(nil), b.Pairs...)}
		for i := range c.Pairs {
			c.Pairs[i].XRef, c.Pairs[i].YRef, c.Pairs[i].Kernel = nil, nil, nil
			c.Pairs[i].NoiseMean, c.Pairs[i].Seed = 0, 0
		}
		m, err := NewMessage(c, bytes.Repeat([]byte{0x5a}, len(want))) // old bytes everywhere
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.Pairs {
			// Scalars may be set after the layout, kernels written in place.
			c.Pairs[i].NoiseMean, c.Pairs[i].Seed = b.Pairs[i].NoiseMean, b.Pairs[i].Seed
			if kk := m.Kernel(i); k == 0 && kk != nil || k > 0 && len(kk) != k*k {
				t.Fatalf("k=%d: Kernel(%d) has %d values", k, i, len(kk))
			} else {
				copy(kk, b.Pairs[i].Kernel)
			}
			copy(m.XRef(i), b.Pairs[i].XRef)
			y := m.YRef(i)
			if uintptr(unsafe.Pointer(&y[0]))%4 != 0 {
				t.Fatalf("row %d: y_ref is not 4-byte aligned", i)
			}
			copy(y, b.Pairs[i].YRef)
		}
		got, err := m.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("k=%d: in-place message differs from Encode's", k)
		}
		if &c.Pairs[3].XRef[0] != &m.XRef(3)[0] || &c.Pairs[3].YRef[0] != &m.YRef(3)[0] {
			t.Fatal("the batch's x_ref and y_ref do not point into the message")
		}
		if _, err := m.Bytes(); err == nil {
			t.Fatal("a second Bytes succeeded")
		}
		d, err := decodeT(t, got, 0)
		if err != nil {
			t.Fatal(err)
		}
		if diff := diffBatch(b, d); diff != "" {
			t.Fatal(diff)
		}
	}
}

// What NewMessage cannot lay out, and what Bytes finds in values written in
// place, are errors naming the row and the column.
func TestMessageErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	fresh := func() *Batch { return randomBatch(rng, 4, 2, 8, 8, 3, DegradationPDM) }

	bytesErr := func(b *Batch) error {
		t.Helper()
		m, err := NewMessage(b, nil)
		if err != nil {
			t.Fatalf("NewMessage: %v", err)
		}
		_, err = m.Bytes()
		return err
	}
	b := fresh()
	b.Pairs[2].XRef = b.Pairs[2].XRef[1:]
	wantErr(t, bytesErr(b), ErrInvalid, "row 2", "x_ref")

	b = fresh()
	b.Pairs[1].Kernel = b.Pairs[1].Kernel[:4]
	wantErr(t, bytesErr(b), ErrInvalid, "row 1", "kernel")

	b = fresh()
	b.Header.KernelSize = 0
	b.Header.Degradation = DegradationBicubic
	wantErr(t, bytesErr(b), ErrInvalid, "row 0", "kernel")

	b = fresh()
	m, err := NewMessage(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Pairs[1].SourceImage += "x"
	if _, err := m.Bytes(); err == nil || !strings.Contains(err.Error(), "source_image changed") {
		t.Fatalf("a string grown after NewMessage: %v", err)
	}

	b = fresh()
	b.Header.LRH++
	_, err = NewMessage(b, nil)
	wantErr(t, err, ErrInvalid, "lr_shape")

	b = fresh()
	b.Pairs[3].YRef = nil
	m, err = NewMessage(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.YRef(3)[5] = float32(math.NaN())
	_, err = m.Bytes()
	wantErr(t, err, ErrInvalid, "row 3", "y_ref[5]")

	// Encode does not fill missing values with zeros.
	b = fresh()
	b.Pairs[0].XRef = nil
	_, err = Encode(b, EncodeOptions{})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Encode of a batch without x_ref: %v, want ErrInvalid", err)
	}
	if b.Pairs[0].XRef != nil {
		t.Fatal("Encode changed the caller's batch")
	}
}

// A reused buffer full of old bytes gives the same message as a fresh one:
// every byte that the caller does not write in place is written.
func TestMessageReusedBuffer(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	for _, k := range []int{0, 3} {
		for _, rows := range []int{1, 7, 9, 64} {
			b := randomBatch(rng, rows, 3, 13, 11, k, DegradationGaussian)
			want := mustEncode(t, b, "")
			buf := bytes.Repeat([]byte{0xa5}, len(want)+100)
			m, err := NewMessage(b, buf)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if &got[0] != &buf[0] {
				t.Fatal("the buffer was not reused")
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("k=%d rows=%d: the message in a reused buffer differs from a fresh one", k, rows)
			}
		}
	}
}

// firstNonFinite finds the first NaN or infinity of either sign, and lets
// the largest finite values and -0 through.
func TestFirstNonFinite(t *testing.T) {
	big := math.Float32frombits(0x7f7fffff)
	v := []float32{0, float32(math.Copysign(0, -1)), big, -big, math.SmallestNonzeroFloat32, 1}
	if j := firstNonFinite(v); j != -1 {
		t.Fatalf("finite values: got index %d", j)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0xffc00001)} {
		w := append(append([]float32(nil), v...), 2, bad, 3, bad)
		if j := firstNonFinite(w); j != len(v)+1 {
			t.Fatalf("%v at %d: got %d", bad, len(v)+1, j)
		}
	}
	if firstNonFinite(nil) != -1 {
		t.Fatal("empty slice")
	}
}
