package pairset

import (
	"time"

	"github.com/pdmflow/pdmflow/schema"
)

// Column describes one column of the Parquet layout (and, but for x_ref
// and y_ref, one key of a BasicSR provenance line).
type Column struct {
	Name string
	Type string // the Arrow type a Parquet reader gives it
	Doc  string
}

// Columns are the Parquet layout's columns, in file order.
var Columns = []Column{
	{"sample_id", "string", `"run/producer/batch_seq/index"`},
	{"name", "string", "the file stem of the pair in the BasicSR layout (Name)"},
	{"run_id", "string", "the training run"},
	{"producer_id", "string", "the producer that made the pair"},
	{"batch_seq", "uint64", "the producer's batch counter"},
	{"index", "uint32", "row within the batch"},
	{"seed", "uint64", "the per-sample seed that drew crop, transform and latents"},
	{"weights_version", "uint64", "PDM weights version (0: none)"},
	{"weights_sha256", "string", "sha256 of those weights (empty: none)"},
	{"source_image", "string", "the HR source image"},
	{"crop_x", "int32", "crop box in the source image, HR pixels before the transform"},
	{"crop_y", "int32", ""},
	{"crop_w", "int32", ""},
	{"crop_h", "int32", ""},
	{"dihedral", "uint8", "transform of the crop: bit0 flip left-right, bit1 flip up-down, bit2 transpose"},
	{"scale", "int32", "SR factor"},
	{"hr_h", "int32", "x_ref height"},
	{"hr_w", "int32", "x_ref width"},
	{"lr_h", "int32", "y_ref height"},
	{"lr_w", "int32", "y_ref width"},
	{"kernel_size", "int32", "side of the kernel (0: none)"},
	{"degradation", "string", `"pdm", "bicubic" or "gaussian"`},
	{"device", "string", `the arithmetic that made y_ref when not the CPU reference, e.g. "cuda/fp32"`},
	{"x_ref", "list<uint8>", "HR crop, CHW RGB, 3*hr_h*hr_w bytes"},
	{"y_ref", "list<float32>", "LR image, CHW RGB, 3*lr_h*lr_w values, as generated: not rounded or clamped"},
	{"kernel", "list<float32>", "blur kernel, kernel_size^2 values row-major; null when none"},
	{"noise_mean", "float32", "mean of the added noise"},
	{"noise_std", "float32", "its standard deviation"},
	{"stream_seq", "uint64", "stream sequence of the message"},
	{"stream_time", "timestamp[ns, UTC]", "its stream timestamp"},
	{"subject", "string", "the subject it was published to"},
}

// provenance is one pair without its images: a BasicSR provenance line.
type provenance struct {
	SampleID       string    `json:"sample_id"`
	Name           string    `json:"name"`
	RunID          string    `json:"run_id"`
	ProducerID     string    `json:"producer_id"`
	BatchSeq       uint64    `json:"batch_seq"`
	Index          uint32    `json:"index"`
	Seed           uint64    `json:"seed"`
	WeightsVersion uint64    `json:"weights_version"`
	WeightsSHA256  string    `json:"weights_sha256"`
	SourceImage    string    `json:"source_image"`
	CropX          int32     `json:"crop_x"`
	CropY          int32     `json:"crop_y"`
	CropW          int32     `json:"crop_w"`
	CropH          int32     `json:"crop_h"`
	Dihedral       uint8     `json:"dihedral"`
	Scale          int       `json:"scale"`
	HRH            int       `json:"hr_h"`
	HRW            int       `json:"hr_w"`
	LRH            int       `json:"lr_h"`
	LRW            int       `json:"lr_w"`
	KernelSize     int       `json:"kernel_size"`
	Degradation    string    `json:"degradation"`
	Device         string    `json:"device"`
	Kernel         []float32 `json:"kernel"`
	NoiseMean      float32   `json:"noise_mean"`
	NoiseStd       float32   `json:"noise_std"`
	StreamSeq      uint64    `json:"stream_seq"`
	StreamTime     time.Time `json:"stream_time"`
	Subject        string    `json:"subject"`
}

func newProvenance(o Origin, h *schema.Header, p *schema.Pair, name string) provenance {
	return provenance{
		SampleID: p.SampleID, Name: name, RunID: p.RunID, ProducerID: p.ProducerID, BatchSeq: p.BatchSeq, Index: p.Index,
		Seed: p.Seed, WeightsVersion: p.WeightsVersion, WeightsSHA256: p.WeightsSHA256, SourceImage: p.SourceImage,
		CropX: p.CropX, CropY: p.CropY, CropW: p.CropW, CropH: p.CropH, Dihedral: p.Dihedral,
		Scale: h.Scale, HRH: h.HRH, HRW: h.HRW, LRH: h.LRH, LRW: h.LRW, KernelSize: h.KernelSize,
		Degradation: h.Degradation, Device: h.Device, Kernel: p.Kernel, NoiseMean: p.NoiseMean, NoiseStd: p.NoiseStd,
		StreamSeq: o.Seq, StreamTime: o.Time.UTC(), Subject: o.Subject,
	}
}
