package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// resizeU8Shapes cover every pass order of ResizeBicubic (copy, width only,
// height only, height then width, width then height), the width pass
// through transposed planes (h >= 8 with AVX2) and row by row, down and up
// scaling, 1-pixel outputs and inputs.
var resizeU8Shapes = []resizeCase{
	{0, 128, 128, 32, 32}, // the producer's x4 down
	{0, 128, 128, 64, 64}, // x2 down
	{0, 96, 96, 32, 32},   // x3 down
	{0, 37, 53, 10, 14},   // odd sizes
	{0, 13, 11, 4, 3},     // odd, non-integer down
	{0, 7, 9, 28, 36},     // x4 up
	{0, 5, 6, 11, 13},     // non-integer up
	{0, 9, 10, 27, 4},     // up in height, down in width
	{0, 17, 6, 5, 17},     // down in height, up in width
	{0, 12, 12, 12, 12},   // identity: Unit8 alone
	{0, 12, 10, 12, 7},    // height unchanged: width pass only, h >= 8
	{0, 4, 30, 4, 9},      // width pass only, h < 8
	{0, 10, 15, 6, 15},    // width unchanged: height pass only
	{0, 64, 16, 8, 16},    // height pass only, x8 down
	{0, 20, 21, 19, 22},   // nearly identity
	{0, 40, 40, 30, 20},   // width first (smaller scale), h >= 8
	{0, 6, 40, 3, 10},     // width first, h < 8
	{0, 40, 40, 4, 20},    // height first down to 4 rows: width pass row by row
	{0, 32, 64, 16, 32},   // equal scales: height first
	{0, 1, 1, 1, 1},
	{0, 1, 1, 3, 4}, // 1x1 up
	{0, 5, 7, 1, 1}, // down to 1x1
	{0, 40, 30, 1, 7},
	{0, 6, 40, 6, 1},
	{0, 1, 9, 1, 4}, // 1-pixel height
	{0, 8, 1, 3, 1}, // 1-pixel width
	{0, 2, 3, 17, 1},
}

func randU8(r *rand.Rand, n int) []uint8 {
	s := make([]uint8, n)
	for i := range s {
		s[i] = uint8(r.IntN(256))
	}
	return s
}

// resizeU8Want is what ResizeBicubicU8 must equal: Unit8, then ResizeBicubic.
func resizeU8Want(planes, h, w, oh, ow int, src []uint8) []float32 {
	f := make([]float32, len(src))
	Unit8(f, src)
	want := make([]float32, planes*oh*ow)
	ResizeBicubic(planes, h, w, oh, ow, want, f)
	return want
}

// firstBitDiff returns the first index where a and b differ in bits, and
// false, or true where they are the same bits.
func firstBitDiff(a, b []float32) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i, false
		}
	}
	return 0, true
}

