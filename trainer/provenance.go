package trainer

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
)

// RunFile records a run's provenance in its output directory: every start
// of the trainer (the first and each resume) with the pdmflow version and
// commit, the Go version, the GEMM kernel and threads it computed with, the
// step it started from and the seed; config.yaml beside it is the full
// resolved config.
const RunFile = "run.json"

// RunStart is one start of a run.
type RunStart struct {
	Time       time.Time `json:"time"`
	Step       int       `json:"step"`
	Version    string    `json:"version"`
	GoVersion  string    `json:"go_version"`
	GemmKernel string    `json:"gemm_kernel"`
	Threads    int       `json:"threads"`
	Seed       uint64    `json:"seed"`
	Streaming  bool      `json:"streaming"`
	// InitSR is the pretrained SR weights file the run started from
	// (Options.InitSR; not on a start that resumed), VGG the perceptual
	// loss's VGG19 weights.
	InitSR string `json:"init_sr,omitempty"`
	VGG    string `json:"vgg,omitempty"`
}

// RunRecord is RunFile's content.
type RunRecord struct {
	Config string     `json:"config"` // its name; the whole of it is config.yaml
	Starts []RunStart `json:"starts"`
}

// recordStart appends this start to the output directory's RunFile.
func (t *Trainer) recordStart() error {
	path := filepath.Join(t.opt.Out, RunFile)
	var rec RunRecord
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("trainer: %s: %w (move it away to start a new record)", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("trainer: %w", err)
	}
	rec.Config = t.cfg.Name
	rec.Starts = append(rec.Starts, RunStart{Time: time.Now().UTC(), Step: t.step, Version: t.opt.Version, GoVersion: runtime.Version(),
		GemmKernel: kernels.GemmKernel(), Threads: kernels.Workers(), Seed: t.cfg.Seed, Streaming: t.opt.Stream != nil})
	if t.opt.InitSR != "" && !t.resumed {
		rec.Starts[len(rec.Starts)-1].InitSR = t.opt.InitSR
	}
	if t.vgg != nil {
		rec.Starts[len(rec.Starts)-1].VGG = cmp.Or(t.opt.VGG, t.cfg.VGG)
	}
	b, _ = json.MarshalIndent(rec, "", "  ")
	if err := model.WriteFileAtomic(path, b); err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	return nil
}
