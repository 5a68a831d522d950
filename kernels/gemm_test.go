package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randSlice[T Float](r *rand.Rand, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = T(r.Float64()*2 - 1)
	}
	return s
}

// maxRelErr returns max |a-b| / max(1, max|b|).
func maxRelErr[T Float](a, b []T) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d, scale float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return d / math.Max(1, scale)
}

var gemmShapes = [][3]int{
	{1, 1, 1}, {1, 7, 3}, {5, 1, 9}, {3, 5, 0}, {12, 32, 1}, {13, 33, 17}, {6, 16, 300},
	{24, 64, 256}, {25, 97, 257}, {64, 1024, 27}, {3, 4096, 288}, {37, 111, 600},
}

func testGemm[T Float](t *testing.T, tol float64) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range gemmShapes {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, beta := range []T{0, 1, 0.5} {
					// Strides larger than needed check that only the
					// addressed elements are read and written.
					colsA, rowsA := k, m
					if tA {
						colsA, rowsA = m, k
					}
					colsB, rowsB := n, k
					if tB {
						colsB, rowsB = k, n
					}
					lda, ldb, ldc := colsA+3, colsB+1, n+2
					a := randSlice[T](r, max(1, rowsA*lda))
					b := randSlice[T](r, max(1, rowsB*ldb))
					c0 := randSlice[T](r, max(1, m*ldc))
					if beta == 0 {
						for i := range c0 {
							c0[i] = T(math.NaN()) // must be overwritten, not scaled
						}
					}
					want := append([]T(nil), c0...)
					got := append([]T(nil), c0...)
					alpha := T(0.75)
					GemmRef(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, want, ldc)
					Gemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, got, ldc)
					// Padding columns of C must be untouched.
					for i := 0; i < m; i++ {
						for j := n; j < ldc && i*ldc+j < len(got); j++ {
							if got[i*ldc+j] != c0[i*ldc+j] && !(math.IsNaN(float64(got[i*ldc+j])) && math.IsNaN(float64(c0[i*ldc+j]))) {
								t.Fatalf("m=%d n=%d k=%d: padding of C written at (%d,%d)", m, n, k, i, j)
							}
						}
					}
					var gv, wv []T
					for i := 0; i < m; i++ {
						gv = append(gv, got[i*ldc:i*ldc+n]...)
						wv = append(wv, want[i*ldc:i*ldc+n]...)
					}
					if e := maxRelErr(gv, wv); e > tol*math.Sqrt(float64(k+1)) || math.IsNaN(e) {
						t.Fatalf("%s m=%d n=%d k=%d tA=%v tB=%v beta=%v: rel err %.3g", GemmKernel(), m, n, k, tA, tB, beta, e)
					}
				}
			}
		}
	}
}

func TestGemmFloat32AllKernels(t *testing.T) {
	defer UseGemmKernel(GemmKernel())
	for _, name := range GemmKernels() {
		t.Run(name, func(t *testing.T) {
			if !UseGemmKernel(name) {
				t.Fatalf("kernel %s listed but not selectable", name)
			}
			for _, w := range []int{1, 2, 3} {
				old := SetWorkers(w)
				testGemm[float32](t, 2e-6)
				SetWorkers(old)
			}
		})
	}
}

func TestGemmFloat64(t *testing.T) {
	for _, w := range []int{1, 3} {
		old := SetWorkers(w)
		testGemm[float64](t, 1e-14)
		SetWorkers(old)
	}
}

