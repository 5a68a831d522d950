package schema

import (
	"math"
	"strings"
	"unicode/utf8"
)

// KernelSumTolerance is how far from 1 the sum of a kernel may be.
const KernelSumTolerance = 1e-3

// Validate checks the header alone: scale, sizes, the LR size formula, the
// kernel size and the degradation name.
func (h Header) Validate() error {
	switch {
	case h.Scale < 2 || h.Scale > 4:
		return invalidf(-1, "scale", "scale is %d, want 2, 3 or 4", h.Scale)
	case h.HRH < 1 || h.HRW < 1 || h.HRH > maxSide || h.HRW > maxSide:
		return invalidf(-1, "hr_shape", "hr_shape is 3x%dx%d, want sides in 1..%d", h.HRH, h.HRW, maxSide)
	}
	if lh, lw := LRSize(h.HRH, h.HRW, h.Scale); h.LRH != lh || h.LRW != lw {
		return invalidf(-1, "lr_shape", "lr_shape is 3x%dx%d, want 3x%dx%d for hr_shape 3x%dx%d at scale %d",
			h.LRH, h.LRW, lh, lw, h.HRH, h.HRW, h.Scale)
	}
	if k := h.KernelSize; k != 0 && (k < 0 || k%2 == 0 || k > maxKernelSize) {
		return invalidf(-1, "kernel_size", "kernel_size is %d, want 0 or odd in 1..%d", k, maxKernelSize)
	}
	switch h.Degradation {
	case DegradationPDM, DegradationBicubic, DegradationGaussian:
	default:
		return invalidf(-1, "degradation", "degradation is %q, want %q, %q or %q",
			clip(h.Degradation), DegradationPDM, DegradationBicubic, DegradationGaussian)
	}
	if !validDevice(h.Device) {
		return invalidf(-1, "device", "device is %q, want empty or KIND/PRECISION of at most %d characters a-z, 0-9, '.', '_', '-' and one '/'", clip(h.Device), maxDevice)
	}
	return nil
}

// maxDevice bounds Header.Device.
const maxDevice = 32

