// Package pairset writes the pairs of the degradation stream as a dataset
// that tools outside pdmflow read: BasicSR's paired image folders, or
// Parquet files with one row per pair. The stream itself (Arrow IPC
// messages over JetStream, or an archive of them) stays the exact record;
// a pairset is a copy for training elsewhere, with every pair's
// provenance kept beside it.
//
// A [Writer] takes decoded batches in stream order ([Writer.Add]) and, on
// [Writer.Close], writes its [Manifest] (pairset.json) last, with a
// conditional put: a destination without it holds an unfinished export. A
// destination that already holds one is refused ([ErrExists]). A sample id
// seen before is skipped and counted (a producer that republished a batch),
// so each pair appears once.
//
// # BasicSR layout (format "pdmflow-basicsr/1")
//
//	HR/NAME.png               x_ref, 8-bit RGB (exactly the stream's bytes)
//	LR/NAME.png               y_ref, clamped to [0, 1], times 255, rounded: 8-bit RGB
//	meta_info.txt             "NAME.png (H,W,3)" per pair, HR size, in stream order
//	provenance/PART.jsonl     one JSON object per pair (the columns below but x_ref and y_ref)
//	pairset.json              the Manifest, written last
//
// NAME is the sample id "run/producer/batch/index" with "." for "/" and
// the batch and index zero-padded ("run.p0.00000042.0003"); ids hold only
// letters, digits, "_" and "-", so names are unique. BasicSR's
// PairedImageDataset reads it with dataroot_gt: HR, dataroot_lq: LR and
// meta_info_file: meta_info.txt (the LR file has the HR file's name).
// Rounding y_ref to 8 bits loses what the stream keeps (y_ref is not
// rounded there); the Parquet layout keeps it exactly.
//
// # Parquet layout (format "pdmflow-parquet/1")
//
//	pairs-00000.parquet ...   RowsPerFile rows each, row groups of RowGroupRows
//	pairset.json              the Manifest, written last
//
// Each row is one pair, with the columns of [Columns]: the sample's ids,
// seed, weights, source and crop, its shapes, x_ref (list<uint8>, CHW RGB,
// 3*hr_h*hr_w values), y_ref (list<float32>, CHW RGB, 3*lr_h*lr_w values,
// exactly the stream's), kernel (list<float32>, kernel_size^2 values
// row-major, null when the batch has none), the noise statistics, and the
// stream sequence, time and subject of the message it came in. Integers
// keep the stream's signedness (uint64 seeds are UINT_64). The file's
// key-value metadata holds pdmflow.format and pdmflow.version.
package pairset
