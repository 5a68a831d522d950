// Package bench measures pdmflow's performance workloads (docs/design.md,
// "Performance workloads") in the shapes of the PyTorch reference
// bench/pdm_ref.py:
//
//   - W1 producer: the PDM forward pass of model.Sampler on a batch of HR
//     crops, as a producer runs it.
//   - W2 trainer: one joint training step of package trainer (PDM
//     generator, PatchGAN and EDSR steps with Adam).
//   - W3 pipeline: one producer delivering pairs through JetStream (an
//     embedded broker with file storage) into the consumer's decoded
//     batches, against JetStream alone moving the same bytes.
//
// Each workload is timed as pdm_ref.py's timeit does: warm-up runs, then
// the median of the timed runs. Convolution FLOPs are counted by
// model.Graph.ConvFLOPs (2 x multiply-adds of the forward convolutions); a
// training step counts 3x its forward convolutions (forward, dX and dW),
// the convention of the engine notes. `pdmflow bench` runs each workload
// in a child process of its own so that its peak RSS is its own.
//
// With a Device (Options.Device, e.g. a GPU of package gpu), W1 runs the
// same PDM through the device's sampler at several batch sizes (w1dev.go)
// and W3's producer generates on the device with the PDM degradation,
// measured beside generation alone and publishing alone (w3dev.go). W2
// has no device path.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/pdmflow/pdmflow/model"
)

// Workloads names the workloads in order.
var Workloads = []string{"w1", "w2", "w3"}

// Title is a workload's role: "producer", "trainer" or "pipeline".
func Title(workload string) string {
	switch workload {
	case "w1":
		return "producer"
	case "w2":
		return "trainer"
	case "w3":
		return "pipeline"
	}
	return ""
}

// Options say how to time a workload.
type Options struct {
	Iters    int       // timed runs (at least 1)
	Warmup   int       // untimed runs before them (pdm_ref.py: 2)
	Progress io.Writer // a line per run (nil: none)

	// Device runs W1 and W3's generation (nil: the CPU paths, as
	// without devices). The caller opens and closes it.
	Device model.Device
	// DeviceBatches are the batch sizes of W1 on a device, in order (nil:
	// Shapes.Batch, then doubling while pairs/s grow by SaturationGain).
	DeviceBatches []int
	// MaxBatch bounds the doubling search (0: DefaultMaxBatch, or 4x the
	// batch for the Quick shapes).
	MaxBatch int
}

// Result is one workload's measurement.
type Result struct {
	Workload     string    `json:"workload"` // w1, w2 or w3
	Title        string    `json:"title"`    // producer, trainer or pipeline
	Shapes       string    `json:"shapes"`   // Shapes.Describe
	Short        string    `json:"shapes_short"`
	Quick        bool      `json:"quick"`
	Iters        int       `json:"iters"`
	Warmup       int       `json:"warmup"`
	PairsPerIter int       `json:"pairs_per_iter"`
	Times        []float64 `json:"times_s"`  // seconds of each timed run
	Seconds      float64   `json:"median_s"` // their median (the upper one for an even count, as pdm_ref.py)
	PairsPerSec  float64   `json:"pairs_per_s"`
	// ConvGFLOP is the convolution work of one run (W1: the forward pass;
	// W2: 3x the forward convolutions of the step); 0 for W3.
	ConvGFLOP float64 `json:"conv_gflop_per_iter,omitempty"`
	GFLOPS    float64 `json:"gflop_per_s,omitempty"`
	// Raw is W3's reference: JetStream alone moving the same messages.
	Raw *Raw `json:"raw,omitempty"`
	// Device describes the device that ran W1 or W3's generation
	// (model.Device.Describe; empty on the CPU paths), DeviceTag its
	// arithmetic (model.Device.Tag).
	Device    string `json:"device,omitempty"`
	DeviceTag string `json:"device_tag,omitempty"`
	// DeviceBatches are W1 on a device at each batch size tried, the
	// first one (Shapes.Batch) also being the result's own figures;
	// SaturatingBatch is the smallest of them within 5% of the best
	// pairs/s.
	DeviceBatches   []DeviceBatch `json:"device_batches,omitempty"`
	SaturatingBatch int           `json:"saturating_batch,omitempty"`
	// Stages are W3 on a device: the producer against generation alone
	// and publishing alone.
	Stages *Stages `json:"producer_stages,omitempty"`
	// PeakRSSMiB is the peak resident set of the process that ran the
	// workload, filled in by whoever ran it in a child process.
	PeakRSSMiB float64 `json:"peak_rss_mib,omitempty"`
}

