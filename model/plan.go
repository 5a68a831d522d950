package model

import "math"

// ConvStep is one convolution of a PDM network as a producer runs it
// (inference), with what follows it up to the next convolution folded in:
// the result is
//
//	v = conv(x; W, B)                  (stride 1, zero padding K/2)
//	v = Scale[c]*v + Shift[c]          (inference BatchNorm, in float64; when Scale != nil)
//	v = xPrev + v                      (when Skip: the input of the previous step)
//	v = max(v, 0)                      (when ReLU)
//
// which is what the graph computes (Conv, BatchNorm with running
// statistics, AddScaled, the activation), in the same order. Another
// engine (package gpu) runs a network from its steps instead of
// reimplementing its structure; TestStepsMatchGraph holds the two
// together.
type ConvStep struct {
	Name       string    // the convolution's parameter prefix, e.g. "noise.body.0.conv1"
	In, Out, K int       // channels in and out, kernel side
	W          []float32 // Out x In x K x K
	B          []float32 // Out
	// Scale and Shift: BatchNorm with its running statistics as
	// kernels.BatchNormEval applies it, scale = gamma/sqrt(var+eps) and
	// shift = beta - scale*mean; nil when no BatchNorm follows.
	Scale, Shift []float64
	Skip         bool // add the previous step's input (a residual block's)
	ReLU         bool
}

// KernelSteps is the kernel network as convolution steps; its input is
// z_k (for a content-dependent network, Cfg.Kernel.Mix, cat(the HR image on
// the LR grid, z_k), which package gpu does not build) and its output
// (k*k channels) goes through the softmax over channels.
func (p *PDM) KernelSteps() []ConvStep {
	fixed := p.fixedKernelInput()
	steps := []ConvStep{convStep(p.kHead, &p.kHeadBN, fixed, false, true)}
	for _, b := range p.kBlocks {
		steps = append(steps, convStep(b.C1, &b.BN, fixed, false, true), convStep(b.C2, nil, false, true, false))
	}
	return append(steps, convStep(p.kTail, nil, false, false, false))
}

// NoiseSteps is the noise network as convolution steps (nil when the noise
// mode is off). Its input is, by mode, cat(y_clean, z_n), z_n or y_clean;
// its output (3 channels) is centred per plane when Cfg.Noise.ZeroMean.
func (p *PDM) NoiseSteps() []ConvStep {
	if p.Noise == nil {
		return nil
	}
	steps := []ConvStep{convStep(p.nHead, &p.nHeadBN, false, false, true)}
	for _, b := range p.nBlocks {
		steps = append(steps, convStep(b.C1, &b.BN, false, false, true), convStep(b.C2, nil, false, true, false))
	}
	return append(steps, convStep(p.nTail, nil, false, false, false))
}

// convStep describes c followed by b (nil: none), a skip and ReLU.
// batchStats: BatchNorm runs on batch statistics of an input that is the
// same for every sample (the kernel network with z_k fixed, see
// KernelNet): x equals the batch mean exactly, so the layer outputs beta.
func convStep(c conv, b *bn, batchStats, skip, relu bool) ConvStep {
	sh := c.W.Value.Shape()
	s := ConvStep{Name: c.W.Name[:len(c.W.Name)-len(".weight")], Out: sh[0], In: sh[1], K: sh[2],
		W: c.W.Float32Data(), Skip: skip, ReLU: relu}
	if c.B != nil {
		s.B = c.B.Float32Data()
	} else {
		s.B = make([]float32, s.Out)
	}
	if b != nil {
		gamma, beta := b.Gamma.Float32Data(), b.Beta.Float32Data()
		mean, vr := b.State.Mean.Float32Data(), b.State.Var.Float32Data()
		s.Scale, s.Shift = make([]float64, s.Out), make([]float64, s.Out)
		for ch := range s.Out {
			if batchStats {
				s.Shift[ch] = float64(beta[ch])
				continue
			}
			s.Scale[ch] = float64(gamma[ch]) / math.Sqrt(float64(vr[ch])+b.State.Eps)
			s.Shift[ch] = float64(beta[ch]) - s.Scale[ch]*float64(mean[ch])
		}
	}
	return s
}
