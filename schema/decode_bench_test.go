package schema

import "testing"

// BenchmarkDecodePaths compares Decode (in place) with the copying path it
// replaced, for each compression, with the message at an aligned address
// and at an odd one (as NATS delivers a payload after its headers). MB/s
// is of uncompressed message bytes, as in BenchmarkEncodeDecode.
func BenchmarkDecodePaths(b *testing.B) {
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
		enc, err := Encode(batch, o)
		if err != nil {
			b.Fatal(err)
		}
		for _, off := range []int{0, 3} {
			msg := placeAt(enc, off)
			for _, path := range []string{"copy", "inplace"} {
				b.Run(comp+"/off"+string(rune('0'+off))+"/"+path, func(b *testing.B) {
					b.SetBytes(int64(len(raw)))
					b.ReportAllocs()
					for b.Loop() {
						if _, err := decodeMsg(msg, DecodeOptions{}, path == "copy"); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
