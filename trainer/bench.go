package trainer

import (
	"context"
	"errors"

	"github.com/pdmflow/pdmflow/model"
)

// This file exposes single training steps to the benchmarks of package
// internal/bench (workload W2 of docs/design.md). Training runs go through
// Run, never through these.

// BenchStep runs one training step (pdm-spec §5: the PDM, discriminator and
// SR steps the config has at the current step, with their optimizer
// updates) and counts it, without what Run does around a step: no progress
// line, CSV row, picture, checkpoint or weights publish. It is for
// benchmarks only, and refuses a trainer that reads the pair stream.
func (t *Trainer) BenchStep(ctx context.Context) error {
	if t.opt.Stream != nil {
		return errors.New("trainer: BenchStep does not read the pair stream")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.trainStep(ctx); err != nil {
		return err
	}
	t.step++
	return nil
}

// StepConvFLOPs is the number of floating-point operations (2 x
// multiply-adds) of the forward convolutions of the graphs the training
// step numbered step (0-based) runs; model.Graph.ConvFLOPs counts them.
// The gradient convolutions are not included: benchmarks count a training
// step as 3x this (forward, dX and dW).
func (t *Trainer) StepConvFLOPs(step int) int64 {
	c := t.cfg
	var n int64
	switch {
	case c.TrainsPDMAt(step):
		n += convFLOPs(t.gPDM) + convFLOPs(t.gD)
		if c.TrainsSR(step) {
			n += convFLOPs(t.gAvg) // nil without a moving average
		}
	case c.TrainsPDM():
		n += convFLOPs(t.gFake)
	}
	if c.TrainsSR(step) {
		n += convFLOPs(t.gSR) + convFLOPs(t.gD2) // gD2 nil without PDM-SRGAN
	}
	return n
}

func convFLOPs(g *model.Graph) int64 {
	if g == nil {
		return 0
	}
	return g.ConvFLOPs()
}
