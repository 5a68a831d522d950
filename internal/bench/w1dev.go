package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/producer"
)

// DefaultMaxBatch bounds W1's doubling search over batch sizes on a device.
const DefaultMaxBatch = 2048

// SaturationGain is the doubling search's stopping rule: it stops after a
// batch whose pairs/s are less than this factor (5% more) over the
// previous batch's.
const SaturationGain = 1.05

// deviceRunTarget is how long one timed run of W1 on a device lasts at
// least: a batch takes milliseconds on a GPU, so a run repeats it (the
// same number of times in every run of that batch, fixed after the
// warm-up) and reports the time per batch. Not with the Quick shapes.
const deviceRunTarget = 250 * time.Millisecond

// maxRepeats bounds the batches of one timed run.
const maxRepeats = 1000

// DeviceBatch is W1 on a device at one batch size. Each batch is what a
// producer does per message: the host work (per sample, in parallel over
// the CPU's workers: the sample's generator seeded, its crop drawn and
// extracted as 8 bits from an image in memory, its latents drawn with
// model.PDM.DrawLatents), then the device sampler's Run (staging in
// pinned memory, one upload, the forward pass, one download, the outputs
// copied into the caller's slices). The two are sequential, as in the
// producer.
type DeviceBatch struct {
	Batch   int       `json:"batch"`
	Repeats int       `json:"batches_per_run"` // batches in each timed run
	Times   []float64 `json:"times_s"`         // seconds per batch of each timed run
	Seconds float64   `json:"median_s"`        // their median
	// HostSeconds and RunSeconds are the medians over the runs of the
	// host work and of the device's Run, per batch.
	HostSeconds float64 `json:"host_s"`
	RunSeconds  float64 `json:"device_run_s"`
	PairsPerSec float64 `json:"pairs_per_s"`
	// ConvGFLOP is the batch's convolution work (pdmForwardFLOPs); TFLOPS
	// it over the whole batch's time, RunTFLOPS over the Run alone.
	ConvGFLOP float64 `json:"conv_gflop_per_batch"`
	TFLOPS    float64 `json:"tflop_per_s"`
	RunTFLOPS float64 `json:"device_run_tflop_per_s"`
	// UploadBytes and DownloadBytes are what a Run moves between host and
	// device (the crops as 8 bits and the latents; y, the kernels and the
	// noise statistics), not counting the sampler's 256-byte alignment of
	// each region.
	UploadBytes   int64 `json:"upload_bytes"`
	DownloadBytes int64 `json:"download_bytes"`
	// Error is why a batch after the first could not be measured (its
	// sampler could not be made, e.g. out of device memory); the search
	// stops there.
	Error string `json:"error,omitempty"`

	// The PyTorch reference at this batch, filled in by the caller.
	TorchPairsPerSec float64 `json:"torch_pairs_per_s,omitempty"`
	TorchError       string  `json:"torch_error,omitempty"`
	GoOverTorch      float64 `json:"go_over_torch,omitempty"`
	// RunOverTorch is the Run alone (batch / RunSeconds) over the
	// reference, whose inputs and outputs stay on the GPU.
	RunOverTorch float64 `json:"device_run_over_torch,omitempty"`
}

// errNoSampler marks a batch the device could not prepare.
var errNoSampler = errors.New("bench: no device sampler")

// runW1Device measures W1 on o.Device at o.DeviceBatches, or at Shapes.Batch
// and then doubling batches while each gains at least 5% of pairs/s over
// the previous one, up to the maximum. The result's own figures are the
// first batch's.
func runW1Device(ctx context.Context, s Shapes, o Options) (*Result, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	p, err := model.NewPDM(s.PDMConfig(), tensor.Float32, 1)
	if err != nil {
		return nil, err
	}
	images := randomImages(s.HR, 1)
	maxBatch := o.MaxBatch
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
		if s.Quick {
			maxBatch = 4 * s.Batch
		}
	}
	batches := o.DeviceBatches
	search := len(batches) == 0
	if search {
		batches = []int{s.Batch}
	}
	for _, b := range batches {
		if b < 1 {
			return nil, fmt.Errorf("bench: w1 on a device: batch %d", b)
		}
	}
	fmt.Fprintf(o.Progress, "w1: %s\nw1: on %s; prepared in %.1f s\n", s.DescribeDevice("w1"), o.Device.Describe(), time.Since(t0).Seconds())
	r := &Result{
		Workload: "w1", Title: Title("w1"), Shapes: s.DescribeDevice("w1"), Short: s.ShortDevice("w1"), Quick: s.Quick,
		Iters: o.Iters, Warmup: o.Warmup, Device: o.Device.Describe(), DeviceTag: o.Device.Tag(),
	}
	for i := 0; i < len(batches); i++ {
		n := batches[i]
		db, err := measureDeviceW1(ctx, p, images, s, n, o)
		if err != nil {
			if i > 0 && errors.Is(err, errNoSampler) && ctx.Err() == nil {
				fmt.Fprintf(o.Progress, "w1: batch %d: %v; stopping there\n", n, err)
				r.DeviceBatches = append(r.DeviceBatches, DeviceBatch{Batch: n, Error: err.Error()})
				break
			}
			return nil, err
		}
		r.DeviceBatches = append(r.DeviceBatches, *db)
		if search && 2*n <= maxBatch && (i == 0 || db.PairsPerSec >= SaturationGain*r.DeviceBatches[i-1].PairsPerSec) {
			batches = append(batches, 2*n)
		}
	}
	first := r.DeviceBatches[0]
	r.PairsPerIter = first.Batch
	r.Times, r.Seconds, r.PairsPerSec = first.Times, first.Seconds, first.PairsPerSec
	r.ConvGFLOP, r.GFLOPS = first.ConvGFLOP, first.ConvGFLOP/first.Seconds
	r.SaturatingBatch = SaturatingBatch(r.DeviceBatches)
	return r, nil
}

