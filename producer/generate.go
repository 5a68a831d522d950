package producer

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"

	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/schema"
)

// Degradations a producer can apply.
const (
	DegradePDM      = "pdm"      // the current PDM weights
	DegradeBicubic  = "bicubic"  // bicubic downsampling (MATLAB imresize), the usual baseline
	DegradeGaussian = "gaussian" // a random isotropic Gaussian blur per sample, then PDM's subsampling
)

// SampleSeed derives the seed of one sample from the run's seed, the
// producer, the batch and the row: a pure function of its arguments (the
// first 8 bytes of a SHA-256 over them), so any sample can be drawn again
// without replaying anything else, whatever ran before it.
func SampleSeed(runSeed uint64, producer string, batchSeq uint64, index uint32) uint64 {
	h := sha256.New()
	var b [8]byte
	h.Write([]byte("pdmflow/sample/v1\x00"))
	binary.LittleEndian.PutUint64(b[:], runSeed)
	h.Write(b[:])
	h.Write([]byte(producer))
	h.Write([]byte{0})
	binary.LittleEndian.PutUint64(b[:], batchSeq)
	h.Write(b[:])
	binary.LittleEndian.PutUint32(b[:4], index)
	h.Write(b[:4])
	return binary.LittleEndian.Uint64(h.Sum(nil))
}

// SampleRand is the generator of one sample. What it draws, in order, is
// the contract that makes samples regenerable: the crop (image, x, y,
// dihedral transform, as dataset.Sample draws them), then the
// degradation's own randomness (PDM: z_k then z_n as model.PDM.Degrade
// draws them; gaussian: the kernel width).
func SampleRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Gaussian baseline: the blur's standard deviation is uniform in this range
// (HR pixels).
const (
	gaussSigmaMin = 0.6
	gaussSigmaMax = 3.0
)

// generator turns crops into pairs with one degradation.
type generator struct {
	degradation string
	hrSize      int
	scale       int
	kernelSize  int // gaussian: side of its kernels
	pdm         *model.PDM
	sampler     *model.Sampler
	n           int // batch size the sampler was built for

	hrBuf []float32
	lrBuf []float32
	kBuf  []float32
}

func (g *generator) close() {
	if g.sampler != nil {
		g.sampler.Close()
		g.sampler = nil
	}
}

func (g *generator) lrSize() int { return (g.hrSize-1)/g.scale + 1 }

func (g *generator) header() schema.Header {
	h := schema.Header{Scale: g.scale, HRH: g.hrSize, HRW: g.hrSize, LRH: g.lrSize(), LRW: g.lrSize(), Degradation: g.degradation}
	switch g.degradation {
	case DegradePDM:
		if !g.pdm.Cfg.Kernel.Spatial {
			h.KernelSize = g.pdm.Cfg.Kernel.Size
		}
	case DegradeGaussian:
		h.KernelSize = g.kernelSize
	}
	return h
}

// batchMeta is what a batch's rows share besides the header.
type batchMeta struct {
	run, producer  string
	runSeed        uint64
	batchSeq       uint64
	weightsVersion uint64
	weightsSHA     string
}

// generate draws n samples of batch m from images and lays them out as an
// uncompressed message, in buf when it is large enough (see
// generateSeeds).
func (g *generator) generate(images *dataset.Dataset, n int, m batchMeta, buf []byte) (*schema.Batch, []byte, error) {
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = SampleSeed(m.runSeed, m.producer, m.batchSeq, uint32(i))
	}
	return g.generateSeeds(images, seeds, m, buf)
}

