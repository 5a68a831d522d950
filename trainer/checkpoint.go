package trainer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pdmflow/pdmflow/internal/safetensors"
	"github.com/pdmflow/pdmflow/model"
)

// Files a run writes into its output directory.
const (
	CheckpointFile = "checkpoint.safetensors" // everything needed to resume
	PDMFile        = "pdm.safetensors"        // the degradation model (for degrade)
	SRFile         = "sr.safetensors"         // the SR network (for sr)
	KernelsFile    = "kernels.png"            // latest grid of sampled kernels
	SamplesFile    = "lr_samples.png"         // latest fake LR next to real LR
	LogFile        = "train_log.csv"
)

const (
	metaStep       = "pdmflow.step"
	metaEMAUpdates = "pdmflow.ema.updates"
	metaBestPSNR   = "pdmflow.val.best_psnr"
	metaBestStep   = "pdmflow.val.best_step"
	emaPrefix      = "ema."
)

// Save writes the checkpoint (all networks, BatchNorm statistics, optimizer
// moments and step counts, the step) and the latest PDM and SR weights.
// Each file is replaced atomically.
func (t *Trainer) Save() error {
	var extra []safetensors.Tensor
	meta := map[string]string{metaStep: strconv.Itoa(t.step), metaPublished: strconv.Itoa(t.published)}
	if len(t.versionSteps) > 0 {
		vs, _ := json.Marshal(t.versionSteps)
		meta[metaVersionSteps] = string(vs)
	}
	if !math.IsInf(t.bestPSNR, -1) {
		meta[metaBestPSNR] = strconv.FormatFloat(t.bestPSNR, 'g', -1, 64)
		meta[metaBestStep] = strconv.Itoa(t.bestStep)
	}
	if t.ema != nil {
		meta[metaEMAUpdates] = strconv.Itoa(t.ema.Updates)
		for _, m := range t.PDMAvg.Modules() {
			for _, p := range m.Params() {
				extra = append(extra, safetensors.FromFloat32s(emaPrefix+p.Name, p.Value.Shape(), p.Float32Data()))
			}
		}
	}
	if t.cons != nil {
		sm, st, err := streamState(t.cons.Snapshot())
		if err != nil {
			return err
		}
		for k, v := range sm {
			meta[k] = v
		}
		extra = append(extra, st...)
	}
	for name, o := range t.optimizers() {
		extra = append(extra, o.StateTensors("optim."+name)...)
		meta["pdmflow.optim."+name+".steps"] = strconv.Itoa(o.Steps)
	}
	b, err := model.EncodeWeights(model.KindCheckpoint, t.cfg, meta, extra, t.modules()...)
	if err != nil {
		return err
	}
	out := t.opt.Out
	if err := model.WriteFileAtomic(filepath.Join(out, CheckpointFile), b); err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	if t.PDM != nil {
		if err := model.SavePDM(filepath.Join(out, PDMFile), t.OutPDM()); err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
	}
	if err := model.SaveSR(filepath.Join(out, SRFile), t.SR); err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	t.log.Debug("checkpoint saved", "step", t.step, "dir", out)
	return nil
}

// optimizers names the run's optimizers (a map is fine: names are unique
// and each is saved under its own prefix).
func (t *Trainer) optimizers() map[string]*model.Adam {
	m := map[string]*model.Adam{"sr": t.optSR}
	if t.optPDM != nil {
		m["pdm"] = t.optPDM
		m["disc"] = t.optD
	}
	if t.optD2 != nil {
		m["disc2"] = t.optD2
	}
	return m
}

// resumable strips what may change between a run and its resumption, or
// what the run does not use.
func resumable(c Config, streamed bool) Config {
	c.Name = "" // a label
	c.Steps = 0
	c.LogEvery, c.SampleEvery, c.CheckpointEvery = 0, 0, 0
	c.VGG = "" // where the weights are, not what they are
	if !c.TrainsPDM() {
		// What a run that trains no PDM does not use (so that SR runs of
		// configs that differ only in their PDM can share a checkpoint).
		c.PDM, c.Disc = model.PDMConfig{}, model.DiscConfig{}
		c.Loss = LossConfig{L1: c.Loss.L1, Percep: c.Loss.Percep, SRAdv: c.Loss.SRAdv}
		c.PDMEMA, c.PDMEMAKernelOnly, c.DiscLRScale = 0, false, 0
		c.Regime, c.Stage1Steps = "", 0
		// No weights to publish, hence none whose age the lag bounds.
		c.PublishEvery, c.LagBudget = 0, 0
	}
	if !streamed {
		// What only a trainer fed by the stream uses (so that the direct
		// runs of configs that differ only there can share a checkpoint).
		c.StreamPool, c.PublishEvery, c.LagBudget = 0, 0, 0
	}
	return c
}

