package trainer

import (
	"math"
	"math/rand/v2"
	"strings"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/diversity"
	"github.com/pdmflow/pdmflow/model"
)

// monitorKernels is how many kernels the distribution monitor draws at
// each report.
const monitorKernels = 64

// observeDiversity measures the distribution producers sample from (the
// PDM handed on, inference BatchNorm) at a report: kernels of fresh
// latents, drawn from a generator keyed by the step so that a resumed or
// replayed run measures the same, and the noise levels of the step's batch.
// It logs the monitor's warnings as they begin and, with a truth file,
// compares with it. The values go to the progress line, the CSV and the
// metrics; the kernel widths, noise levels and warnings to the Observer.
func (t *Trainer) observeDiversity() []kv {
	if t.PDM == nil || t.cfg.PDM.Kernel.Spatial || t.mon == nil {
		return nil
	}
	p := t.OutPDM()
	r := rand.New(rand.NewPCG(t.cfg.Seed^0x6d6f6e69746f72, uint64(t.step)))
	zk, _ := p.SampleLatents(r, tensor.Float32, monitorKernels, 1, 1)
	k, err := runKernels(p, zk)
	if err != nil {
		t.log.Warn("cannot sample kernels for the distribution monitor", "step", t.step, "err", err)
		return nil
	}
	var levels []float64
	if t.n.noise != nil {
		noise := model.Float32s(t.n.noise)
		per := len(noise) / t.cfg.Batch
		for i := 0; i < t.cfg.Batch; i++ {
			levels = append(levels, rms(noise[i*per:(i+1)*per]))
		}
	}
	ks, scale := t.cfg.PDM.Kernel.Size, t.cfg.Scale()
	h := t.mon.Observe(t.step, k, monitorKernels, ks, scale, zk.Data().([]float32), p.Cfg.Kernel.NC, levels)
	active := map[string]bool{}
	for _, w := range h.Warnings {
		kind, _, _ := strings.Cut(w, ":")
		active[kind] = true
		if !t.monWarned[kind] {
			t.log.Warn("degradation distribution: "+w, "step", t.step)
			t.m.DiversityWarnings.WithLabelValues(kind).Inc()
		}
	}
	t.monWarned = active
	var learned diversity.Sample
	if t.truth != nil || t.opt.Observer != nil {
		learned = diversity.FromKernels(k, monitorKernels, ks, scale)
	}
	if o := t.opt.Observer; o != nil {
		o.Warnings(t.step, append([]string(nil), h.Warnings...))
		o.Sample(t.step, diversity.Width, learned[diversity.Width])
		if levels != nil {
			o.Sample(t.step, diversity.Noise, append([]float64(nil), levels...))
		}
	}
	out := []kv{{"k_width", h.WidthMean}, {"k_width_std", h.WidthStd}, {"k_aniso_std", h.AnisoStd},
		{"k_pair_ratio", h.PairRatio}, {"k_fill", h.Fill}, {"k_hf_excess", h.HFExcess}}
	if levels != nil {
		out = append(out, kv{"noise_level_std", h.NoiseStd})
	}
	if t.truth != nil {
		if levels != nil {
			learned[diversity.Noise] = levels
		}
		rep := diversity.Compare(learned, t.truth)
		w, n := rep.Get(diversity.Width), rep.Get(diversity.Noise)
		out = append(out, kv{"w1_width", w.W1}, kv{"spread_width", w.SpreadRatio})
		if n.Quantity != "" {
			out = append(out, kv{"w1_noise", n.W1}, kv{"spread_noise", n.SpreadRatio})
		}
	}
	for _, v := range out {
		if !math.IsNaN(v.v) {
			t.m.Diversity.WithLabelValues(v.k).Set(v.v)
		}
	}
	return out
}
