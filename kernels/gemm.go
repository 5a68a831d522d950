package kernels

import "fmt"

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

// gemmKC bounds the depth of one block: a depth k is cut into
// ceil(k/gemmKC) blocks of equal depth (the last one shorter by less than
// the block count), each an MR x kc panel of A against a kc x NR panel of
// B per micro-kernel call.
var gemmKC = 512

// maxKC bounds gemmKC (the length of the offset tables of packed panels).
const maxKC = 2048

// blockDepth is the depth of every block but the last for a depth of k.
func blockDepth(k int) int {
	if k <= 0 {
		return 1
	}
	kc := min(gemmKC, maxKC)
	nb := (k + kc - 1) / kc
	return (k + nb - 1) / nb
}

// kernelFn computes, for rows r < R (the kernel's row count) and columns
// j < nr,
//
//	C[r*ldc+j] = e(alpha * sum_{p<kc} A[p*lda+r] * B[boffs[p]+j]   (+ C[r*ldc+j] when load))
//
// A is read depth-major with stride lda (a packed panel has lda = R), and
// the nr values of B of each depth step are contiguous at boffs[p] (a
// packed panel has boffs[p] = p*nr; convolutions point into their images).
// Every offset is at most bspan-nr. With load false C is not read, so it
// may hold garbage. e is the epilogue of the last depth block of a
// convolution (bias and activation), the zero epi otherwise.
type kernelFn[T Float] func(kc int, a []T, lda int, b []T, boffs []int32, bspan int, c []T, ldc int, alpha T, load bool, e epi[T])

// epi is what a kernel applies to its tile before storing it: bias[r]
// added to row r (none where bias is nil), then with leaky set
// t = max(t, slope*t), that is ReLU (slope 0) or LeakyReLU (0 <= slope <=
// 1), which gives the results of ActInPlace bit for bit.
type epi[T Float] struct {
	bias  []T
	leaky bool
	slope T
}

// epiFor returns the epilogue of bias and act and whether act fits in it.
func epiFor[T Float](bias []T, act Act) (epi[T], bool) {
	e := epi[T]{bias: bias}
	switch {
	case act.Kind == Identity:
		return e, true
	case act.Kind == ReLU || act.Kind == LeakyReLU && act.Slope >= 0 && act.Slope <= 1:
		e.leaky, e.slope = true, T(act.slope())
		return e, true
	}
	return e, false
}

func (e epi[T]) active() bool { return e.bias != nil || e.leaky }

// from returns the epilogue of the rows from i0 on.
func (e epi[T]) from(i0 int) epi[T] {
	if e.bias != nil {
		e.bias = e.bias[i0:]
	}
	return e
}

// apply applies the epilogue to a rows x cols tile of C.
func (e epi[T]) apply(c []T, ldc, rows, cols int) {
	for r := 0; r < rows; r++ {
		row := c[r*ldc : r*ldc+cols]
		if e.bias != nil {
			b := e.bias[r]
			for j := range row {
				row[j] += b
			}
		}
		if e.leaky {
			ActInPlace(Act{Kind: LeakyReLU, Slope: float64(e.slope)}, row)
		}
	}
}

// microKernel is a register-blocked tile of up to mr x nr; fns[r] computes
// r rows (1 <= r <= mr). With balanced set the rows of a matrix are split
// into panels of as equal a height as possible (64 rows: 11+11+11+11+10+10
// rather than 5x12+4), which suits kernels whose shorter variants are
// nearly as fast per row.
//
// pack, where
// not nil, copies a B panel read through offsets (nr columns at boffs[p])
// into a contiguous panel (boffs[p] = p*nr): gemmPanel does so before
// running several row panels against it.
type microKernel[T Float] struct {
	mr, nr   int
	balanced bool
	fns      []kernelFn[T]
	name     string
	pack     func(kc int, b []T, boffs []int32, bspan int, dst []T)
}

// panels is how many row panels m rows take.
func (mk *microKernel[T]) panels(m int) int { return (m + mk.mr - 1) / mk.mr }

// rowSplit is how m rows are cut into np row panels: the first extra of
// big rows, the others of small rows.
type rowSplit struct{ np, extra, big, small int }

