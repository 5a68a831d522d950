package bench

import (
	"fmt"

	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/trainer"
)

// Shapes are the sizes of the workloads: Full gives those of
// docs/design.md and bench/pdm_ref.py, Quick tiny ones for smoke tests.
type Shapes struct {
	Quick bool // the tiny shapes of Quick (numbers not comparable with the reference)

	Batch      int // pairs per W1 batch, W2 step and W3 Take
	HR         int // side of the HR crops
	Scale      int // SR factor; the LR side is HR/Scale
	KernelSize int // side of the blur kernels

	// Kernel network: z_k channels, features, residual blocks (1x1 convs).
	KernelNC, KernelNF, KernelNB int
	// Noise network (mixed mode: clean LR and per-pixel z_n in): z_n
	// channels, features, residual blocks, convolution side.
	NoiseNC, NoiseNF, NoiseNB, NoiseConv int
	// PatchGAN discriminator: first-layer features, output channels, stride
	// of layers 2 and 3.
	DiscNF, DiscOut, DiscStride int
	// EDSR-baseline: features and residual blocks.
	SRNF, SRNB int

	// W3: pairs per message (0: as many as fit in MsgBytes, as a producer
	// sizes them), the message size aimed at, and messages per timed run.
	MsgPairs int
	MsgBytes int
	Messages int
}

// Full returns the shapes of the design's workloads at the given batch
// (32 there): HR 128 crops at x4 with 21x21 kernels; KernelNet nc 64,
// nf 64, nb 8; NoiseNet mixed nc 3, nf 64, nb 8, 3x3; PatchGAN nf 64,
// out 64, stride 2; EDSR-baseline nf 64, nb 16; W3 messages of about
// 2 MiB, 64 per run (128 MiB: long enough for a steady state).
func Full(batch int) Shapes {
	return Shapes{
		Batch: batch, HR: 128, Scale: 4, KernelSize: 21,
		KernelNC: 64, KernelNF: 64, KernelNB: 8,
		NoiseNC: 3, NoiseNF: 64, NoiseNB: 8, NoiseConv: 3,
		DiscNF: 64, DiscOut: 64, DiscStride: 2,
		SRNF: 64, SRNB: 16,
		MsgBytes: 2 << 20, Messages: 64,
	}
}

// Quick returns tiny shapes for tests and CI: batch 2, HR 32, one residual
// block and 8 features everywhere, W3 runs of 4 messages of 4 pairs.
func Quick() Shapes {
	return Shapes{
		Quick: true,
		Batch: 2, HR: 32, Scale: 4, KernelSize: 21,
		KernelNC: 8, KernelNF: 8, KernelNB: 1,
		NoiseNC: 3, NoiseNF: 8, NoiseNB: 1, NoiseConv: 3,
		DiscNF: 8, DiscOut: 8, DiscStride: 2,
		SRNF: 8, SRNB: 1,
		MsgPairs: 4, MsgBytes: 2 << 20, Messages: 4,
	}
}

// LR is the side of the LR images.
func (s Shapes) LR() int { return s.HR / s.Scale }

// Validate reports shapes the workloads cannot run.
func (s Shapes) Validate() error {
	switch {
	case s.Batch < 2:
		return fmt.Errorf("bench: batch %d: at least 2 (BatchNorm needs batch statistics)", s.Batch)
	case s.Scale < 2 || s.HR%s.Scale != 0 || s.HR < s.KernelSize:
		return fmt.Errorf("bench: HR %d must be a multiple of the scale %d and at least the kernel size %d", s.HR, s.Scale, s.KernelSize)
	case s.Messages < 1 || s.MsgPairs < 0 || (s.MsgPairs == 0 && s.MsgBytes < 1):
		return fmt.Errorf("bench: W3 messages %d of %d pairs (%d bytes)", s.Messages, s.MsgPairs, s.MsgBytes)
	}
	return s.PDMConfig().Validate()
}

// PDMConfig is the PDM of W1 and W2: spatially invariant kernels from a
// KernelNet of 1x1 convolutions with the official box init, and a mixed
// NoiseNet.
func (s Shapes) PDMConfig() model.PDMConfig {
	return model.PDMConfig{
		Scale:  s.Scale,
		Kernel: model.KernelConfig{Size: s.KernelSize, NC: s.KernelNC, NF: s.KernelNF, NB: s.KernelNB, Spatial: false, Conv: 1, Init: "box"},
		Noise:  model.NoiseConfig{Mode: model.NoiseMixed, NC: s.NoiseNC, NF: s.NoiseNF, NB: s.NoiseNB, Conv: s.NoiseConv},
	}
}

