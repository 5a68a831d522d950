package trainer

import (
	"bytes"
	"math"
	"path/filepath"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/model"
)

// Observer watches a run while it trains: a live dashboard (package
// dashboard) or a test. The trainer calls it from its training loop, one
// call at a time, so every call must return quickly (keep what it is
// given, do no I/O). What a call is given is the observer's to keep: the
// trainer neither reuses nor changes it afterwards.
type Observer interface {
	// Begin says that a run starts, or resumes, at step of steps. name is
	// the run's output directory, config its config's name.
	Begin(name, config string, step, steps int)
	// Report gives the values of a report, as the progress line and
	// train_log.csv get them (their names are the CSV's columns): the
	// losses averaged since the last report (g_adv, d, l1, noise_reg, ...),
	// the distribution monitor's measures (k_width_std, k_pair_ratio,
	// k_fill, k_hf_excess, ...), validation scores (val_psnr, val_ssim)
	// after a validation, step_s, wait_s and pair_age. NaN and infinite
	// values are left out.
	Report(step int, values map[string]float64)
	// Sample gives the values of one quantity of the learned distribution
	// at a report: "kernel_width" (sqrt(sigma_major sigma_minor) in HR px,
	// of the monitor's 64 kernels) and "noise_level" (the standard
	// deviation of the PDM's noise on each image of the step's batch).
	Sample(step int, quantity string, values []float64)
	// Warnings gives the distribution monitor's warnings in force at a
	// report (package diversity: "kind: explanation"), none when all is
	// well.
	Warnings(step int, active []string)
	// Picture gives a PNG picture made at step (each sample_every):
	// KernelsFile (a grid of sampled kernels), SamplesFile (fake LR above
	// real LR) and NoiseFile (the PDM's noise on the last PDM step's
	// batch).
	Picture(step int, name string, png []byte)
}

// NoiseFile is the picture an Observer gets of the PDM's noise: the clean
// LR crops of the last PDM step (blurred and downsampled), the noise the
// PDM added to each (mid-gray 0, black -3 and white +3 standard deviations
// of the shown noise), and the fake LR (their sum). It is not written to
// the output directory.
const NoiseFile = "noise.png"

// observeBegin tells the observer that Run starts.
func (t *Trainer) observeBegin() {
	if o := t.opt.Observer; o != nil {
		o.Begin(filepath.Clean(t.opt.Out), t.cfg.Name, t.step, t.cfg.Steps)
	}
}

// observeReport hands a report's values to the observer.
func (t *Trainer) observeReport(vals []kv) {
	o := t.opt.Observer
	if o == nil {
		return
	}
	m := make(map[string]float64, len(vals))
	for _, v := range vals {
		if !math.IsNaN(v.v) && !math.IsInf(v.v, 0) {
			m[v.k] = v.v
		}
	}
	o.Report(t.step, m)
}

// observePicture hands a picture to the observer as a PNG.
func (t *Trainer) observePicture(name string, im *imageio.Image) {
	o := t.opt.Observer
	if o == nil {
		return
	}
	var b bytes.Buffer
	if err := im.Encode(&b); err != nil {
		t.log.Warn("cannot encode a picture for the observer", "picture", name, "err", err)
		return
	}
	o.Picture(t.step, name, b.Bytes())
}

// noisePicture draws NoiseFile from the last PDM step's fake LR and noise,
// or returns nil when this step did not train PDM or the PDM adds no
// noise.
func (t *Trainer) noisePicture() *imageio.Image {
	c := t.cfg
	if t.n.noise == nil || !c.TrainsPDMAt(t.step-1) {
		return nil
	}
	n := min(8, c.Batch)
	size := 3 * c.LRCrop() * c.LRCrop()
	fake := model.Float32s(t.n.fake)[:n*size]
	noise := model.Float32s(t.n.noise)[:n*size]
	clean := make([]float32, len(fake))
	shown := make([]float32, len(noise))
	sd := rms(noise)
	if sd == 0 {
		sd = 1
	}
	for i, v := range noise {
		clean[i] = fake[i] - v
		shown[i] = float32(0.5 + 0.5*float64(v)/(3*sd))
	}
	return PatchRows([][]float32{clean, shown, fake}, n, c.LRCrop(), 4)
}
