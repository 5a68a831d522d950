package kernels

import "fmt"

// PixelShuffle rearranges x of shape N x C*r*r x H x W into y of shape
// N x C x H*r x W*r as PyTorch's PixelShuffle(r):
//
//	y[n, c, h*r+i, w*r+j] = x[n, c*r*r + i*r + j, h, w]
//
// The formula is its own reference; it is a permutation, tested against
// PyTorch's channel order and against PixelUnshuffle.
func PixelShuffle[T Float](n, c, h, w, r int, y, x []T) {
	if len(x) != n*c*r*r*h*w || len(y) != len(x) {
		panic(fmt.Sprintf("kernels: PixelShuffle: %d and %d elements for %dx%dx%dx%d r=%d", len(x), len(y), n, c*r*r, h, w, r))
	}
	wr := w * r
	for b := 0; b < n; b++ {
		for ch := 0; ch < c; ch++ {
			out := y[(b*c+ch)*h*r*wr:][:h*r*wr]
			for i := 0; i < r; i++ {
				for j := 0; j < r; j++ {
					in := x[((b*c+ch)*r*r+i*r+j)*h*w:][:h*w]
					for hh := 0; hh < h; hh++ {
						dst := out[(hh*r+i)*wr+j:]
						src := in[hh*w : (hh+1)*w]
						for ww, v := range src {
							dst[ww*r] = v
						}
					}
				}
			}
		}
	}
}

// PixelUnshuffle is the inverse of PixelShuffle (and its gradient): it
// writes x of shape N x C*r*r x H x W from y of shape N x C x H*r x W*r.
func PixelUnshuffle[T Float](n, c, h, w, r int, x, y []T) {
	if len(x) != n*c*r*r*h*w || len(y) != len(x) {
		panic(fmt.Sprintf("kernels: PixelUnshuffle: %d and %d elements for %dx%dx%dx%d r=%d", len(x), len(y), n, c*r*r, h, w, r))
	}
	wr := w * r
	for b := 0; b < n; b++ {
		for ch := 0; ch < c; ch++ {
			in := y[(b*c+ch)*h*r*wr:][:h*r*wr]
			for i := 0; i < r; i++ {
				for j := 0; j < r; j++ {
					out := x[((b*c+ch)*r*r+i*r+j)*h*w:][:h*w]
					for hh := 0; hh < h; hh++ {
						src := in[(hh*r+i)*wr+j:]
						dst := out[hh*w : (hh+1)*w]
						for ww := range dst {
							dst[ww] = src[ww*r]
						}
					}
				}
			}
		}
	}
}