// TestResizeBicubicU8MatchesFloat: ResizeBicubicU8 gives the bits of Unit8
// followed by ResizeBicubic for every shape and 1 to 7 planes, with one
// and several workers for the reference, and is within float32 rounding of
// the float64 reference. With -tags noasm this checks the pure-Go path.
func TestResizeBicubicU8MatchesFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, c := range resizeU8Shapes {
		for planes := 1; planes <= 7; planes++ {
			src := randU8(r, planes*c.h*c.w)
			for _, workers := range []int{1, 2} {
				old := SetWorkers(workers)
				want := resizeU8Want(planes, c.h, c.w, c.oh, c.ow, src)
				SetWorkers(old)
				got := make([]float32, len(want))
				for i := range got {
					got[i] = float32(math.NaN())
				}
				ResizeBicubicU8(planes, c.h, c.w, c.oh, c.ow, got, src)
				if i, ok := firstBitDiff(got, want); !ok {
					t.Fatalf("%d planes of %dx%d -> %dx%d (workers %d): element %d = %g (%#08x), want %g (%#08x)",
						planes, c.h, c.w, c.oh, c.ow, workers, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		}
		// Sanity against the direct 2-D sum in float64.
		src := randU8(r, 2*c.h*c.w)
		f := make([]float64, len(src))
		for i, v := range src {
			f[i] = float64(v) / 255
		}
		ref := make([]float64, 2*c.oh*c.ow)
		ResizeBicubicRef(2, c.h, c.w, c.oh, c.ow, ref, f)
		got := make([]float32, len(ref))
		ResizeBicubicU8(2, c.h, c.w, c.oh, c.ow, got, src)
		for i := range got {
			if math.Abs(float64(got[i])-ref[i]) > 1e-5 {
				t.Fatalf("%dx%d -> %dx%d: element %d = %g, reference %g", c.h, c.w, c.oh, c.ow, i, got[i], ref[i])
			}
		}
	}
}

// TestResizeBicubicU8Concurrent calls ResizeBicubicU8 from several
// goroutines at once, on shapes whose tables are not cached yet, and checks
// every result (run it with -race).
func TestResizeBicubicU8Concurrent(t *testing.T) {
	resizeCache.mu.Lock()
	resizeCache.tables.Clear()
	resizeCache.n, resizeCache.bytes = 0, 0
	resizeCache.mu.Unlock()
	type job struct {
		c    resizeCase
		src  []uint8
		want []float32
	}
	r := rand.New(rand.NewPCG(23, 24))
	var jobs []job
	for _, c := range resizeU8Shapes {
		src := randU8(r, 3*c.h*c.w)
		jobs = append(jobs, job{c, src, resizeU8Want(3, c.h, c.w, c.oh, c.ow, src)})
	}
	resizeCache.mu.Lock()
	resizeCache.tables.Clear() // the goroutines build the tables themselves
	resizeCache.n, resizeCache.bytes = 0, 0
	resizeCache.mu.Unlock()
	const goroutines, rounds = 8, 3
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				for k := range jobs {
					j := jobs[(k+g*5+round)%len(jobs)]
					got := make([]float32, len(j.want))
					ResizeBicubicU8(3, j.c.h, j.c.w, j.c.oh, j.c.ow, got, j.src)
					if i, ok := firstBitDiff(got, j.want); !ok {
						errs <- fmt.Errorf("goroutine %d: %dx%d -> %dx%d: element %d = %g, want %g",
							g, j.c.h, j.c.w, j.c.oh, j.c.ow, i, got[i], j.want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

type namedF32 float32

// TestResizeTableCache: cached tables equal freshly built ones, are shared
// between calls, are kept apart per element type, and the cache stays
// within its bounds when many shapes go through it.
func TestResizeTableCache(t *testing.T) {
	c := &resizeCache
	c.mu.Lock()
	c.tables.Clear()
	c.n, c.bytes = 0, 0
	c.mu.Unlock()
	a := resizeTableFor[float32](37, 10)
	b := resizeTableFor[float32](37, 10)
	if &a.w[0] != &b.w[0] || &a.idx[0] != &b.idx[0] {
		t.Fatal("the second call built the table again")
	}
	fresh := newResizeTable[float32](37, 10)
	if fmt.Sprint(a) != fmt.Sprint(fresh) {
		t.Fatalf("cached table %v, want %v", a, fresh)
	}
	// Same (in, out), other element types: their own tables.
	d := resizeTableFor[float64](37, 10)
	if fmt.Sprint(d) != fmt.Sprint(newResizeTable[float64](37, 10)) {
		t.Fatal("float64 table differs from a fresh one")
	}
	n := resizeTableFor[namedF32](37, 10)
	if fmt.Sprint(n) != fmt.Sprint(newResizeTable[namedF32](37, 10)) {
		t.Fatal("named float32 table differs from a fresh one")
	}
	c.mu.Lock()
	if c.n != 3 {
		t.Errorf("%d entries after 3 tables", c.n)
	}
	c.mu.Unlock()
	// Many shapes, then big tables (about 1 MB each): the cache empties
	// itself rather than grow past either bound.
	check := func(what string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		entries, bytes := 0, 0
		c.tables.Range(func(k, v any) bool {
			entries++
			switch tb := v.(type) {
			case *resizeTable[float32]:
				bytes += 8*len(tb.idx) + 4*len(tb.w)
			case *resizeTable[float64]:
				bytes += 8*len(tb.idx) + 8*len(tb.w)
			case *resizeTable[namedF32]:
				bytes += 8*len(tb.idx) + 4*len(tb.w)
			}
			return true
		})
		if entries != c.n || bytes != c.bytes || c.n > resizeCacheEntries || c.bytes > resizeCacheBytes {
			t.Fatalf("after %s: %d entries of %d bytes, counted %d of %d; bounds %d, %d",
				what, entries, bytes, c.n, c.bytes, resizeCacheEntries, resizeCacheBytes)
		}
	}
	for in := 1; in <= resizeCacheEntries+50; in++ {
		resizeTableFor[float32](in, 7)
		check(fmt.Sprintf("%d -> 7", in))
	}
	sawBig := false
	for n := range 40 {
		tb := resizeTableFor[float32](20000+n, 5000)
		sawBig = sawBig || 12*len(tb.w) > resizeCacheBytes/20
		check(fmt.Sprintf("%d -> 5000", 20000+n))
	}
	if !sawBig {
		t.Fatal("the big tables are not big enough to test the byte bound")
	}
	// A table over the byte bound on its own is built but not kept.
	big := resizeCacheBytes / 40
	tb := resizeTableFor[float32](big, 1)
	if 12*len(tb.w) <= resizeCacheBytes {
		t.Fatalf("%d -> 1 has only %d taps", big, len(tb.w))
	}
	if _, ok := c.tables.Load(resizeKey{big, 1, any(float32(0))}); ok {
		t.Fatal("a table over the byte bound was cached")
	}
	check("the table over the bound")
}

// benchCrops returns n crops of 3x128x128 random 8-bit pixels.
func benchCrops(n int) []uint8 {
	return randU8(rand.New(rand.NewPCG(7, 8)), n*3*128*128)
}

const benchCropsN = 34

// BenchmarkResizeBicubicU8 resizes 34 crops of 3x128x128 8-bit pixels to
// 32x32, one ResizeBicubicU8 per crop on one goroutine.
func BenchmarkResizeBicubicU8(b *testing.B) {
	const crop, lr = 3 * 128 * 128, 3 * 32 * 32
	src := benchCrops(benchCropsN)
	dst := make([]float32, benchCropsN*lr)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		for i := range benchCropsN {
			ResizeBicubicU8(3, 128, 128, 32, 32, dst[i*lr:(i+1)*lr], src[i*crop:(i+1)*crop])
		}
	}
}

// BenchmarkResizeBicubicU8Parallel is BenchmarkResizeBicubicU8 on
// GOMAXPROCS goroutines at once, as the producer's workers call it: the
// time per 34 crops of the whole machine.
func BenchmarkResizeBicubicU8Parallel(b *testing.B) {
	const crop, lr = 3 * 128 * 128, 3 * 32 * 32
	src := benchCrops(benchCropsN)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]float32, benchCropsN*lr)
		for pb.Next() {
			for i := range benchCropsN {
				ResizeBicubicU8(3, 128, 128, 32, 32, dst[i*lr:(i+1)*lr], src[i*crop:(i+1)*crop])
			}
		}
	})
}

// BenchmarkUnit8ResizeBicubicBatch is the same work the way the producer
// did it before ResizeBicubicU8: Unit8 over the whole batch of 34 crops
// into one float buffer, then one ResizeBicubic of all 102 planes (on
// every core).
func BenchmarkUnit8ResizeBicubicBatch(b *testing.B) {
	src := benchCrops(benchCropsN)
	hr := make([]float32, len(src))
	dst := make([]float32, benchCropsN*3*32*32)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		Unit8(hr, src)
		ResizeBicubic(benchCropsN*3, 128, 128, 32, 32, dst, hr)
	}
}
