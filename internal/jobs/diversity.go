package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/pdmflow/pdmflow/diversity"
	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/internal/plot"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/trainer"
)

// DiversityOptions configure Diversity.
type DiversityOptions struct {
	Weights string // PDM weights (pdm.safetensors)
	Truth   string // truth file of the target set (truth.json written by synth)
	// HR images to degrade for the noise levels (none: kernels only). The
	// PDM's noise depends on the image; its level is measured on crops of
	// these, as producers degrade them.
	HR      string
	HRCrop  int    // side of the HR crops (default 128)
	Samples int    // kernels (and images) to draw (default 512)
	Seed    uint64 // of the latents and crops
	Out     string // directory for diversity.json, diversity.md and diversity.png ("": none)
}

// DiversityResult is the comparison and what it was made of.
type DiversityResult struct {
	Dist    string            `json:"dist"`
	Weights string            `json:"weights"`
	Samples int               `json:"samples"`
	Report  *diversity.Report `json:"report"`
	Learned diversity.Sample  `json:"-"`
	True    diversity.Sample  `json:"-"`
}

// SamplePDM draws n degradations from p: kernels from fresh latents and,
// when images is not nil, the noise level of p's noise on n crops of
// images (hrCrop x hrCrop), degraded in batches on the CPU as a producer
// degrades them.
func SamplePDM(p *model.PDM, images *dataset.Dataset, hrCrop, n int, seed uint64) (diversity.Sample, error) {
	r := rand.New(rand.NewPCG(seed, 0xd1e5))
	k, err := trainer.SampleKernels(p, r, n)
	if err != nil {
		return nil, err
	}
	ks := p.Cfg.Kernel.Size
	s := diversity.FromKernels(k, n, ks, p.Cfg.Scale)
	if images == nil || p.Cfg.Noise.Mode == model.NoiseOff {
		return s, nil
	}
	const batch = 16
	sm, err := model.CPU.NewPDMSampler(p, batch, hrCrop, hrCrop)
	if err != nil {
		return nil, err
	}
	defer sm.Close()
	lr := p.LRSize(hrCrop)
	zk, zn := p.LatentShapes(batch, lr, lr)
	b := &model.SampleBatch{X: make([][]uint8, batch), Y: make([][]float32, batch),
		ZK: make([]float32, prod(zk)), NoiseMean: make([]float32, batch), NoiseStd: make([]float32, batch)}
	if zn != nil {
		b.ZN = make([]float32, prod(zn))
	}
	for i := range batch {
		b.X[i], b.Y[i] = make([]uint8, 3*hrCrop*hrCrop), make([]float32, 3*lr*lr)
	}
	for done := 0; done < n; done += batch {
		for i := range batch {
			images.ExtractU8(images.Draw(r, hrCrop), b.X[i])
			var zni []float32
			if b.ZN != nil {
				zni = b.ZN[i*len(b.ZN)/batch : (i+1)*len(b.ZN)/batch]
			}
			p.DrawLatents(r, b.ZK[i*len(b.ZK)/batch:(i+1)*len(b.ZK)/batch], zni)
		}
		if err := sm.Run(b); err != nil {
			return nil, err
		}
		for i := 0; i < batch && done+i < n; i++ {
			s[diversity.Noise] = append(s[diversity.Noise], float64(b.NoiseStd[i]))
		}
	}
	return s, nil
}

func prod(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}

// Diversity compares a PDM's sampled distribution with a target set's
// truth: mean, spread and Wasserstein-1 distance of each kernel quantity
// and of the noise level, as a report and histograms side by side.
func Diversity(o DiversityOptions) (*DiversityResult, error) {
	if o.Samples <= 0 {
		o.Samples = 512
	}
	if o.HRCrop <= 0 {
		o.HRCrop = 128
	}
	if o.Weights == "" || o.Truth == "" {
		return nil, errors.New("jobs: diversity needs PDM weights and a truth file")
	}
	p, err := model.LoadPDM(o.Weights)
	if err != nil {
		return nil, err
	}
	if p.Cfg.Kernel.Spatial {
		return nil, errors.New("jobs: diversity of spatially variant kernels is not measured (one kernel per pixel has no per-image truth to compare)")
	}
	truth, err := diversity.ReadTruth(o.Truth)
	if err != nil {
		return nil, err
	}
	if truth.Scale != p.Cfg.Scale {
		return nil, fmt.Errorf("jobs: the PDM is x%d, the target set x%d", p.Cfg.Scale, truth.Scale)
	}
	var images *dataset.Dataset
	if o.HR != "" {
		if images, err = dataset.Load(o.HR, o.HRCrop, nil); err != nil {
			return nil, err
		}
	}
	learned, err := SamplePDM(p, images, o.HRCrop, o.Samples, o.Seed)
	if err != nil {
		return nil, err
	}
	res := &DiversityResult{Dist: truth.Dist, Weights: o.Weights, Samples: o.Samples, Learned: learned, True: truth.Sample()}
	res.Report = diversity.Compare(learned, res.True)
	if o.Out == "" {
		return res, nil
	}
	if err := res.Write(o.Out); err != nil {
		return nil, err
	}
	return res, nil
}

// Write saves the result in dir: diversity.json, diversity.md and
// diversity.png (a histogram per quantity, learned against true).
func (r *DiversityResult) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "diversity.json"), b, 0o644); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	md := fmt.Sprintf("Learned (%s, %d samples) against the truth of %q:\n\n%s", r.Weights, r.Samples, r.Dist, r.Report.Markdown())
	if err := os.WriteFile(filepath.Join(dir, "diversity.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	var panels []plot.Panel
	for _, q := range diversity.Quantities {
		a, t := r.Learned[q], r.True[q]
		if len(a) == 0 && len(t) == 0 {
			continue
		}
		title := q
		if st := r.Report.Get(q); st.Quantity != "" {
			title = fmt.Sprintf("%s  W1 %.3g  spread %.2fx", q, st.W1, st.SpreadRatio)
		}
		panels = append(panels, plot.Panel{Title: title, A: finite(a), B: finite(t), LabelA: "learned", LabelB: "true"})
	}
	return plot.Histograms(panels).Save(filepath.Join(dir, "diversity.png"))
}

func finite(v []float64) []float64 {
	var out []float64
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	return out
}