func BenchmarkSgemm(b *testing.B) {
	for _, sh := range [][3]int{{64, 1024, 576}, {256, 1024, 576}, {32, 4096, 288}, {576, 1024, 64}} {
		for _, name := range GemmKernels() {
			b.Run(fmt.Sprintf("%s/%dx%dx%d", name, sh[0], sh[1], sh[2]), func(b *testing.B) {
				defer UseGemmKernel(GemmKernel())
				UseGemmKernel(name)
				r := rand.New(rand.NewPCG(1, 2))
				m, n, k := sh[0], sh[1], sh[2]
				a, bb, c := randSlice[float32](r, m*k), randSlice[float32](r, k*n), make([]float32, m*n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					Gemm(false, false, m, n, k, 1, a, k, bb, n, 0, c, n)
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkMicroKernel runs the float32 micro-kernel alone, one goroutine,
// on packed panels that stay in cache: its ceiling for each row count.
func BenchmarkMicroKernel(b *testing.B) {
	mk := kernelFor[float32]()
	for _, kc := range []int{256, 576} {
		for rows := 1; rows <= mk.mr; rows++ {
			b.Run(fmt.Sprintf("%s/r%d/kc%d", mk.name, rows, kc), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				a, bb, c := randSlice[float32](r, rows*kc), randSlice[float32](r, mk.nr*kc), make([]float32, mk.mr*mk.nr)
				seq := seqOffsets[mk.nr]
				for i := 0; i < b.N; i++ {
					mk.fns[rows](kc, a, rows, bb, seq, len(bb), c, mk.nr, 1, i > 0, epi[float32]{})
				}
				b.ReportMetric(2*float64(rows*mk.nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// TestGemmRowPanels runs every row count of the micro-kernels (the
// balanced split of m rows into panels), partial column panels, several
// depth blocks, both betas that skip scaling C, and 1 and 3 workers.
func TestGemmRowPanels(t *testing.T) {
	defer UseGemmKernel(GemmKernel())
	defer func(kc int) { gemmKC = kc }(gemmKC)
	gemmKC = 16
	r := rand.New(rand.NewPCG(3, 4))
	for _, name := range GemmKernels() {
		UseGemmKernel(name)
		for _, w := range []int{1, 3} {
			old := SetWorkers(w)
			for m := 1; m <= 40; m++ {
				n, k := 37, 41
				a, b := randSlice[float32](r, m*k), randSlice[float32](r, k*n)
				for _, beta := range []float32{0, 1} {
					c0 := randSlice[float32](r, m*n)
					got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
					Gemm(false, false, m, n, k, 1, a, k, b, n, beta, got, n)
					GemmRef(false, false, m, n, k, 1, a, k, b, n, beta, want, n)
					if e := maxRelErr(got, want); !(e <= 1e-5) {
						t.Fatalf("%s workers=%d m=%d beta=%v: rel err %.3g", name, w, m, beta, e)
					}
				}
			}
			SetWorkers(old)
		}
	}
}

// TestMicroKernelsDirect runs every row count of every float32 kernel
// alone, on a B panel read through scattered offsets and on a packed one
// (seqOffsets: the contiguous-B kernels of AVX2), for odd and even depths
// around the unrolling, with and without load, bias and activation,
// against the reference; the two panels must give the same bits.
func TestMicroKernelsDirect(t *testing.T) {
	defer UseGemmKernel(GemmKernel())
	r := rand.New(rand.NewPCG(11, 12))
	for _, name := range GemmKernels() {
		UseGemmKernel(name)
		mk := kernelFor[float32]()
		nr := mk.nr
		for rows := 1; rows <= mk.mr; rows++ {
			for _, kc := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 17, 64, 255, 300} {
				lda := rows + 2
				a := randSlice[float32](r, max(1, kc*lda))
				// Scattered rows of B, misaligned, in a larger array.
				bspan := 3*nr*kc + 5*nr
				bs := randSlice[float32](r, bspan)
				offs := make([]int32, kc)
				for p := range offs {
					offs[p] = int32(r.IntN(bspan - nr + 1))
				}
				packed := make([]float32, max(nr, nr*kc))
				for p, o := range offs {
					copy(packed[p*nr:(p+1)*nr], bs[o:int(o)+nr])
				}
				for _, load := range []bool{false, true} {
					for _, e := range []epi[float32]{{}, {bias: randSlice[float32](r, rows), leaky: true, slope: 0.1}} {
						ldc := nr + 3
						c0 := randSlice[float32](r, rows*ldc)
						want := append([]float32(nil), c0...)
						for i := 0; i < rows; i++ {
							for j := 0; j < nr; j++ {
								var s float32
								for p := 0; p < kc; p++ {
									s += a[p*lda+i] * packed[p*nr+j]
								}
								v := 0.5 * s
								if load {
									v += want[i*ldc+j]
								}
								want[i*ldc+j] = v
							}
						}
						if e.active() {
							e.apply(want, ldc, rows, nr)
						}
						got1 := append([]float32(nil), c0...)
						mk.fns[rows](kc, a, lda, bs, offs, bspan, got1, ldc, 0.5, load, e)
						got2 := append([]float32(nil), c0...)
						mk.fns[rows](kc, a, lda, packed, seqOffsets[nr], len(packed), got2, ldc, 0.5, load, e)
						if err := maxRelErr(got1, want); !(err <= 2e-6*math.Sqrt(float64(kc+1))) {
							t.Fatalf("%s rows=%d kc=%d load=%v epi=%v: offsets: rel err %.3g", name, rows, kc, load, e.active(), err)
						}
						for i := range got1 {
							if math.Float32bits(got1[i]) != math.Float32bits(got2[i]) {
								t.Fatalf("%s rows=%d kc=%d load=%v epi=%v: packed panel differs at %d: %v, offsets %v", name, rows, kc, load, e.active(), i, got2[i], got1[i])
							}
						}
					}
				}
			}
		}
	}
}

// TestGemmPanelPacksB checks gemmPanel on a B panel read through offsets
// with several row panels (the AVX2 kernel copies it into a contiguous
// panel first): the same bits as the kernel on a packed panel, every
// split of m rows, with a partial column panel too.
func TestGemmPanelPacksB(t *testing.T) {
	defer UseGemmKernel(GemmKernel())
	r := rand.New(rand.NewPCG(13, 14))
	for _, name := range GemmKernels() {
		UseGemmKernel(name)
		mk := kernelFor[float32]()
		nr := mk.nr
		ws := newWorkspaces[float32](1)
		const kcb = 37
		w := ws.get(0, mk, kcb)
		for m := 1; m <= 3*mk.mr+1; m++ {
			for _, kc := range []int{1, 6, kcb} {
				for _, cols := range []int{nr, nr - 3} {
					pa := packMatrixA(mk, false, randSlice[float32](r, m*kc), kc, m, kc)
					bspan := 4*nr*kc + nr
					bs := randSlice[float32](r, bspan)
					offs := make([]int32, kc)
					for p := range offs {
						offs[p] = int32(r.IntN(bspan - nr + 1))
					}
					packed := make([]float32, nr*kc)
					for p, o := range offs {
						copy(packed[p*nr:(p+1)*nr], bs[o:int(o)+nr])
					}
					ldc := nr + 1
					got, want := make([]float32, m*ldc), make([]float32, m*ldc)
					e := epi[float32]{bias: randSlice[float32](r, m), leaky: true, slope: 0.25}
					gemmPanel(mk, m, kc, pa.block(0), 0, bs, offs, bspan, cols, got, ldc, 1, false, e, w.edge)
					gemmPanel(mk, m, kc, pa.block(0), 0, packed, seqOffsets[nr], len(packed), cols, want, ldc, 1, false, e, w.edge)
					pa.free()
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s m=%d kc=%d cols=%d: differs at %d: %v, want %v", name, m, kc, cols, i, got[i], want[i])
						}
					}
				}
			}
		}
		ws.free()
	}
}