// SaturatingBatch is the smallest measured batch whose pairs/s are within
// 5% of the best measured (0 when none was measured).
func SaturatingBatch(bs []DeviceBatch) int {
	best := 0.0
	for _, b := range bs {
		best = max(best, b.PairsPerSec)
	}
	sat := 0
	for _, b := range bs {
		if b.Error == "" && b.PairsPerSec >= best/SaturationGain && (sat == 0 || b.Batch < sat) {
			sat = b.Batch
		}
	}
	return sat
}

// measureDeviceW1 times W1 on o.Device at batch n: o.Warmup batches, then
// o.Iters timed runs of the same number of batches each.
func measureDeviceW1(ctx context.Context, p *model.PDM, images *dataset.Dataset, s Shapes, n int, o Options) (*DeviceBatch, error) {
	sb := s
	sb.Batch = n
	flops, err := pdmForwardFLOPs(p, sb)
	if err != nil {
		return nil, err
	}
	sm, err := o.Device.NewPDMSampler(p, n, s.HR, s.HR)
	if err != nil {
		return nil, fmt.Errorf("%w at batch %d: %w", errNoSampler, n, err)
	}
	defer sm.Close()
	lr := p.LRSize(s.HR)
	zk1, zn1 := p.LatentShapes(1, lr, lr)
	zkN, znN := shapeLen(zk1), shapeLen(zn1)
	kk := s.KernelSize * s.KernelSize
	hrN, lrN := 3*s.HR*s.HR, 3*lr*lr
	b := model.SampleBatch{
		X: make([][]uint8, n), Y: make([][]float32, n), Kernels: make([][]float32, n),
		ZK: make([]float32, n*zkN), NoiseMean: make([]float32, n), NoiseStd: make([]float32, n),
	}
	if znN > 0 {
		b.ZN = make([]float32, n*znN)
	}
	for i := range n {
		b.X[i], b.Y[i], b.Kernels[i] = make([]uint8, hrN), make([]float32, lrN), make([]float32, kk)
	}
	seq := uint64(0)
	// host is the producer's per-sample work (producer.generateSeeds):
	// the sample's generator, its crop, then its latents.
	host := func() {
		batch := seq
		seq++
		kernels.ParallelFor(n, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				r := producer.SampleRand(producer.SampleSeed(1, "bench", batch, uint32(i)))
				images.ExtractU8(images.Draw(r, s.HR), b.X[i])
				var zn []float32
				if znN > 0 {
					zn = b.ZN[i*znN : (i+1)*znN]
				}
				p.DrawLatents(r, b.ZK[i*zkN:(i+1)*zkN], zn)
			}
		})
	}
	one := func() (hostD, runD time.Duration, err error) {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		t0 := time.Now()
		host()
		t1 := time.Now()
		err = sm.Run(&b)
		return t1.Sub(t0), time.Since(t1), err
	}
	for i := range o.Warmup {
		h, d, err := one()
		if err != nil {
			return nil, fmt.Errorf("bench: w1 batch %d, warm-up %d: %w", n, i+1, err)
		}
		fmt.Fprintf(o.Progress, "w1: batch %d: warm-up %d/%d: %.4g s (host %.4g, device run %.4g)\n", n, i+1, o.Warmup, (h + d).Seconds(), h.Seconds(), d.Seconds())
	}
	reps := 1
	if !s.Quick {
		h, d, err := one()
		if err != nil {
			return nil, fmt.Errorf("bench: w1 batch %d: %w", n, err)
		}
		reps = max(1, min(maxRepeats, int(math.Ceil(deviceRunTarget.Seconds()/(h+d).Seconds()))))
	}
	db := &DeviceBatch{Batch: n, Repeats: reps, ConvGFLOP: float64(flops) / 1e9,
		UploadBytes: int64(n) * int64(hrN+4*(zkN+znN)), DownloadBytes: 4 * int64(n) * int64(lrN+kk+2)}
	var hosts, runs []float64
	for it := range o.Iters {
		var hs, rs time.Duration
		t0 := time.Now()
		for range reps {
			h, d, err := one()
			if err != nil {
				return nil, fmt.Errorf("bench: w1 batch %d, run %d/%d: %w", n, it+1, o.Iters, err)
			}
			hs += h
			rs += d
		}
		per := time.Since(t0).Seconds() / float64(reps)
		db.Times = append(db.Times, per)
		hosts = append(hosts, hs.Seconds()/float64(reps))
		runs = append(runs, rs.Seconds()/float64(reps))
		fmt.Fprintf(o.Progress, "w1: batch %d: run %d/%d: %d batches, %.4g s per batch (host %.4g, device run %.4g): %.1f pairs/s, %.3g TFLOP/s\n",
			n, it+1, o.Iters, reps, per, hosts[it], runs[it], float64(n)/per, float64(flops)/per/1e12)
	}
	db.Seconds, db.HostSeconds, db.RunSeconds = median(db.Times), median(hosts), median(runs)
	if !(db.Seconds > 0) || math.IsInf(db.Seconds, 0) || !(db.RunSeconds > 0) {
		return nil, fmt.Errorf("bench: w1 batch %d: timing %g s (run %g s) is not a positive finite number", n, db.Seconds, db.RunSeconds)
	}
	db.PairsPerSec = float64(n) / db.Seconds
	db.TFLOPS = float64(flops) / db.Seconds / 1e12
	db.RunTFLOPS = float64(flops) / db.RunSeconds / 1e12
	return db, nil
}

// shapeLen is the number of values of a shape (0 for none).
func shapeLen(s []int) int {
	if s == nil {
		return 0
	}
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}
