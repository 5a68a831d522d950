package producer

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/schema"
	"github.com/pdmflow/pdmflow/store"
)

// Regenerate recomputes a recorded batch from what its rows record: each
// row's seed, which with the producer's HR set draws the crop (checked
// against the recorded image, position and transform), and the weights the
// row names (pdm, the PDM of that version; nil for the bicubic and gaussian
// degradations). It runs the producer's own code on the whole batch, as
// the producer did, so on the same CPU the result is bit-identical to the
// recorded rows (see docs/reproducibility.md for what holds elsewhere).
//
// An HR set other than the producer's fails with an error naming the first
// row whose crop differs; weights of another configuration than the batch
// fail too.
//
// The regeneration runs on the CPU reference. A batch recorded by another
// device (Header.Device, e.g. a GPU) is not expected back bit for bit: its
// y_ref, kernels and noise statistics are checked within
// model.ToleranceFor(Header.Device) (DiffWithin); crops, x_ref and
// everything else still match exactly.
func Regenerate(images *dataset.Dataset, pdm *model.PDM, rec *schema.Batch) (*schema.Batch, error) {
	if rec == nil || len(rec.Pairs) == 0 {
		return nil, errors.New("producer: regenerate: an empty batch")
	}
	h := rec.Header
	if h.HRH != h.HRW || h.Scale < 1 {
		return nil, fmt.Errorf("producer: regenerate: header %+v is not a producer's (square HR crops)", h)
	}
	g := &generator{degradation: h.Degradation, hrSize: h.HRH, scale: h.Scale, kernelSize: h.KernelSize}
	defer g.close()
	switch h.Degradation {
	case DegradePDM:
		if pdm == nil {
			return nil, errors.New("producer: regenerate: the batch was made by PDM; its weights are needed")
		}
		if pdm.Cfg.Scale != h.Scale {
			return nil, fmt.Errorf("producer: regenerate: the weights are x%d, the batch x%d", pdm.Cfg.Scale, h.Scale)
		}
		g.pdm = pdm
	case DegradeBicubic, DegradeGaussian:
	default:
		return nil, fmt.Errorf("producer: regenerate: unknown degradation %q", h.Degradation)
	}
	if got := g.header(); !got.SameStream(h) {
		return nil, fmt.Errorf("producer: regenerate: these weights make batches with header %+v, the record has %+v", got, h)
	}
	f := rec.Pairs[0]
	seeds := make([]uint64, len(rec.Pairs))
	for i, p := range rec.Pairs {
		seeds[i] = p.Seed
	}
	out, _, err := g.generateSeeds(images, seeds, batchMeta{
		run: f.RunID, producer: f.ProducerID, batchSeq: f.BatchSeq,
		weightsVersion: f.WeightsVersion, weightsSHA: f.WeightsSHA256,
	}, nil)
	if err != nil {
		return nil, err
	}
	for i, p := range rec.Pairs {
		q := out.Pairs[i]
		if p.SourceImage != q.SourceImage || p.CropX != q.CropX || p.CropY != q.CropY || p.CropW != q.CropW || p.Dihedral != q.Dihedral {
			return nil, fmt.Errorf("producer: regenerate: row %d (%s): its seed draws %s at (%d,%d) transform %d from this HR set, the record says %s at (%d,%d) transform %d: use the producer's HR set (the same files)",
				i, p.SampleID, q.SourceImage, q.CropX, q.CropY, q.Dihedral, p.SourceImage, p.CropX, p.CropY, p.Dihedral)
		}
	}
	return out, nil
}

// WeightsBySHA fetches the PDM weights published under a SHA-256 (what
// every row records) from the store, verifies the hash, and loads them.
func WeightsBySHA(ctx context.Context, st *store.Bucket, sha string) (*model.PDM, error) {
	key := store.WeightsKey(sha)
	b, err := store.GetVerified(ctx, st, key, sha)
	if err != nil {
		return nil, err
	}
	w, err := model.DecodeWeights(key, b, model.KindPDM)
	if err != nil {
		return nil, err
	}
	return w.PDM()
}

// Diff lists how a regenerated pair differs from the recorded one: every
// field, arrays compared bit for bit (with the largest absolute
// difference). Nil means identical.
func Diff(rec, got schema.Pair) []string { return DiffWithin(rec, got, model.Tolerance{}) }

// DiffWithin is Diff with y_ref, the kernel and the noise statistics
// allowed to differ by tol (exact when tol is zero): how a pair recorded
// by one device is checked against its regeneration on another.
func DiffWithin(rec, got schema.Pair, tol model.Tolerance) []string {
	var d []string
	scalar := func(name string, a, b any) {
		if a != b {
			d = append(d, fmt.Sprintf("%s: recorded %v, regenerated %v", name, a, b))
		}
	}
	scalar("sample_id", rec.SampleID, got.SampleID)
	scalar("seed", rec.Seed, got.Seed)
	scalar("weights_version", rec.WeightsVersion, got.WeightsVersion)
	scalar("weights_sha256", rec.WeightsSHA256, got.WeightsSHA256)
	scalar("source_image", rec.SourceImage, got.SourceImage)
	scalar("crop", [4]int32{rec.CropX, rec.CropY, rec.CropW, rec.CropH}, [4]int32{got.CropX, got.CropY, got.CropW, got.CropH})
	scalar("dihedral", rec.Dihedral, got.Dihedral)
	noise := func(name string, a, b float32) {
		if tol.Exact() {
			scalar(name, math.Float32bits(a), math.Float32bits(b))
		} else if !(math.Abs(float64(a)-float64(b)) <= tol.Noise) {
			d = append(d, fmt.Sprintf("%s: recorded %v, regenerated %v (more than %g apart)", name, a, b, tol.Noise))
		}
	}
	noise("noise_mean", rec.NoiseMean, got.NoiseMean)
	noise("noise_std", rec.NoiseStd, got.NoiseStd)
	if len(rec.XRef) != len(got.XRef) {
		d = append(d, fmt.Sprintf("x_ref: %d values recorded, %d regenerated", len(rec.XRef), len(got.XRef)))
	} else {
		n, worst := 0, 0
		for i := range rec.XRef {
			if rec.XRef[i] != got.XRef[i] {
				n++
				worst = max(worst, absInt(int(rec.XRef[i])-int(got.XRef[i])))
			}
		}
		if n > 0 {
			d = append(d, fmt.Sprintf("x_ref: %d of %d values differ (at most by %d)", n, len(rec.XRef), worst))
		}
	}
	floats := func(name string, a, b []float32, bound float64) {
		if len(a) != len(b) {
			d = append(d, fmt.Sprintf("%s: %d values recorded, %d regenerated", name, len(a), len(b)))
			return
		}
		n, worst := 0, 0.0
		for i := range a {
			diff := math.Abs(float64(a[i]) - float64(b[i]))
			if tol.Exact() && math.Float32bits(a[i]) != math.Float32bits(b[i]) || !tol.Exact() && !(diff <= bound) {
				n++
				worst = math.Max(worst, diff)
			}
		}
		if n > 0 && tol.Exact() {
			d = append(d, fmt.Sprintf("%s: %d of %d values differ (max |diff| %.3g)", name, n, len(a), worst))
		} else if n > 0 {
			d = append(d, fmt.Sprintf("%s: %d of %d values differ by more than %g (max |diff| %.3g)", name, n, len(a), bound, worst))
		}
	}
	floats("y_ref", rec.YRef, got.YRef, tol.YRef)
	floats("kernel", rec.Kernel, got.Kernel, tol.Kernel)
	return d
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
