package dataset

import (
	"encoding/binary"
	"math/bits"
)

// The fast paths of ExtractU8. They give exactly the bytes of extractRow
// (the per-pixel reference): output pixel (i, j) of a channel is crop
// pixel (y, x) = (i, j) for the plain transforms and (y, x) = (j, i) for
// the transposed ones, with x mirrored (x -> s-1-x) under bit 0 and y
// mirrored under bit 1. They move whole 8-byte words; where a size is not
// a multiple of 8 the last word (or 8x8 block) of a row starts at s-8 and
// overlaps the one before it, rewriting the same values.

// extractPlane writes one channel of the crop c, out = s*s bytes, from
// plane (the channel's W*H bytes, row stride w).
func extractPlane(plane []uint8, w int, c Crop, out []uint8) {
	s := c.Size
	if c.Dihedral&4 != 0 {
		transposePlane(plane, w, c, out)
		return
	}
	for i := 0; i < s; i++ {
		y := i
		if c.Dihedral&2 != 0 {
			y = s - 1 - y
		}
		src := plane[(c.Y+y)*w+c.X:][:s]
		dst := out[i*s:][:s]
		if c.Dihedral&1 == 0 {
			copy(dst, src)
		} else {
			reverseBytes(dst, src)
		}
	}
}

// reverseBytes sets dst[j] = src[len(src)-1-j]; len(dst) == len(src).
func reverseBytes(dst, src []uint8) {
	n := len(src)
	dst = dst[:n]
	if n < 8 {
		for j := range dst {
			dst[j] = src[n-1-j]
		}
		return
	}
	// src[0:8] lands in dst[n-8:n], covering a tail shorter than a word.
	first := binary.LittleEndian.Uint64(src[:8])
	d := dst
	for len(src) >= 32 && len(d) >= 32 {
		k := len(src)
		a := binary.LittleEndian.Uint64(src[k-8:])
		b := binary.LittleEndian.Uint64(src[k-16:])
		e := binary.LittleEndian.Uint64(src[k-24:])
		f := binary.LittleEndian.Uint64(src[k-32:])
		binary.LittleEndian.PutUint64(d[0:], bits.ReverseBytes64(a))
		binary.LittleEndian.PutUint64(d[8:], bits.ReverseBytes64(b))
		binary.LittleEndian.PutUint64(d[16:], bits.ReverseBytes64(e))
		binary.LittleEndian.PutUint64(d[24:], bits.ReverseBytes64(f))
		src = src[:k-32]
		d = d[32:]
	}
	for len(src) >= 8 && len(d) >= 8 {
		k := len(src)
		a := binary.LittleEndian.Uint64(src[k-8:])
		binary.LittleEndian.PutUint64(d, bits.ReverseBytes64(a))
		src = src[:k-8]
		d = d[8:]
	}
	binary.LittleEndian.PutUint64(dst[n-8:], bits.ReverseBytes64(first))
}

// transposePlane writes one channel of a transposed crop: output row i is
// image column c.X+xm(i), output column j is image row c.Y+ym(j), with
// xm(i) = i (or s-1-i under bit 0) and ym(j) = j (or s-1-j under bit 1).
//
// It goes through the crop in bands of eight image rows (eight output
// columns); see transposeBand. Sizes under 8 go per pixel.
func transposePlane(plane []uint8, w int, c Crop, out []uint8) {
	s := c.Size
	flipX, flipY := c.Dihedral&1 != 0, c.Dihedral&2 != 0
	if s < 8 {
		for i := 0; i < s; i++ {
			x := i
			if flipX {
				x = s - 1 - x
			}
			for j := 0; j < s; j++ {
				y := j
				if flipY {
					y = s - 1 - y
				}
				out[i*s+j] = plane[(c.Y+y)*w+c.X+x]
			}
		}
		return
	}
	out = out[:s*s]
	// Image column x goes to output row x, or s-1-x: the row of the
	// crop's column 0 and the step from one column to the next.
	q0, dq := 0, s
	if flipX {
		q0, dq = (s-1)*s, -s
	}
	for yb := 0; ; yb += 8 {
		if yb > s-8 {
			if yb == s {
				break
			}
			yb = s - 8 // overlaps the band before, with the same values
		}
		// Image rows yb..yb+7 are output columns jb..jb+7, or jb+7..jb.
		jb := yb
		if flipY {
			jb = s - 8 - yb
		}
		off := (c.Y+yb)*w + c.X
		rows := [8][]uint8{
			plane[off:][:s],
			plane[off+w:][:s],
			plane[off+2*w:][:s],
			plane[off+3*w:][:s],
			plane[off+4*w:][:s],
			plane[off+5*w:][:s],
			plane[off+6*w:][:s],
			plane[off+7*w:][:s],
		}
		transposeBand(&rows, out, q0+jb, dq, flipY)
		if s%8 != 0 {
			// The last eight columns, overlapping the block before.
			for k := range rows {
				rows[k] = rows[k][s-8:]
			}
			transposeBand(&rows, out, q0+(s-8)*dq+jb, dq, flipY)
		}
	}
}

