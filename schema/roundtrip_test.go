package schema

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var compressions = []string{"", "lz4", "zstd"}

func TestVersion(t *testing.T) {
	if Version() != "1.1" {
		t.Fatalf("Version() = %q", Version())
	}
	// A batch without a device is written as 1.0, byte for byte what a 1.0
	// writer wrote; one with a device as 1.1, and its device reads back.
	for _, dev := range []string{"", "cuda/fp32"} {
		b := fixedBatch(DegradationPDM)
		b.Header.Device = dev
		msg, err := Encode(b, EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(msg, DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := "1.0"
		if dev != "" {
			want = "1.1"
		}
		if !bytes.Contains(msg, []byte(MetaSchemaVersion)) || !bytes.Contains(msg, []byte(want)) {
			t.Errorf("device %q: the message does not say version %s", dev, want)
		}
		if got.Header != b.Header {
			t.Errorf("device %q: header read back as %+v, want %+v", dev, got.Header, b.Header)
		}
		if dev == "" && bytes.Contains(msg, []byte(MetaDevice)) {
			t.Errorf("a CPU batch carries %s", MetaDevice)
		}
	}
}

func TestHeaderDevice(t *testing.T) {
	h := fixedBatch(DegradationPDM).Header
	for _, d := range []string{"", "cuda/fp32", "cuda/bf16", "rocm/fp16-x"} {
		h.Device = d
		if err := h.Validate(); err != nil {
			t.Errorf("device %q: %v", d, err)
		}
	}
	for _, d := range []string{"cuda", "/fp32", "cuda/", "cuda/fp32/x", "CUDA/fp32", "cuda/fp 32", "cuda/" + strings.Repeat("x", 40)} {
		h.Device = d
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "device") {
			t.Errorf("device %q: got %v, want an error naming the device", d, err)
		}
	}
	a, b := fixedBatch(DegradationPDM).Header, fixedBatch(DegradationPDM).Header
	b.Device = "cuda/fp32"
	if !a.SameStream(b) || !b.SameStream(a) {
		t.Error("headers that differ only in device are not the same stream")
	}
	b.KernelSize += 2
	if a.SameStream(b) {
		t.Error("headers that differ in kernel size are the same stream")
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		rows, scale, hrH, hrW, k int
		deg                      string
	}{
		{1, 2, 8, 8, 0, DegradationBicubic},
		{1, 3, 7, 11, 1, DegradationGaussian},
		{3, 4, 9, 6, 3, DegradationPDM},
		{5, 2, 16, 16, 5, DegradationPDM},
		{8, 3, 33, 17, 0, DegradationBicubic},
		{17, 4, 32, 32, 21, DegradationPDM},
		{32, 4, 64, 48, 7, DegradationGaussian},
	}
	for _, c := range cases {
		for _, comp := range compressions {
			name := fmt.Sprintf("rows%d_x%d_%dx%d_k%d_%s_%s", c.rows, c.scale, c.hrH, c.hrW, c.k, c.deg, comp)
			t.Run(name, func(t *testing.T) {
				b := randomBatch(rng, c.rows, c.scale, c.hrH, c.hrW, c.k, c.deg)
				msg := mustEncode(t, b, comp)
				got, err := decodeT(t, msg, 0)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if d := diffBatch(b, got); d != "" {
					t.Fatal(d)
				}
				// Encode is deterministic and Decode does not alter the batch.
				if comp == "" && !bytes.Equal(msg, mustEncode(t, got, comp)) {
					t.Fatal("re-encoding the decoded batch gives different bytes")
				}
			})
		}
	}
}

// TestConcurrent runs Encode and Decode from several goroutines (run it
// with -race).
func TestConcurrent(t *testing.T) {
	b := randomBatch(rand.New(rand.NewPCG(3, 4)), 4, 4, 16, 16, 5, DegradationPDM)
	// Every goroutine also decodes this one message, which the batches
	// it gives may alias (run with -race): Decode only reads msg.
	shared := mustEncode(t, b, "")
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				msg, err := Encode(b, EncodeOptions{Compression: compressions[(g+i)%3]})
				if err != nil {
					errs <- err.Error()
					return
				}
				for _, m := range [][]byte{msg, shared} {
					got, err := Decode(m, DecodeOptions{})
					if err != nil {
						errs <- err.Error()
						return
					}
					if d := diffBatch(b, got); d != "" {
						errs <- d
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestDecodeOwnsMemory checks what a decoded batch shares with its message
// (see the Ownership section of the package doc): the strings and scalars
// never alias msg, and row slices are capacity-clipped, so appending to one
// clobbers neither the next row nor msg. (XRef, YRef and Kernel may alias
// msg; decode_zerocopy_test.go tests that.)
func TestDecodeOwnsMemory(t *testing.T) {
	b := fixedBatch(DegradationPDM)
	msg := mustEncode(t, b, "")
	got, err := decodeT(t, msg, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(msg)
	_ = append(got.Pairs[0].XRef, 1)
	_ = append(got.Pairs[0].YRef, 1)
	_ = append(got.Pairs[0].Kernel, 1)
	if !bytes.Equal(msg, before) {
		t.Fatal("appending to a decoded row wrote into msg")
	}
	if d := diffBatch(b, got); d != "" {
		t.Fatal(d)
	}
}

func TestArrowSchema(t *testing.T) {
	h := fixedBatch(DegradationPDM).Header
	sc := ArrowSchema(h)
	want := []string{"sample_id", "run_id", "producer_id", "batch_seq", "index", "seed", "weights_version", "weights_sha256",
		"source_image", "crop_x", "crop_y", "crop_w", "crop_h", "dihedral", "x_ref", "y_ref", "kernel", "noise_mean", "noise_std"}
	if sc.NumFields() != len(want) {
		t.Fatalf("%d fields, want %d", sc.NumFields(), len(want))
	}
	for i, n := range want {
		f := sc.Field(i)
		if f.Name != n {
			t.Errorf("field %d is %s, want %s", i, f.Name, n)
		}
		if f.Nullable != (n == "kernel") {
			t.Errorf("field %s nullable = %v", n, f.Nullable)
		}
	}
	for _, c := range []struct {
		i   int
		typ string
	}{
		{iXRef, "fixed_size_list<item: uint8>[192]"},
		{iYRef, "fixed_size_list<item: float32>[12]"},
		{iKernel, "fixed_size_list<item: float32>[9]"},
	} {
		if got := sc.Field(c.i).Type.String(); got != c.typ {
			t.Errorf("%s type %s, want %s", sc.Field(c.i).Name, got, c.typ)
		}
	}
	md := sc.Metadata()
	for k, v := range map[string]string{
		"pdmflow.schema_version": "1.0", "pdmflow.scale": "4", "pdmflow.hr_shape": "3,8,8", "pdmflow.lr_shape": "3,2,2",
		"pdmflow.kernel_size": "3", "pdmflow.degradation": "pdm", "pdmflow.x_ref": "uint8 CHW RGB 0..255",
		"pdmflow.y_ref": "float32 CHW RGB, unrounded",
	} {
		if i := md.FindKey(k); i < 0 || md.Values()[i] != v {
			t.Errorf("metadata %s missing or not %q", k, v)
		}
	}
	for _, h := range []Header{{}, {HRH: -5, HRW: 1 << 40, KernelSize: 1 << 20}} {
		_ = ArrowSchema(h) // must not panic
	}
	if k := ArrowSchema(fixedBatch(DegradationBicubic).Header).Field(iKernel).Type.String(); k != "fixed_size_list<item: float32>[1]" {
		t.Errorf("kernel type without kernels: %s", k)
	}
}

func TestDihedralSource(t *testing.T) {
	const h, w = 3, 5
	var crop [h][w]int
	for y := range crop {
		for x := range crop[y] {
			crop[y][x] = y*w + x
		}
	}
	for d := uint8(0); d < 8; d++ {
		// Apply the documented steps literally.
		img := make([][]int, h)
		for y := range img {
			img[y] = append([]int(nil), crop[y][:]...)
		}
		if d&1 != 0 {
			for _, row := range img {
				for i, j := 0, len(row)-1; i < j; i, j = i+1, j-1 {
					row[i], row[j] = row[j], row[i]
				}
			}
		}
		if d&2 != 0 {
			for i, j := 0, len(img)-1; i < j; i, j = i+1, j-1 {
				img[i], img[j] = img[j], img[i]
			}
		}
		if d&4 != 0 {
			tr := make([][]int, len(img[0]))
			for x := range tr {
				tr[x] = make([]int, len(img))
				for y := range img {
					tr[x][y] = img[y][x]
				}
			}
			img = tr
		}
		for r := range img {
			for c := range img[r] {
				y, x := DihedralSource(d, r, c, h, w)
				if crop[y][x] != img[r][c] {
					t.Fatalf("d=%d (%d,%d): DihedralSource gives crop(%d,%d)=%d, steps give %d", d, r, c, y, x, crop[y][x], img[r][c])
				}
			}
		}
	}
}

var goldens = []string{DegradationPDM, DegradationBicubic}

func goldenPath(deg string) string { return filepath.Join("testdata", "v1.0-"+deg+".arrows") }

func TestGolden(t *testing.T) {
	for _, deg := range goldens {
		t.Run(deg, func(t *testing.T) {
			b := fixedBatch(deg)
			enc := mustEncode(t, b, "")
			path := goldenPath(deg)
			if *update {
				if err := os.WriteFile(path, enc, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./schema -update to create it)", err)
			}
			got, err := decodeT(t, want, 0)
			if err != nil {
				t.Fatalf("Decode(%s): %v", path, err)
			}
			if d := diffBatch(b, got); d != "" {
				t.Fatalf("%s decodes to a different batch: %s", path, d)
			}
			if !bytes.Equal(enc, want) {
				t.Fatalf("Encode no longer reproduces %s (%d bytes, golden %d); if the change is intended and compatible, run go test ./schema -update",
					path, len(enc), len(want))
			}
		})
	}
}
