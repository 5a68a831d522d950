package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/trainer"
)

// newW2 prepares one joint training step of the real trainer
// (Shapes.TrainerConfig) on random images written to a temporary
// directory; each run is Trainer.BenchStep, data sampling included.
func newW2(s Shapes) (w *workload, err error) {
	cfg, err := s.TrainerConfig()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pdmflow-bench-w2-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	hrDir, lrDir := filepath.Join(dir, "hr"), filepath.Join(dir, "lr")
	r := rand.New(rand.NewPCG(2, 2))
	if err := writeImages(r, hrDir, 4, s.HR+s.HR/2); err != nil {
		return nil, err
	}
	if err := writeImages(r, lrDir, 4, s.LR()+s.LR()/2); err != nil {
		return nil, err
	}
	t, err := trainer.New(cfg, trainer.Options{HRDir: hrDir, LRDir: lrDir, Out: filepath.Join(dir, "out")})
	if err != nil {
		return nil, err
	}
	// Every step of a joint run does the same work: count step 0's.
	flops := 3 * t.StepConvFLOPs(0)
	return &workload{
		phases: []phase{{name: "step", fn: timed(t.BenchStep)}},
		pairs:  s.Batch,
		flops:  flops,
		close:  func() { t.Close(); os.RemoveAll(dir) },
	}, nil
}

// writeImages writes n random side x side PNGs into dir.
func writeImages(r *rand.Rand, dir string, n, side int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	for i := 0; i < n; i++ {
		pix := make([]float32, 3*side*side)
		for j := range pix {
			pix[j] = r.Float32()
		}
		if err := imageio.FromPlanarFloat(side, side, pix).Save(filepath.Join(dir, fmt.Sprintf("img%d.png", i))); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}