// transposeBand transposes the eight rows (of equal length) 8x8 block by
// 8x8 block, in uint64 registers: column x of the rows (its eight bytes,
// top row first, or last under rev) is stored at out[q+x*dq:][:8]. A
// length that is not a multiple of 8 leaves the last len%8 columns out.
func transposeBand(rows *[8][]uint8, out []uint8, q, dq int, rev bool) {
	if transposeBandFast(rows, out, q, dq, rev) {
		return
	}
	transposeBandGo(rows, out, q, dq, rev)
}

// transposeBandGo is transposeBand in plain Go.
func transposeBandGo(rows *[8][]uint8, out []uint8, q, dq int, rev bool) {
	r0 := rows[0]
	n := len(r0)
	r1, r2, r3 := rows[1][:n], rows[2][:n], rows[3][:n]
	r4, r5, r6, r7 := rows[4][:n], rows[5][:n], rows[6][:n], rows[7][:n]
	const m4, m2, m1 = 0x00000000ffffffff, 0x0000ffff0000ffff, 0x00ff00ff00ff00ff
	for x := 0; x+8 <= n; x += 8 {
		w0 := binary.LittleEndian.Uint64(r0[x : x+8])
		w1 := binary.LittleEndian.Uint64(r1[x : x+8])
		w2 := binary.LittleEndian.Uint64(r2[x : x+8])
		w3 := binary.LittleEndian.Uint64(r3[x : x+8])
		w4 := binary.LittleEndian.Uint64(r4[x : x+8])
		w5 := binary.LittleEndian.Uint64(r5[x : x+8])
		w6 := binary.LittleEndian.Uint64(r6[x : x+8])
		w7 := binary.LittleEndian.Uint64(r7[x : x+8])
		// Transpose the 8x8 bytes in place (word r = row r, byte k =
		// column k): swap the off-diagonal 4x4 blocks, then the 2x2
		// blocks within each 4x4, then the bytes within each 2x2. Written
		// out here, as a function it would not be inlined.
		var t uint64
		t = (w0>>32 ^ w4) & m4
		w4 ^= t
		w0 ^= t << 32
		t = (w1>>32 ^ w5) & m4
		w5 ^= t
		w1 ^= t << 32
		t = (w2>>32 ^ w6) & m4
		w6 ^= t
		w2 ^= t << 32
		t = (w3>>32 ^ w7) & m4
		w7 ^= t
		w3 ^= t << 32

		t = (w0>>16 ^ w2) & m2
		w2 ^= t
		w0 ^= t << 16
		t = (w1>>16 ^ w3) & m2
		w3 ^= t
		w1 ^= t << 16
		t = (w4>>16 ^ w6) & m2
		w6 ^= t
		w4 ^= t << 16
		t = (w5>>16 ^ w7) & m2
		w7 ^= t
		w5 ^= t << 16

		t = (w0>>8 ^ w1) & m1
		w1 ^= t
		w0 ^= t << 8
		t = (w2>>8 ^ w3) & m1
		w3 ^= t
		w2 ^= t << 8
		t = (w4>>8 ^ w5) & m1
		w5 ^= t
		w4 ^= t << 8
		t = (w6>>8 ^ w7) & m1
		w7 ^= t
		w6 ^= t << 8
		if rev {
			w0, w1, w2, w3 = bits.ReverseBytes64(w0), bits.ReverseBytes64(w1), bits.ReverseBytes64(w2), bits.ReverseBytes64(w3)
			w4, w5, w6, w7 = bits.ReverseBytes64(w4), bits.ReverseBytes64(w5), bits.ReverseBytes64(w6), bits.ReverseBytes64(w7)
		}
		binary.LittleEndian.PutUint64(out[q:q+8], w0)
		q += dq
		binary.LittleEndian.PutUint64(out[q:q+8], w1)
		q += dq
		binary.LittleEndian.PutUint64(out[q:q+8], w2)
		q += dq
		binary.LittleEndian.PutUint64(out[q:q+8], w3)
		q += dq
		binary.LittleEndian.PutUint64(out[q:q+8], w4)
		q += dq
		binary.LittleEndian.PutUint64(out[q:q+8], w5)
		q += dq
		binary.LittleEndian.PutUint64(out[q:q+8], w6)
		q += dq
		binary.LittleEndian.PutUint64(out[q:q+8], w7)
		q += dq
	}
}