// generateSeeds draws the samples of batch m with the given per-row seeds
// straight into their uncompressed message (schema.NewMessage, in buf when
// it is large enough): each crop is cut into its x_ref and, for bicubic,
// resized from there into its y_ref, one sample per core at a time. It
// returns the batch, whose x_ref, y_ref and kernels point into the
// message, and the message.
func (g *generator) generateSeeds(images *dataset.Dataset, seeds []uint64, m batchMeta, buf []byte) (*schema.Batch, []byte, error) {
	n := len(seeds)
	s, ls := g.hrSize, g.lrSize()
	hrN, lrN := 3*s*s, 3*ls*ls
	rands := make([]*rand.Rand, n)
	crops := make([]dataset.Crop, n)
	b := &schema.Batch{Header: g.header(), Pairs: make([]schema.Pair, n)}
	for i, seed := range seeds {
		// The crop is the first thing a sample's generator draws.
		r := SampleRand(seed)
		c := images.Draw(r, s)
		rands[i], crops[i] = r, c
		b.Pairs[i] = schema.Pair{
			SampleID:       schema.FormatSampleID(m.run, m.producer, m.batchSeq, uint32(i)),
			RunID:          m.run,
			ProducerID:     m.producer,
			BatchSeq:       m.batchSeq,
			Index:          uint32(i),
			Seed:           seed,
			WeightsVersion: m.weightsVersion,
			WeightsSHA256:  m.weightsSHA,
			SourceImage:    filepath.Base(images.Items[c.Image].Path),
			CropX:          int32(c.X),
			CropY:          int32(c.Y),
			CropW:          int32(s),
			CropH:          int32(s),
			Dihedral:       c.Dihedral,
		}
	}
	msg, err := schema.NewMessage(b, buf)
	if err != nil {
		return nil, nil, err
	}
	// The crop in 8 bits is x_ref; the degradation reads it as v/255,
	// exactly what dataset.Extract gives. Bicubic needs nothing else and is
	// done per sample from the 8-bit crop (the same bits as the whole batch
	// converted to floats and resized at once); the others run on the
	// batch of float crops.
	bicubic := g.degradation == DegradeBicubic
	if !bicubic {
		g.hrBuf = grow(g.hrBuf, n*hrN)
	}
	sample := func(i int) {
		x := msg.XRef(i)
		images.ExtractU8(crops[i], x)
		if bicubic {
			kernels.ResizeBicubicU8(3, s, s, ls, ls, msg.YRef(i), x)
		} else {
			kernels.Unit8(g.hrBuf[i*hrN:(i+1)*hrN], x)
		}
	}
	workers := min(n, kernels.Workers())
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				sample(i)
			}
		}()
	}
	wg.Wait()
	switch g.degradation {
	case DegradePDM:
		if g.sampler == nil || g.n != n {
			g.close()
			sm, err := g.pdm.NewSampler(n, s, s)
			if err != nil {
				return nil, nil, err
			}
			g.sampler, g.n = sm, n
		}
		d, err := g.sampler.Run(g.hrBuf[:n*hrN], rands)
		if err != nil {
			return nil, nil, err
		}
		ks := len(d.Kernel) / n
		for i := range b.Pairs {
			p := &b.Pairs[i]
			copy(msg.YRef(i), d.LR[i*lrN:(i+1)*lrN])
			if b.KernelSize > 0 {
				copy(msg.Kernel(i), d.Kernel[i*ks:(i+1)*ks])
			}
			if d.Noise != nil {
				p.NoiseMean, p.NoiseStd = meanStd(d.Noise[i*lrN : (i+1)*lrN])
			}
		}
	case DegradeBicubic:
	case DegradeGaussian:
		ks := g.kernelSize
		g.kBuf = grow(g.kBuf, n*ks*ks)
		for i, r := range rands {
			sigma := gaussSigmaMin + (gaussSigmaMax-gaussSigmaMin)*r.Float64()
			gaussianKernel(g.kBuf[i*ks*ks:(i+1)*ks*ks], ks, sigma)
		}
		g.lrBuf = grow(g.lrBuf, n*lrN)
		kernels.BlurDown(kernels.BlurShape{N: n, C: 3, H: s, W: s, KS: ks, Scale: g.scale}, g.lrBuf[:n*lrN], g.hrBuf[:n*hrN], g.kBuf[:n*ks*ks])
		for i := range b.Pairs {
			copy(msg.YRef(i), g.lrBuf[i*lrN:(i+1)*lrN])
			copy(msg.Kernel(i), g.kBuf[i*ks*ks:(i+1)*ks*ks])
		}
	default:
		return nil, nil, fmt.Errorf("producer: unknown degradation %q", g.degradation)
	}
	data, err := msg.Bytes()
	if err != nil {
		return nil, nil, err
	}
	return b, data, nil
}

// gaussianKernel writes a centred isotropic Gaussian of standard deviation
// sigma (HR px), normalised to sum 1, into k (ks x ks).
func gaussianKernel(k []float32, ks int, sigma float64) {
	c := float64(ks / 2)
	var sum float64
	w := make([]float64, ks*ks)
	for u := 0; u < ks; u++ {
		for v := 0; v < ks; v++ {
			du, dv := float64(u)-c, float64(v)-c
			w[u*ks+v] = math.Exp(-(du*du + dv*dv) / (2 * sigma * sigma))
			sum += w[u*ks+v]
		}
	}
	for i := range w {
		k[i] = float32(w[i] / sum)
	}
}

func meanStd(v []float32) (float32, float32) {
	var s, ss float64
	for _, x := range v {
		s += float64(x)
		ss += float64(x) * float64(x)
	}
	n := float64(len(v))
	m := s / n
	return float32(m), float32(math.Sqrt(math.Max(0, ss/n-m*m)))
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
