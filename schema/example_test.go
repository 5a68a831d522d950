package schema_test

import (
	"fmt"

	"github.com/pdmflow/pdmflow/schema"
)

// A producer encodes a batch of pairs into one message; a trainer decodes
// and validates it.
func Example() {
	h := schema.Header{Scale: 4, HRH: 8, HRW: 8, LRH: 2, LRW: 2, Degradation: schema.DegradationBicubic}
	b := &schema.Batch{Header: h}
	for i := range uint32(2) {
		b.Pairs = append(b.Pairs, schema.Pair{
			SampleID: schema.FormatSampleID("r1", "p0", 7, i), RunID: "r1", ProducerID: "p0", BatchSeq: 7, Index: i,
			Seed: 42 + uint64(i), SourceImage: "img001.png", CropW: 8, CropH: 8,
			XRef: make([]uint8, 3*8*8), YRef: make([]float32, 3*2*2),
		})
	}
	msg, err := schema.Encode(b, schema.EncodeOptions{})
	if err != nil {
		panic(err)
	}
	got, err := schema.Decode(msg, schema.DecodeOptions{})
	if err != nil {
		panic(err)
	}
	id, err := schema.ParseSampleID(got.Pairs[1].SampleID)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(got.Pairs), "pairs,", got.Degradation, "x", got.Scale, "- second:", id.Run, id.Producer, id.BatchSeq, id.Index)

	// A message cut short is an error naming what is wrong, never a panic.
	_, err = schema.Decode(msg[:len(msg)/2], schema.DecodeOptions{})
	fmt.Println(err != nil)
	// Output:
	// 2 pairs, bicubic x 4 - second: r1 p0 7 1
	// true
}