// restore loads the output directory's checkpoint if there is one. The
// checkpoint's config must equal this run's in what the run uses: all but
// the name, the number of steps and the reporting intervals (and, for a
// run that trains no PDM, the PDM's settings; for one not fed by the
// stream, the stream's).
func (t *Trainer) restore() error {
	path := filepath.Join(t.opt.Out, CheckpointFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	w, err := model.ReadWeightsFile(path, model.KindCheckpoint)
	if err != nil {
		return fmt.Errorf("trainer: cannot resume: %w (move the file away to start afresh)", err)
	}
	var saved Config
	if err := w.Config(&saved); err != nil {
		return fmt.Errorf("trainer: cannot resume: %w", err)
	}
	streamed := t.opt.Stream != nil
	a, _ := json.Marshal(resumable(saved, streamed))
	b, _ := json.Marshal(resumable(*t.cfg, streamed))
	if !bytes.Equal(a, b) {
		return fmt.Errorf("trainer: %s holds a checkpoint of a different config (%q); use another --out or remove it to start afresh", t.opt.Out, saved.Name)
	}
	step, err := strconv.Atoi(w.File.Metadata[metaStep])
	if err != nil || step < 0 {
		return fmt.Errorf("trainer: %s: bad step %q", path, w.File.Metadata[metaStep])
	}
	if err := w.Load(t.modules()...); err != nil {
		return fmt.Errorf("trainer: cannot resume: %w", err)
	}
	for name, o := range t.optimizers() {
		steps, err := strconv.Atoi(w.File.Metadata["pdmflow.optim."+name+".steps"])
		if err != nil {
			return fmt.Errorf("trainer: %s: optimizer %s: bad step count", path, name)
		}
		if err := o.LoadState(w.File, "optim."+name, steps); err != nil {
			return fmt.Errorf("trainer: cannot resume: %w", err)
		}
	}
	if t.ema != nil {
		if t.ema.Updates, err = strconv.Atoi(w.File.Metadata[metaEMAUpdates]); err != nil {
			return fmt.Errorf("trainer: %s: bad %s", path, metaEMAUpdates)
		}
		for _, m := range t.PDMAvg.Modules() {
			for _, p := range m.Params() {
				ts, ok := w.File.Get(emaPrefix + p.Name)
				if !ok {
					return fmt.Errorf("trainer: %s: no %s%s", path, emaPrefix, p.Name)
				}
				v, err := ts.Float32s()
				if err != nil || len(v) != p.Value.Shape().TotalSize() {
					return fmt.Errorf("trainer: %s: bad %s%s", path, emaPrefix, p.Name)
				}
				copy(p.Value.Data().([]float32), v)
			}
		}
	}
	if t.opt.Stream != nil {
		if t.streamRestored, err = loadStreamState(w.File); err != nil {
			return err
		}
	}
	if b, ok := w.File.Metadata[metaBestPSNR]; ok {
		if t.bestPSNR, err = strconv.ParseFloat(b, 64); err != nil {
			return fmt.Errorf("trainer: %s: bad %s %q", path, metaBestPSNR, b)
		}
		t.bestStep, _ = strconv.Atoi(w.File.Metadata[metaBestStep])
	}
	if vs, ok := w.File.Metadata[metaVersionSteps]; ok {
		if err := json.Unmarshal([]byte(vs), &t.versionSteps); err != nil {
			return fmt.Errorf("trainer: %s: bad %s: %w", path, metaVersionSteps, err)
		}
	}
	t.step = step
	t.resumed = true
	t.log.Info("resuming from checkpoint", "path", path, "step", step, "stream_position", t.streamRestored.Position, "pool", len(t.streamRestored.Pool))
	return nil
}
