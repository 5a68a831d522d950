package bench

import (
	"context"
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/model"
)

// newW1 prepares the producer's PDM forward pass: a model.Sampler (the
// producer's batched inference, BatchNorm on running statistics) on a
// fixed batch of random HR crops, with fresh latents drawn every run as
// pdm_ref.py draws them with torch.randn.
func newW1(s Shapes) (*workload, error) {
	p, err := model.NewPDM(s.PDMConfig(), tensor.Float32, 1)
	if err != nil {
		return nil, err
	}
	flops, err := pdmForwardFLOPs(p, s)
	if err != nil {
		return nil, err
	}
	sm, err := p.NewSampler(s.Batch, s.HR, s.HR)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(1, 1))
	hr := make([]float32, s.Batch*3*s.HR*s.HR)
	for i := range hr {
		hr[i] = r.Float32()
	}
	rands := make([]*rand.Rand, s.Batch)
	run := 0
	step := func(ctx context.Context) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range rands {
			rands[i] = rand.New(rand.NewPCG(uint64(run), uint64(i)))
		}
		run++
		_, err := sm.Run(hr, rands)
		return err
	}
	return &workload{phases: []phase{{name: "forward", fn: timed(step)}}, pairs: s.Batch, flops: flops, close: sm.Close}, nil
}

// pdmForwardFLOPs counts the convolution FLOPs of p's forward pass on a
// batch of shapes s, in a graph built as the Sampler builds its own and
// never run.
func pdmForwardFLOPs(p *model.PDM, s Shapes) (int64, error) {
	g := model.NewGraph(tensor.Float32)
	defer g.Close()
	zk, zn := p.LatentShapes(s.Batch, s.LR(), s.LR())
	var znN *G.Node
	if zn != nil {
		znN = g.Input("zn", zn...)
	}
	p.Forward(g, g.Input("hr", s.Batch, 3, s.HR, s.HR), g.Input("zk", zk...), znN, false)
	if err := g.Err(); err != nil {
		return 0, fmt.Errorf("bench: counting W1's FLOPs: %w", err)
	}
	return g.ConvFLOPs(), nil
}