// Raw is W3's JetStream-only measurement: the same encoded messages
// published with PublishAsync and consumed (and acked) by a pull consumer,
// not decoded.
type Raw struct {
	Times        []float64 `json:"times_s"`
	Seconds      float64   `json:"median_s"`
	PairsPerSec  float64   `json:"pairs_per_s"`
	MiBPerSec    float64   `json:"mib_per_s"`
	Messages     int       `json:"messages_per_iter"`
	MessageBytes int       `json:"message_bytes"` // mean encoded size
	// Ratio is the pipeline's pairs/s over JetStream's alone: the median
	// of the ratios of each run, whose phases run back to back, so that a
	// slow spell of a shared machine weighs on both sides of a ratio.
	// RunRatios are those ratios, MedianRatio the ratio of the medians.
	Ratio       float64   `json:"pipeline_over_raw"`
	RunRatios   []float64 `json:"pipeline_over_raw_per_run"`
	MedianRatio float64   `json:"pipeline_over_raw_of_medians"`
	// Delivery is the same messages through pdmflow's consumer (decode,
	// validation, dedup, pool) without the producer's generation.
	DeliveryTimes       []float64 `json:"delivery_times_s,omitempty"`
	DeliverySeconds     float64   `json:"delivery_median_s,omitempty"`
	DeliveryPairsPerSec float64   `json:"delivery_pairs_per_s,omitempty"`
	DeliveryRatio       float64   `json:"delivery_over_raw,omitempty"` // median of the runs' ratios
	// The pipeline's own figures where it is not the workload's (W3 on a
	// device, whose own figures are the producer's).
	PipelineTimes       []float64 `json:"pipeline_times_s,omitempty"`
	PipelineSeconds     float64   `json:"pipeline_median_s,omitempty"`
	PipelinePairsPerSec float64   `json:"pipeline_pairs_per_s,omitempty"`
}

// runRatios returns base[i]/t[i] for each run i: the pairs/s of the phase
// timed by t over those of the phase timed by base, run by run.
func runRatios(t, base []float64) []float64 {
	r := make([]float64, min(len(t), len(base)))
	for i := range r {
		r[i] = base[i] / t[i]
	}
	return r
}

// phase is one timed part of a workload; fn returns the time of the
// measured part of run iter.
type phase struct {
	name string
	fn   func(ctx context.Context, iter int) (time.Duration, error)
	// pairs is what one run of the phase moves (0: the workload's pairs).
	pairs int
}

// pairsOf is the pairs one run of ph moves.
func (w *workload) pairsOf(ph phase) int {
	if ph.pairs > 0 {
		return ph.pairs
	}
	return w.pairs
}

// workload is a prepared workload: its timed phases (the first is the
// workload's own; W3 adds JetStream alone and more, found by name), the
// pairs and the convolution FLOPs of one run, and how to release it.
type workload struct {
	phases   []phase
	pairs    int
	flops    int64
	msgBytes func() int // W3: mean message size
	ppm      int        // W3: pairs per message
	close    func()
}

// timed wraps a step whose whole run is measured.
func timed(step func(ctx context.Context) error) func(context.Context, int) (time.Duration, error) {
	return func(ctx context.Context, _ int) (time.Duration, error) {
		t0 := time.Now()
		err := step(ctx)
		return time.Since(t0), err
	}
}

// ErrNoDevicePath is returned for a workload that has no device path (W2,
// the trainer, runs on the CPU only).
var ErrNoDevicePath = errors.New("bench: the workload has no device path")

func prepare(ctx context.Context, name string, s Shapes, dev model.Device) (*workload, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	switch name {
	case "w1":
		return newW1(s)
	case "w2":
		if dev != nil {
			return nil, fmt.Errorf("%w: w2 (the trainer) runs on the CPU only; measure it without a device", ErrNoDevicePath)
		}
		return newW2(s)
	case "w3":
		return newW3(ctx, s, dev)
	}
	return nil, fmt.Errorf("bench: unknown workload %q (%v)", name, Workloads)
}

