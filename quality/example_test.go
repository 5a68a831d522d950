package quality_test

import (
	"fmt"

	"github.com/pdmflow/pdmflow/quality"
)

// The NTIRE 2018 scorer finds the shift between an SR image and a ground
// truth that is displaced by one pixel.
func ExampleCompare() {
	const h, w = 48, 48
	sr, gt := make([]uint8, 3*h*w), make([]uint8, 3*h*w)
	for c := range 3 {
		for y := range h {
			for x := range w {
				sr[(c*h+y)*w+x] = uint8((x*x + 3*y*y + 40*c) % 251)
				gt[(c*h+y)*w+x] = uint8(((x+1)*(x+1) + 3*y*y + 40*c) % 251) // gt(y, x) = sr(y, x+1)
			}
		}
	}
	plain, _ := quality.Compare(sr, gt, h, w, quality.Options{Border: 4})
	best, _ := quality.Compare(sr, gt, h, w, quality.Options{Border: 4, Shift: 2})
	fmt.Printf("aligned: PSNR %.1f dB; best over +-2: PSNR %v at %v, SSIM %.3f at %v\n", plain.PSNR, best.PSNR, best.PSNRShift, best.SSIM, best.SSIMShift)
	// Output:
	// aligned: PSNR 8.5 dB; best over +-2: PSNR +Inf at [0 1], SSIM 1.000 at [0 1]
}