// validDevice reports whether d is empty or KIND/PRECISION of lower-case
// letters, digits, '.', '_' and '-'.
func validDevice(d string) bool {
	if d == "" {
		return true
	}
	if len(d) > maxDevice {
		return false
	}
	kind, prec, ok := strings.Cut(d, "/")
	if !ok || kind == "" || prec == "" || strings.Contains(prec, "/") {
		return false
	}
	for _, c := range kind + prec {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Validate checks the header and every row against it and returns an *Error
// (wrapping ErrInvalid) naming the field and row of the first problem:
//
//   - the header (see Header.Validate); 1..MaxPairs rows;
//   - source_image non-empty, all strings valid UTF-8; run_id and
//     producer_id valid ids (ValidID); sample_id exactly
//     FormatSampleID(run_id, producer_id, batch_seq, index), so unique
//     within the batch (ParseSampleID reads it back);
//   - weights_sha256 empty or 64 lower-case hex digits, and empty exactly
//     when weights_version is 0;
//   - crop_x, crop_y >= 0, crop_w, crop_h >= 1, dihedral < 8;
//   - x_ref of 3*HRH*HRW values, y_ref of 3*LRH*LRW finite values (any sign
//     or magnitude);
//   - kernel nil (or empty) when KernelSize is 0, else KernelSize² finite,
//     non-negative values summing to 1 within KernelSumTolerance;
//   - noise_mean finite, noise_std finite and >= 0.
//
// Index is not checked against the row position (a trainer's checkpoint
// keeps pairs of many batches in one) and Crop* not against the HR size:
// they are provenance, recorded as the producer saw them.
func (b *Batch) Validate() error {
	if err := b.Header.Validate(); err != nil {
		return err
	}
	if len(b.Pairs) == 0 {
		return invalidf(-1, "", "batch has no pairs")
	}
	if len(b.Pairs) > MaxPairs {
		return invalidf(-1, "", "batch has %d pairs, limit %d", len(b.Pairs), MaxPairs)
	}
	seen := make(map[string]int, len(b.Pairs))
	for i := range b.Pairs {
		if err := b.validatePair(i); err != nil {
			return err
		}
		id := b.Pairs[i].SampleID
		if j, dup := seen[id]; dup {
			return invalidf(i, ColSampleID, "sample_id %q repeats row %d", clip(id), j)
		}
		seen[id] = i
	}
	return nil
}

func (b *Batch) validatePair(i int) error {
	p := &b.Pairs[i]
	for _, s := range [...]struct {
		name, v  string
		nonEmpty bool
	}{
		{ColSampleID, p.SampleID, true},
		{ColRunID, p.RunID, true},
		{ColProducerID, p.ProducerID, true},
		{ColWeightsSHA256, p.WeightsSHA256, false},
		{ColSourceImage, p.SourceImage, true},
	} {
		if s.nonEmpty && s.v == "" {
			return invalidf(i, s.name, "%s is empty", s.name)
		}
		if !utf8.ValidString(s.v) {
			return invalidf(i, s.name, "%s is not valid UTF-8", s.name)
		}
	}
	if !ValidID(p.RunID) {
		return invalidf(i, ColRunID, "run_id %q is not an id: use 1-%d characters of A-Z a-z 0-9 _ -", clip(p.RunID), MaxIDLen)
	}
	if !ValidID(p.ProducerID) {
		return invalidf(i, ColProducerID, "producer_id %q is not an id: use 1-%d characters of A-Z a-z 0-9 _ -", clip(p.ProducerID), MaxIDLen)
	}
	if want := FormatSampleID(p.RunID, p.ProducerID, p.BatchSeq, p.Index); p.SampleID != want {
		return invalidf(i, ColSampleID, "sample_id %q does not name its row: want %q (run_id/producer_id/batch_seq/index)", clip(p.SampleID), want)
	}
	if p.WeightsSHA256 != "" && !isLowerHex64(p.WeightsSHA256) {
		return invalidf(i, ColWeightsSHA256, "weights_sha256 %q is not 64 lower-case hex digits", clip(p.WeightsSHA256))
	}
	if (p.WeightsVersion == 0) != (p.WeightsSHA256 == "") {
		return invalidf(i, ColWeightsSHA256, "weights_sha256 %q does not go with weights_version %d (both set or both none)",
			clip(p.WeightsSHA256), p.WeightsVersion)
	}
	switch {
	case p.CropX < 0:
		return invalidf(i, ColCropX, "crop_x is %d, want >= 0", p.CropX)
	case p.CropY < 0:
		return invalidf(i, ColCropY, "crop_y is %d, want >= 0", p.CropY)
	case p.CropW < 1:
		return invalidf(i, ColCropW, "crop_w is %d, want >= 1", p.CropW)
	case p.CropH < 1:
		return invalidf(i, ColCropH, "crop_h is %d, want >= 1", p.CropH)
	case p.Dihedral > 7:
		return invalidf(i, ColDihedral, "dihedral is %d, want 0..7", p.Dihedral)
	}
	h := &b.Header
	if want := 3 * h.HRH * h.HRW; len(p.XRef) != want {
		return invalidf(i, ColXRef, "x_ref has %d values, want %d (3x%dx%d)", len(p.XRef), want, h.HRH, h.HRW)
	}
	if want := 3 * h.LRH * h.LRW; len(p.YRef) != want {
		return invalidf(i, ColYRef, "y_ref has %d values, want %d (3x%dx%d)", len(p.YRef), want, h.LRH, h.LRW)
	}
	if j := firstNonFinite(p.YRef); j >= 0 {
		return invalidf(i, ColYRef, "y_ref[%d] is %v, want a finite value", j, p.YRef[j])
	}
	if err := validateKernel(i, h.KernelSize, p.Kernel); err != nil {
		return err
	}
	if !finite(p.NoiseMean) {
		return invalidf(i, ColNoiseMean, "noise_mean is %v, want a finite value", p.NoiseMean)
	}
	if !finite(p.NoiseStd) || p.NoiseStd < 0 {
		return invalidf(i, ColNoiseStd, "noise_std is %v, want a finite value >= 0", p.NoiseStd)
	}
	return nil
}

func validateKernel(i, k int, kern []float32) error {
	if k == 0 {
		if len(kern) != 0 {
			return invalidf(i, ColKernel, "kernel has %d values, want none (kernel_size 0)", len(kern))
		}
		return nil
	}
	if len(kern) != k*k {
		if kern == nil {
			return invalidf(i, ColKernel, "kernel is null, want %d values (%dx%d)", k*k, k, k)
		}
		return invalidf(i, ColKernel, "kernel has %d values, want %d (%dx%d)", len(kern), k*k, k, k)
	}
	var sum float64
	for j, v := range kern {
		if !finite(v) || v < 0 {
			return invalidf(i, ColKernel, "kernel[%d] is %v, want a finite value >= 0", j, v)
		}
		sum += float64(v)
	}
	if math.Abs(sum-1) > KernelSumTolerance {
		return invalidf(i, ColKernel, "kernel sums to %g, want 1 ± %g", sum, KernelSumTolerance)
	}
	return nil
}

// firstNonFinite returns the index of the first NaN or ±Inf in v, or -1.
// The common all-finite case is one branch-free pass: adding 1 to an
// all-ones exponent carries into the sign bit, and only then.
func firstNonFinite(v []float32) int {
	const exp, one = 0x7f800000, 0x00800000
	var a0, a1, a2, a3 uint32
	i := 0
	for ; i+4 <= len(v); i += 4 {
		a0 |= math.Float32bits(v[i])&exp + one
		a1 |= math.Float32bits(v[i+1])&exp + one
		a2 |= math.Float32bits(v[i+2])&exp + one
		a3 |= math.Float32bits(v[i+3])&exp + one
	}
	for ; i < len(v); i++ {
		a0 |= math.Float32bits(v[i])&exp + one
	}
	if (a0|a1|a2|a3)&0x80000000 == 0 {
		return -1
	}
	for j, x := range v {
		if !finite(x) {
			return j
		}
	}
	return -1
}

// finite reports whether v is neither NaN nor ±Inf (exponent not all ones).
func finite(v float32) bool { return math.Float32bits(v)&0x7f800000 != 0x7f800000 }

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
