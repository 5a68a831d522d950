package kernels

import (
	"fmt"
	"sync"
)

// GemmRef is the reference matrix product on row-major matrices:
//
//	C = alpha * op(A) * op(B) + beta * C
//
// where op(A) is m x k (A itself when transA is false, its transpose
// otherwise), op(B) is k x n and C is m x n. lda, ldb and ldc are the row
// strides of A, B and C as stored. When beta is zero C is overwritten, so it
// may hold garbage (NaN included) on entry.
func GemmRef[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s T
			for p := 0; p < k; p++ {
				var av, bv T
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}

// checkGemm panics with a description of the first inconsistent argument.
// A bad shape here is a programming error inside pdmflow, never user input.
func checkGemm(transA, transB bool, m, n, k, la, lda, lb, ldb, lc, ldc int) {
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	switch {
	case m < 0 || n < 0 || k < 0:
		panic(fmt.Sprintf("kernels: gemm: negative size m=%d n=%d k=%d", m, n, k))
	case lda < max(1, colsA) || ldb < max(1, colsB) || ldc < max(1, n):
		panic(fmt.Sprintf("kernels: gemm: stride too small (lda=%d ldb=%d ldc=%d for m=%d n=%d k=%d)", lda, ldb, ldc, m, n, k))
	case rowsA > 0 && la < (rowsA-1)*lda+colsA:
		panic(fmt.Sprintf("kernels: gemm: A has %d elements, needs %d", la, (rowsA-1)*lda+colsA))
	case rowsB > 0 && lb < (rowsB-1)*ldb+colsB:
		panic(fmt.Sprintf("kernels: gemm: B has %d elements, needs %d", lb, (rowsB-1)*ldb+colsB))
	case m > 0 && lc < (m-1)*ldc+n:
		panic(fmt.Sprintf("kernels: gemm: C has %d elements, needs %d", lc, (m-1)*ldc+n))
	}
}

// Blocking parameters of the packed GEMM. kc bounds the depth of one packed
// panel so that an MR x kc slice of A and a kc x NR slice of B stay in L1/L2.
const gemmKC = 256

// microKernel computes C[0:mr, 0:nr] += alpha * Ap * Bp where Ap is an
// mr x kc panel packed column by column (mr values per depth step) and Bp a
// kc x nr panel packed row by row (nr values per depth step).
type microKernel[T Float] struct {
	mr, nr int
	fn     func(kc int, a, b, c []T, ldc int, alpha T)
	name   string
}

// Gemm computes C = alpha * op(A) * op(B) + beta * C like GemmRef, with
// packed panels, a register-blocked micro-kernel (AVX-512 or AVX2 assembly
// for float32 where the CPU has it, portable Go otherwise) and the columns
// of C split over Workers() goroutines.
func Gemm[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	checkGemm(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	scaleC(m, n, beta, c, ldc)
	if k == 0 || alpha == 0 {
		return
	}
	gemmPacked(kernelFor[T](), Workers(), transA, transB, m, n, k, alpha, a, lda, b, ldb, c, ldc)
}

// gemmSerial is Gemm on the calling goroutine only, for callers that already
// split their work over the cores (one image per worker, say).
func gemmSerial[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	checkGemm(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	scaleC(m, n, beta, c, ldc)
	if k == 0 || alpha == 0 {
		return
	}
	gemmPacked(kernelFor[T](), 1, transA, transB, m, n, k, alpha, a, lda, b, ldb, c, ldc)
}

func scaleC[T Float](m, n int, beta T, c []T, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// gemmScratch is the per-call working memory of gemmPacked, pooled so that
// a training step does not allocate it again for every convolution.
type gemmScratch[T Float] struct {
	packA []T
	packB [][]T // one per worker
	edge  [][]T // one mr x nr tile per worker for partial tiles
}

var scratch32, scratch64 sync.Pool

func scratchPool[T Float]() *sync.Pool {
	var zero T
	if _, ok := any(zero).(float32); ok {
		return &scratch32
	}
	return &scratch64
}

func getScratch[T Float]() *gemmScratch[T] {
	if s, ok := scratchPool[T]().Get().(*gemmScratch[T]); ok {
		return s
	}
	return new(gemmScratch[T])
}

func putScratch[T Float](s *gemmScratch[T]) { scratchPool[T]().Put(s) }

func grow[T Float](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func gemmPacked[T Float](mk microKernel[T], workers int, transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, c []T, ldc int) {
	mr, nr := mk.mr, mk.nr
	mPanels := (m + mr - 1) / mr
	nPanels := (n + nr - 1) / nr
	s := getScratch[T]()
	defer putScratch(s)
	w := min(workers, nPanels)
	for len(s.packB) < w {
		s.packB = append(s.packB, nil)
		s.edge = append(s.edge, nil)
	}
	// Columns are handed out in groups of panels; a group's B slice is
	// packed once per depth block and reused against every panel of A.
	const groupPanels = 8
	groups := (nPanels + groupPanels - 1) / groupPanels
	for p0 := 0; p0 < k; p0 += gemmKC {
		kc := min(gemmKC, k-p0)
		s.packA = grow(s.packA, mPanels*mr*kc)
		packA(transA, a, lda, m, p0, kc, mr, s.packA)
		pa := s.packA
		parallelTasksN(w, groups, func(worker, g int) {
			j0 := g * groupPanels * nr
			nc := min(groupPanels*nr, n-j0)
			np := (nc + nr - 1) / nr
			pb := grow(s.packB[worker], np*nr*kc)
			s.packB[worker] = pb
			packB(transB, b, ldb, p0, kc, j0, nc, nr, pb)
			edge := grow(s.edge[worker], mr*nr)
			s.edge[worker] = edge
			for jp := 0; jp < np; jp++ {
				bp := pb[jp*nr*kc : (jp+1)*nr*kc]
				j := j0 + jp*nr
				ncols := min(nr, n-j)
				for ip := 0; ip < mPanels; ip++ {
					ap := pa[ip*mr*kc : (ip+1)*mr*kc]
					i := ip * mr
					nrows := min(mr, m-i)
					if nrows == mr && ncols == nr {
						mk.fn(kc, ap, bp, c[i*ldc+j:], ldc, alpha)
						continue
					}
					clear(edge)
					mk.fn(kc, ap, bp, edge, nr, alpha)
					for r := 0; r < nrows; r++ {
						dst := c[(i+r)*ldc+j : (i+r)*ldc+j+ncols]
						for q, v := range edge[r*nr : r*nr+ncols] {
							dst[q] += v
						}
					}
				}
			}
		})
	}
}

// packA copies op(A)[0:m, p0:p0+kc] into panels of mr rows, each stored
// depth-major (mr values per depth step), padding missing rows with zeros.
func packA[T Float](trans bool, a []T, lda, m, p0, kc, mr int, dst []T) {
	o := 0
	for i0 := 0; i0 < m; i0 += mr {
		rows := min(mr, m-i0)
		panel := dst[o : o+mr*kc]
		if trans {
			// A stored k x m: element (i, p) at a[p*lda+i]; rows are contiguous.
			for p := 0; p < kc; p++ {
				src := a[(p0+p)*lda+i0 : (p0+p)*lda+i0+rows]
				d := panel[p*mr : p*mr+mr]
				copy(d, src)
				clear(d[rows:])
			}
		} else {
			for r := 0; r < rows; r++ {
				src := a[(i0+r)*lda+p0 : (i0+r)*lda+p0+kc]
				for p, v := range src {
					panel[p*mr+r] = v
				}
			}
			for r := rows; r < mr; r++ {
				for p := 0; p < kc; p++ {
					panel[p*mr+r] = 0
				}
			}
		}
		o += mr * kc
	}
}

// packB copies op(B)[p0:p0+kc, j0:j0+nc] into panels of nr columns, each
// stored row by row (nr values per depth step), padding with zeros.
func packB[T Float](trans bool, b []T, ldb, p0, kc, j0, nc, nr int, dst []T) {
	o := 0
	for jj := 0; jj < nc; jj += nr {
		cols := min(nr, nc-jj)
		panel := dst[o : o+nr*kc]
		if trans {
			// B stored n x k: element (p, j) at b[j*ldb+p].
			for q := 0; q < cols; q++ {
				src := b[(j0+jj+q)*ldb+p0 : (j0+jj+q)*ldb+p0+kc]
				for p, v := range src {
					panel[p*nr+q] = v
				}
			}
			for q := cols; q < nr; q++ {
				for p := 0; p < kc; p++ {
					panel[p*nr+q] = 0
				}
			}
		} else {
			for p := 0; p < kc; p++ {
				src := b[(p0+p)*ldb+j0+jj : (p0+p)*ldb+j0+jj+cols]
				d := panel[p*nr : p*nr+nr]
				copy(d, src)
				clear(d[cols:])
			}
		}
		o += nr * kc
	}
}

// goKernel4x4 is the portable micro-kernel: a 4 x 4 tile held in scalars.
func goKernel4x4[T Float](kc int, a, b, c []T, ldc int, alpha T) {
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 T
	a = a[:4*kc]
	b = b[:4*kc]
	for p := 0; p < kc; p++ {
		ap := a[p*4 : p*4+4 : p*4+4]
		bp := b[p*4 : p*4+4 : p*4+4]
		a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	r := c[0:4:4]
	r[0] += alpha * c00
	r[1] += alpha * c01
	r[2] += alpha * c02
	r[3] += alpha * c03
	r = c[ldc : ldc+4 : ldc+4]
	r[0] += alpha * c10
	r[1] += alpha * c11
	r[2] += alpha * c12
	r[3] += alpha * c13
	r = c[2*ldc : 2*ldc+4 : 2*ldc+4]
	r[0] += alpha * c20
	r[1] += alpha * c21
	r[2] += alpha * c22
	r[3] += alpha * c23
	r = c[3*ldc : 3*ldc+4 : 3*ldc+4]
	r[0] += alpha * c30
	r[1] += alpha * c31
	r[2] += alpha * c32
	r[3] += alpha * c33
}