// Run prepares workload name (w1, w2 or w3) at shapes s and times it.
func Run(ctx context.Context, name string, s Shapes, o Options) (*Result, error) {
	if o.Iters < 1 || o.Warmup < 0 {
		return nil, fmt.Errorf("bench: %d runs after %d warm-up runs", o.Iters, o.Warmup)
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	if o.Device != nil && name == "w1" {
		o.Progress = progress
		return runW1Device(ctx, s, o)
	}
	t0 := time.Now()
	w, err := prepare(ctx, name, s, o.Device)
	if err != nil {
		return nil, err
	}
	defer w.close()
	if o.Device != nil {
		fmt.Fprintf(progress, "%s: %s\n%s: on %s; prepared in %.1f s\n", name, s.DescribeDevice(name), name, o.Device.Describe(), time.Since(t0).Seconds())
	} else {
		fmt.Fprintf(progress, "%s: %s\n%s: prepared in %.1f s\n", name, s.Describe(name), name, time.Since(t0).Seconds())
	}
	times := make([][]float64, len(w.phases))
	for i := 0; i < o.Warmup+o.Iters; i++ {
		label := fmt.Sprintf("run %d/%d", i-o.Warmup+1, o.Iters)
		if i < o.Warmup {
			label = fmt.Sprintf("warm-up %d/%d", i+1, o.Warmup)
		}
		line := fmt.Sprintf("%s: %s:", name, label)
		for p, ph := range w.phases {
			d, err := ph.fn(ctx, i)
			if err != nil {
				return nil, fmt.Errorf("bench: %s %s, %s: %w", name, ph.name, label, err)
			}
			if i >= o.Warmup {
				times[p] = append(times[p], d.Seconds())
			}
			line += fmt.Sprintf(" %s %.4g s (%.1f pairs/s)", ph.name, d.Seconds(), float64(w.pairsOf(ph))/d.Seconds())
		}
		fmt.Fprintln(progress, line)
	}
	// The first phase is the workload's own; the others are found by name.
	byName := func(name string) ([]float64, int, bool) {
		for p, ph := range w.phases {
			if ph.name == name {
				return times[p], w.pairsOf(ph), true
			}
		}
		return nil, 0, false
	}
	pairs := w.pairsOf(w.phases[0])
	r := &Result{
		Workload: name, Title: Title(name), Shapes: s.Describe(name), Short: s.Short(name), Quick: s.Quick,
		Iters: o.Iters, Warmup: o.Warmup, PairsPerIter: pairs,
		Times: times[0], Seconds: median(times[0]),
	}
	if o.Device != nil {
		r.Device, r.DeviceTag = o.Device.Describe(), o.Device.Tag()
		r.Shapes, r.Short = s.DescribeDevice(name), s.ShortDevice(name)
	}
	r.PairsPerSec = float64(pairs) / r.Seconds
	if w.flops > 0 {
		r.ConvGFLOP = float64(w.flops) / 1e9
		r.GFLOPS = r.ConvGFLOP / r.Seconds
	}
	if rawTimes, rawPairs, ok := byName("raw"); ok {
		// JetStream alone against the pipeline (producer -> JetStream ->
		// consumer), run by run.
		pipe, pipePairs, _ := byName("pipeline")
		raw := &Raw{Times: rawTimes, Seconds: median(rawTimes), Messages: s.Messages, MessageBytes: w.msgBytes()}
		raw.PairsPerSec = float64(rawPairs) / raw.Seconds
		raw.MiBPerSec = float64(raw.Messages*raw.MessageBytes) / (1 << 20) / raw.Seconds
		raw.RunRatios = runRatios(pipe, rawTimes)
		raw.Ratio = median(raw.RunRatios)
		raw.MedianRatio = float64(pipePairs) / median(pipe) / raw.PairsPerSec
		if w.phases[0].name != "pipeline" {
			raw.PipelineTimes, raw.PipelineSeconds = pipe, median(pipe)
			raw.PipelinePairsPerSec = float64(pipePairs) / raw.PipelineSeconds
		}
		if del, _, ok := byName("delivery"); ok {
			raw.DeliveryTimes, raw.DeliverySeconds = del, median(del)
			raw.DeliveryPairsPerSec = float64(rawPairs) / raw.DeliverySeconds
			raw.DeliveryRatio = median(runRatios(del, rawTimes))
		}
		r.Raw = raw
	}
	if gen, genPairs, ok := byName("generation"); ok {
		prod, prodPairs, _ := byName("producer")
		pub, pubPairs, _ := byName("publish")
		r.Stages = newStages(prod, prodPairs, gen, genPairs, pub, pubPairs, w.msgBytes(), w.ppm)
	}
	for _, v := range []float64{r.Seconds, r.PairsPerSec} {
		if !(v > 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("bench: %s: timing %g is not a positive finite number", name, v)
		}
	}
	return r, nil
}

// median is the middle of the sorted values, the upper one of an even
// count (pdm_ref.py's ts[len(ts)//2]).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
