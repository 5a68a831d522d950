package schema

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchBatch is a realistic batch: 32 pairs of HR 128x128 at scale 4
// (y_ref 3x32x32 float32) with 21x21 kernels. The images are smooth with
// some noise, so compression sees something like real image content.
func benchBatch() *Batch {
	const rows, hr, scale, k = 32, 128, 4, 21
	rng := rand.New(rand.NewPCG(7, 7))
	b := randomBatch(rng, rows, scale, hr, hr, k, DegradationPDM)
	lr := hr / scale
	for i := range b.Pairs {
		p := &b.Pairs[i]
		fx, fy := rng.Float64()*0.1, rng.Float64()*0.1
		for c := 0; c < 3; c++ {
			for y := 0; y < hr; y++ {
				for x := 0; x < hr; x++ {
					v := 128 + 60*float64((x*int(fx*100)+y*int(fy*100)+c*40)%256)/256 + rng.NormFloat64()*2
					p.XRef[(c*hr+y)*hr+x] = uint8(max(0, min(255, v)))
				}
			}
			for y := 0; y < lr; y++ {
				for x := 0; x < lr; x++ {
					j := (c*lr+y)*lr + x
					p.YRef[j] = float32(p.XRef[(c*hr+y*scale)*hr+x*scale])/255 + float32(rng.NormFloat64()*0.02)
				}
			}
		}
	}
	return b
}

// BenchmarkEncodeDecode reports MB/s of uncompressed message bytes (the
// same for every compression), and the message size as msg_bytes.
func BenchmarkEncodeDecode(b *testing.B) {
	batch := benchBatch()
	raw, err := Encode(batch, EncodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, comp := range []string{"none", "lz4", "zstd"} {
		o := EncodeOptions{Compression: comp}
		if comp == "none" {
			o.Compression = ""
		}
		msg, err := Encode(batch, o)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("encode/"+comp, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(batch, o); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(msg)), "msg_bytes")
		})
		b.Run("decode/"+comp, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(msg, DecodeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(msg)), "msg_bytes")
		})
		// Decode in place against the copying path it replaced, with the
		// message at an aligned address and at an odd one (as NATS
		// delivers a payload after its headers).
		for _, off := range []int{0, 3} {
			at := placeAt(msg, off)
			for _, path := range []string{"copy", "inplace"} {
				b.Run(fmt.Sprintf("decode/%s/off%d/%s", comp, off, path), func(b *testing.B) {
					b.SetBytes(int64(len(raw)))
					b.ReportAllocs()
					for b.Loop() {
						if _, err := decodeMsg(at, DecodeOptions{}, path == "copy"); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