// TrainerConfig is the joint training run of W2, every field set here
// (starting from the 2020Track1 preset only for its field list): joint
// regime on the pdm degradation, the PDM of PDMConfig, a PatchGAN with
// stride DiscStride, EDSR-baseline with the pixel-shuffle upsampler,
// res_scale 1 and no bicubic residual, LSGAN weight 1, noise weight 100,
// L1 weight 1, Adam with torch's defaults at lr 2e-4 and no clipping or
// schedule (as bench/pdm_ref.py), no moving average, no logging, pictures
// or checkpoints.
func (s Shapes) TrainerConfig() (*trainer.Config, error) {
	c, err := trainer.Preset("2020Track1")
	if err != nil {
		return nil, err
	}
	c.Name = "bench-w2"
	c.Regime = trainer.Joint
	c.Degradation = trainer.DegradePDM
	c.Steps = 1 << 30 // steps are driven by BenchStep, not Run
	c.Stage1Steps = 0
	c.Batch = s.Batch
	c.HRCrop = s.HR
	c.Seed = 0
	c.PDM = s.PDMConfig()
	c.Disc = model.DiscConfig{NF: s.DiscNF, Out: s.DiscOut, Stride: s.DiscStride}
	c.SR = model.SRConfig{Arch: "edsr", Scale: s.Scale, NF: s.SRNF, NB: s.SRNB, ResScale: 1, RGBRange: 255, Residual: false, Upsampler: "pixelshuffle"}
	c.Loss = trainer.LossConfig{Adv: 1, NoiseReg: 100, L1: 1}
	c.Optim = model.OptimConfig{LR: 2e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: 0, Milestones: nil, Gamma: 1}
	c.PDMEMA = 0
	c.LogEvery, c.SampleEvery, c.CheckpointEvery = 0, 0, 0
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// pairsPerMessage is W3's pairs per message: MsgPairs, or as many as fit
// in MsgBytes by the producer's own estimate of a bicubic pair (x_ref as
// bytes, y_ref as float32, some metadata).
func (s Shapes) pairsPerMessage() int {
	if s.MsgPairs > 0 {
		return s.MsgPairs
	}
	lr := s.LR()
	per := 3*s.HR*s.HR + 4*3*lr*lr + 128
	return max(1, s.MsgBytes/per)
}

// pdmPairsPerMessage is W3's pairs per message on a device, where the
// producer runs the PDM degradation: MsgPairs, or as many as fit in
// MsgBytes by the producer's own estimate of a PDM pair (x_ref as bytes,
// y_ref and the kernel as float32, some metadata).
func (s Shapes) pdmPairsPerMessage() int {
	if s.MsgPairs > 0 {
		return s.MsgPairs
	}
	lr := s.LR()
	per := 3*s.HR*s.HR + 4*3*lr*lr + 4*s.KernelSize*s.KernelSize + 128
	return max(1, s.MsgBytes/per)
}

// DescribeDevice is Describe for a workload's device path (W1 and W3).
func (s Shapes) DescribeDevice(workload string) string {
	switch workload {
	case "w1":
		return fmt.Sprintf("PDM forward through the device's sampler, batches from %d, HR %d->%d, kernel %dx%d, KernelNet nc%d nf%d nb%d 1x1, NoiseNet mixed nc%d nf%d nb%d %dx%d, inference BatchNorm; host per sample: crop drawn and extracted, latents drawn",
			s.Batch, s.HR, s.LR(), s.KernelSize, s.KernelSize, s.KernelNC, s.KernelNF, s.KernelNB, s.NoiseNC, s.NoiseNF, s.NoiseNB, s.NoiseConv, s.NoiseConv)
	case "w3":
		return fmt.Sprintf("1 producer (pdm: the w1 networks, HR %d->%d) on the device -> JetStream (file storage): %d messages of %d pairs per run, against generation alone and publishing alone; then producer -> consumer against JetStream alone, Take(%d)",
			s.HR, s.LR(), s.Messages, s.pdmPairsPerMessage(), s.Batch)
	}
	return s.Describe(workload)
}

// ShortDevice is Short for a workload's device path.
func (s Shapes) ShortDevice(workload string) string {
	if workload == "w3" {
		return fmt.Sprintf("pdm hr%d %dx%d pairs", s.HR, s.Messages, s.pdmPairsPerMessage())
	}
	return s.Short(workload)
}

// Describe says what a workload computes at these shapes, in one line.
func (s Shapes) Describe(workload string) string {
	switch workload {
	case "w1":
		return fmt.Sprintf("PDM forward, batch %d, HR %d->%d, kernel %dx%d, KernelNet nc%d nf%d nb%d 1x1, NoiseNet mixed nc%d nf%d nb%d %dx%d, inference BatchNorm",
			s.Batch, s.HR, s.LR(), s.KernelSize, s.KernelSize, s.KernelNC, s.KernelNF, s.KernelNB, s.NoiseNC, s.NoiseNF, s.NoiseNB, s.NoiseConv, s.NoiseConv)
	case "w2":
		return fmt.Sprintf("joint step, batch %d, HR %d->%d: PDM as w1 (train BatchNorm) + LSGAN vs PatchGAN nf%d out%d stride %d + 100*mean(n^2); PatchGAN step; EDSR nf%d nb%d pixelshuffle x%d L1 step; Adam",
			s.Batch, s.HR, s.LR(), s.DiscNF, s.DiscOut, s.DiscStride, s.SRNF, s.SRNB, s.Scale)
	case "w3":
		return fmt.Sprintf("1 producer (bicubic, HR %d->%d) -> JetStream (file storage) -> consumer, Take(%d): %d messages of %d pairs per run",
			s.HR, s.LR(), s.Batch, s.Messages, s.pairsPerMessage())
	}
	return ""
}

// Short is a compact form of the shapes for a table column.
func (s Shapes) Short(workload string) string {
	switch workload {
	case "w1":
		return fmt.Sprintf("b%d hr%d k%d nf%d nb%d", s.Batch, s.HR, s.KernelSize, s.NoiseNF, s.NoiseNB)
	case "w2":
		return fmt.Sprintf("b%d hr%d pdm nf%d nb%d, d nf%d, sr nf%d nb%d", s.Batch, s.HR, s.NoiseNF, s.NoiseNB, s.DiscNF, s.SRNF, s.SRNB)
	case "w3":
		return fmt.Sprintf("hr%d %dx%d pairs", s.HR, s.Messages, s.pairsPerMessage())
	}
	return ""
}
