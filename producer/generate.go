package producer

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"

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

// generator turns crops into pairs with one degradation, on a device
// (model.CPU unless told otherwise).
type generator struct {
	degradation string
	hrSize      int
	scale       int
	kernelSize  int // gaussian: side of its kernels
	dev         model.Device
	pdm         *model.PDM
	sampler     model.BatchSampler
	n           int // batch size the sampler was built for

	zk, zn    []float32 // the batch's latents (pdm)
	noiseMean []float32
	noiseStd  []float32
}

func (g *generator) device() model.Device {
	if g.dev == nil {
		return model.CPU
	}
	return g.dev
}

func (g *generator) close() {
	if g.sampler != nil {
		g.sampler.Close()
		g.sampler = nil
	}
}

func (g *generator) lrSize() int { return (g.hrSize-1)/g.scale + 1 }

func (g *generator) header() schema.Header {
	h := schema.Header{Scale: g.scale, HRH: g.hrSize, HRW: g.hrSize, LRH: g.lrSize(), LRW: g.lrSize(), Degradation: g.degradation, Device: g.device().Tag()}
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

// setWeights makes pdm the generator's PDM, reloading the sampler's
// weights in place when there is one of the same configuration (a GPU
// sampler keeps its buffers and uploads the new weights).
func (g *generator) setWeights(pdm *model.PDM) error {
	if g.sampler != nil && g.pdm != nil && g.pdm.Cfg == pdm.Cfg {
		if err := g.sampler.Reload(pdm); err != nil {
			return err
		}
	} else {
		g.close()
	}
	g.pdm = pdm
	g.scale = pdm.Cfg.Scale
	return nil
}

// samplerFor returns the device's sampler of the generator's degradation
// for batches of n, made on first use and when n changes.
func (g *generator) samplerFor(n int) (model.BatchSampler, error) {
	if g.sampler != nil && g.n == n {
		return g.sampler, nil
	}
	g.close()
	s := g.hrSize
	var sm model.BatchSampler
	var err error
	switch g.degradation {
	case DegradePDM:
		sm, err = g.device().NewPDMSampler(g.pdm, n, s, s)
	case DegradeBicubic:
		sm, err = g.device().NewBicubicSampler(n, s, s, g.scale)
	case DegradeGaussian:
		sm, err = g.device().NewBlurSampler(n, s, s, g.kernelSize, g.scale)
	default:
		err = fmt.Errorf("producer: unknown degradation %q", g.degradation)
	}
	if err != nil {
		return nil, err
	}
	g.sampler, g.n = sm, n
	return sm, nil
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
// it is large enough): each sample's generator draws its crop, cut into
// its x_ref, then the degradation's randomness (PDM: the latents; gaussian:
// the kernel, written into its row), one sample per core at a time; the
// device then degrades the batch from the x_ref into the y_ref (and the
// PDM's kernels) of the message. It returns the batch, whose x_ref, y_ref
// and kernels point into the message, and the message.
func (g *generator) generateSeeds(images *dataset.Dataset, seeds []uint64, m batchMeta, buf []byte) (*schema.Batch, []byte, error) {
	n := len(seeds)
	s := g.hrSize
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
	sm, err := g.samplerFor(n)
	if err != nil {
		return nil, nil, err
	}
	msg, err := schema.NewMessage(b, buf)
	if err != nil {
		return nil, nil, err
	}
	sb := model.SampleBatch{X: make([][]uint8, n), Y: make([][]float32, n)}
	if b.KernelSize > 0 {
		sb.Kernels = make([][]float32, n)
	}
	var zkN, znN int // one sample's latents
	if g.degradation == DegradePDM {
		zk, zn := g.pdm.LatentShapes(1, g.lrSize(), g.lrSize())
		zkN = zk[0] * zk[1] * zk[2] * zk[3]
		g.zk = grow(g.zk, n*zkN)
		sb.ZK = g.zk
		if zn != nil {
			znN = zn[0] * zn[1] * zn[2] * zn[3]
			g.zn = grow(g.zn, n*znN)
			sb.ZN = g.zn
		}
		if g.pdm.Cfg.Noise.Mode != model.NoiseOff {
			g.noiseMean, g.noiseStd = grow(g.noiseMean, n), grow(g.noiseStd, n)
			sb.NoiseMean, sb.NoiseStd = g.noiseMean, g.noiseStd
		}
	}
	for i := range n {
		sb.X[i], sb.Y[i] = msg.XRef(i), msg.YRef(i)
		if sb.Kernels != nil {
			sb.Kernels[i] = msg.Kernel(i)
		}
	}
	// Per sample, in the order its generator draws: the crop's pixels,
	// then the degradation's randomness.
	sample := func(i int) {
		images.ExtractU8(crops[i], sb.X[i])
		switch g.degradation {
		case DegradePDM:
			var zn []float32
			if znN > 0 {
				zn = sb.ZN[i*znN : (i+1)*znN]
			}
			g.pdm.DrawLatents(rands[i], sb.ZK[i*zkN:(i+1)*zkN], zn)
		case DegradeGaussian:
			sigma := gaussSigmaMin + (gaussSigmaMax-gaussSigmaMin)*rands[i].Float64()
			gaussianKernel(sb.Kernels[i], g.kernelSize, sigma)
		}
	}
	kernels.ParallelFor(n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			sample(i)
		}
	})
	if err := sm.Run(&sb); err != nil {
		return nil, nil, err
	}
	if sb.NoiseMean != nil {
		for i := range b.Pairs {
			b.Pairs[i].NoiseMean, b.Pairs[i].NoiseStd = sb.NoiseMean[i], sb.NoiseStd[i]
		}
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

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