func (mk *microKernel[T]) split(m int) rowSplit {
	np := mk.panels(m)
	if !mk.balanced {
		// Panels of mr rows and a shorter (or full) last one.
		return rowSplit{np: np, extra: np - 1, big: mk.mr, small: m - (np-1)*mk.mr}
	}
	return rowSplit{np: np, extra: m % np, big: m/np + 1, small: m / np}
}

// panel returns the first row and the row count of row panel ip.
func (rs rowSplit) panel(ip int) (i0, rows int) {
	if ip < rs.extra {
		return ip * rs.big, rs.big
	}
	return rs.extra*rs.big + (ip-rs.extra)*rs.small, rs.small
}

// seqOffsets[nr][p] = p*nr: the offsets of a packed B panel.
// It is set before any init function runs: the assembly kernels keep
// the address of its tables.
var seqOffsets = makeSeqOffsets()

func makeSeqOffsets() map[int][]int32 {
	m := map[int][]int32{}
	for _, nr := range []int{4, 16, 32} {
		t := make([]int32, maxKC)
		for p := range t {
			t[p] = int32(p * nr)
		}
		m[nr] = t
	}
	return m
}

// Gemm computes C = alpha * op(A) * op(B) + beta * C like GemmRef, with
// packed panels, a register-blocked micro-kernel (AVX-512 or AVX2 assembly
// for float32 where the CPU has it, portable Go otherwise) and the columns
// of C split over Workers() goroutines, each column panel computed by one
// goroutine in a fixed order.
func Gemm[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	checkGemm(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	// With beta 0 the first depth block overwrites C and with beta 1 adds
	// to it; only other betas scale C first.
	if beta != 0 && beta != 1 {
		scaleC(m, n, beta, c, ldc)
	}
	load := beta != 0
	mk := kernelFor[T]()
	pa := packMatrixA(mk, transA, a, lda, m, k)
	defer pa.free()
	nPanels := (n + mk.nr - 1) / mk.nr
	workers := Workers()
	groupPanels := max(1, min(8, nPanels/(4*workers)))
	groups := (nPanels + groupPanels - 1) / groupPanels
	ws := newWorkspaces[T](min(workers, groups))
	defer ws.free()
	seq := seqOffsets[mk.nr]
	parallelTasksN(workers, groups, func(worker, g int) {
		w := ws.get(worker, mk, pa.kcb)
		for jp := g * groupPanels; jp < min(nPanels, (g+1)*groupPanels); jp++ {
			j := jp * mk.nr
			cols := min(mk.nr, n-j)
			for p0 := 0; p0 < k; p0 += pa.kcb {
				kc := min(pa.kcb, k-p0)
				pb := w.pb[:mk.nr*kc]
				packB(transB, b, ldb, p0, kc, j, cols, mk.nr, pb)
				gemmPanel(mk, m, kc, pa.block(p0), 0, pb, seq, len(pb), cols, c[j:], ldc, alpha, load || p0 > 0, epi[T]{}, w.edge)
			}
		}
	})
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

// aPacked is op(A)[0:m, 0:k] packed for a micro-kernel: depth blocks of kcb
// (the last one shorter), each holding the row panels (mk.panel) one after
// another, each panel depth-major: the block at depth p0 starts at p0*m,
// and its panel of rows [i0, i0+rows) at i0*kc within the block.
type aPacked[T Float] struct {
	m, k, kcb int
	buf       *[]T
	data      []T
}

// block returns the panels of the depth block starting at p0.
func (pa *aPacked[T]) block(p0 int) []T {
	kc := min(pa.kcb, pa.k-p0)
	return pa.data[p0*pa.m : p0*pa.m+pa.m*kc]
}

func (pa *aPacked[T]) free() {
	if pa.buf != nil {
		putBuf(pa.buf)
		pa.buf, pa.data = nil, nil
	}
}

// packMatrixA packs op(A) (m x k) for mk.
func packMatrixA[T Float](mk *microKernel[T], trans bool, a []T, lda, m, k int) *aPacked[T] {
	buf := getBuf[T](m * k)
	pa := &aPacked[T]{m: m, k: k, kcb: blockDepth(k), buf: buf, data: *buf}
	for p0 := 0; p0 < k; p0 += pa.kcb {
		kc := min(pa.kcb, k-p0)
		packA(mk, trans, a, lda, m, p0, kc, pa.block(p0))
	}
	return pa
}

// gemmPanel computes C[0:m, 0:cols] = e(alpha * A * B (+ C when load))
// for one depth block of kc steps. With lda 0, a holds the block's packed
// row panels (aPacked.block); otherwise A is read in place, element (i, p)
// at a[p*lda+i]. B is one panel of nr columns given as b, boffs and bspan
// (see kernelFn), of which cols are wanted. edge is an mr x nr tile for
// the partial tiles.
func gemmPanel[T Float](mk *microKernel[T], m, kc int, a []T, lda int, b []T, boffs []int32, bspan, cols int, c []T, ldc int, alpha T, load bool, e epi[T], edge []T) {
	nr := mk.nr
	rs := mk.split(m)
	// Several row panels read B through offsets: copy it into a contiguous
	// panel once (the space after the edge tile, see workspaces.get).
	if mk.pack != nil && rs.np > 1 && kc > 0 && len(edge) >= mk.mr*nr+kc*nr {
		if seq := seqOffsets[nr]; len(boffs) == 0 || &boffs[0] != &seq[0] {
			pb := edge[mk.mr*nr : mk.mr*nr+kc*nr]
			mk.pack(kc, b, boffs, bspan, pb)
			b, boffs, bspan = pb, seq, len(pb)
		}
	}
	for ip := 0; ip < rs.np; ip++ {
		i0, rows := rs.panel(ip)
		ap, la := a[i0:], lda
		if lda == 0 {
			ap, la = a[i0*kc:(i0+rows)*kc], rows
		}
		fn := mk.fns[rows]
		if cols == nr {
			fn(kc, ap, la, b, boffs, bspan, c[i0*ldc:], ldc, alpha, load, e.from(i0))
			continue
		}
		fn(kc, ap, la, b, boffs, bspan, edge, nr, alpha, false, epi[T]{})
		for r := 0; r < rows; r++ {
			dst := c[(i0+r)*ldc : (i0+r)*ldc+cols]
			src := edge[r*nr : r*nr+cols]
			if load {
				for q, v := range src {
					dst[q] += v
				}
			} else {
				copy(dst, src)
			}
		}
		if e.active() {
			e.from(i0).apply(c[i0*ldc:], ldc, rows, cols)
		}
	}
}

// workspace is one goroutine's scratch memory: a packed B panel, the edge
// tile, and up to two buffers the caller sizes.
type workspace[T Float] struct {
	bufs             []*[]T
	pb, edge, s1, s2 []T
}

type workspaces[T Float] []workspace[T]

func newWorkspaces[T Float](n int) workspaces[T] { return make(workspaces[T], max(n, 1)) }

func (w *workspace[T]) alloc(n int) []T {
	b := getBuf[T](n)
	w.bufs = append(w.bufs, b)
	return *b
}

// get returns worker's workspace with a B panel of depth kcb and the edge
// tile (followed, for kernels that pack, by a second B panel).
func (ws workspaces[T]) get(worker int, mk *microKernel[T], kcb int) *workspace[T] {
	w := &ws[worker]
	if w.pb == nil {
		w.pb = w.alloc(mk.nr * kcb)
		ne := mk.mr * mk.nr
		if mk.pack != nil {
			ne += mk.nr * kcb // the contiguous B panel of gemmPanel
		}
		w.edge = w.alloc(ne)
	}
	return w
}

// scratch1 and scratch2 return worker's extra buffers of n elements (the
// same n on every call).
func (w *workspace[T]) scratch1(n int) []T {
	if w.s1 == nil {
		w.s1 = w.alloc(n)
	}
	return w.s1[:n]
}

func (w *workspace[T]) scratch2(n int) []T {
	if w.s2 == nil {
		w.s2 = w.alloc(n)
	}
	return w.s2[:n]
}

func (ws workspaces[T]) free() {
	for i := range ws {
		for _, b := range ws[i].bufs {
			putBuf(b)
		}
		ws[i] = workspace[T]{}
	}
}

// packA copies op(A)[0:m, p0:p0+kc] into the row panels of mk, each
// stored depth-major (rows values per depth step).
func packA[T Float](mk *microKernel[T], trans bool, a []T, lda, m, p0, kc int, dst []T) {
	rs := mk.split(m)
	for ip := 0; ip < rs.np; ip++ {
		i0, rows := rs.panel(ip)
		panel := dst[i0*kc : (i0+rows)*kc]
		if trans {
			// A stored k x m: element (i, p) at a[p*lda+i]; rows are contiguous.
			for p := 0; p < kc; p++ {
				copy(panel[p*rows:p*rows+rows], a[(p0+p)*lda+i0:(p0+p)*lda+i0+rows])
			}
			continue
		}
		for r := 0; r < rows; r++ {
			src := a[(i0+r)*lda+p0 : (i0+r)*lda+p0+kc]
			out := panel[r:]
			for p, v := range src {
				out[p*rows] = v
			}
		}
	}
}

// packB copies op(B)[p0:p0+kc, j0:j0+nc] (nc <= nr) into one panel of nr
// columns stored row by row (nr values per depth step), padding with zeros.
func packB[T Float](trans bool, b []T, ldb, p0, kc, j0, nc, nr int, panel []T) {
	if trans {
		// B stored n x k: element (p, j) at b[j*ldb+p].
		for q := 0; q < nc; q++ {
			src := b[(j0+q)*ldb+p0 : (j0+q)*ldb+p0+kc]
			out := panel[q:]
			for p, v := range src {
				out[p*nr] = v
			}
		}
		if nc < nr {
			for p := 0; p < kc; p++ {
				clear(panel[p*nr+nc : p*nr+nr])
			}
		}
		return
	}
	for p := 0; p < kc; p++ {
		src := b[(p0+p)*ldb+j0 : (p0+p)*ldb+j0+nc]
		d := panel[p*nr : p*nr+nr]
		copy(d, src)
		clear(d[nc:])
	}
}

// goKernelRows is the portable kernel for up to 4 rows and nr <= 4
// columns: plain loops, for the short panels the 4x4 kernel does not
// cover.
func goKernelRows[T Float](rows, nr int) kernelFn[T] {
	return func(kc int, a []T, lda int, b []T, boffs []int32, bspan int, c []T, ldc int, alpha T, load bool, e epi[T]) {
		var acc [4 * 4]T
		for p := 0; p < kc; p++ {
			ap := a[p*lda : p*lda+rows]
			bp := b[boffs[p] : int(boffs[p])+nr]
			for r, av := range ap {
				for j, bv := range bp {
					acc[r*nr+j] += av * bv
				}
			}
		}
		for r := 0; r < rows; r++ {
			row := c[r*ldc : r*ldc+nr]
			for j := range row {
				if load {
					row[j] += alpha * acc[r*nr+j]
				} else {
					row[j] = alpha * acc[r*nr+j]
				}
			}
		}
		if e.active() {
			e.apply(c, ldc, rows, nr)
		}
	}
}

// goKernel4x4 is the portable micro-kernel: a 4 x 4 tile held in scalars.
func goKernel4x4[T Float](kc int, a []T, lda int, b []T, boffs []int32, bspan int, c []T, ldc int, alpha T, load bool, e epi[T]) {
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 T
	for p, o := range boffs[:kc] {
		ap := a[p*lda : p*lda+4 : p*lda+4]
		bp := b[o : o+4 : o+4]
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
	if !load {
		r := c[0:4:4]
		r[0], r[1], r[2], r[3] = alpha*c00, alpha*c01, alpha*c02, alpha*c03
		r = c[ldc : ldc+4 : ldc+4]
		r[0], r[1], r[2], r[3] = alpha*c10, alpha*c11, alpha*c12, alpha*c13
		r = c[2*ldc : 2*ldc+4 : 2*ldc+4]
		r[0], r[1], r[2], r[3] = alpha*c20, alpha*c21, alpha*c22, alpha*c23
		r = c[3*ldc : 3*ldc+4 : 3*ldc+4]
		r[0], r[1], r[2], r[3] = alpha*c30, alpha*c31, alpha*c32, alpha*c33
	} else {
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
	if e.active() {
		e.apply(c, ldc, 4, 4)
	}
}
