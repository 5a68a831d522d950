// Package schema defines the wire format of one batch of training pairs —
// HR crops x_ref and their degraded LR counterparts y_ref — as producers
// publish it to the trainer over NATS JetStream: one Apache Arrow IPC stream
// per message. It holds the Go types (Header, Pair, Batch), their
// validation, Encode and Decode, and ArrowSchema for other tools (pyarrow,
// other Arrow readers). It imports nothing else of pdmflow.
//
// # Message contract (schema version 1.1)
//
// A message is one self-contained Arrow IPC stream: the schema message, one
// record batch holding every row, and the 8-byte end-of-stream marker
// (0xFFFFFFFF 0x00000000). No dictionaries, no second batch, nothing after
// the marker. Body buffers may be compressed with LZ4 frame or Zstandard
// (Arrow IPC body compression). A message is at most
// DefaultMaxMessageBytes (8 MiB, the broker's max_payload) unless the
// reader is configured otherwise.
//
// What every row shares travels in the schema metadata (all values are
// strings):
//
//	pdmflow.schema_version  "1.1", or "1.0" when the message has no pdmflow.device
//	pdmflow.scale           "2", "3" or "4"
//	pdmflow.hr_shape        "3,H,W"   x_ref shape
//	pdmflow.lr_shape        "3,h,w"   y_ref shape; h = (H-1)/scale+1, w = (W-1)/scale+1
//	pdmflow.kernel_size     "k"       odd, or "0" for no kernels
//	pdmflow.degradation     "pdm", "bicubic" or "gaussian"
//	pdmflow.x_ref           "uint8 CHW RGB 0..255"        (descriptive)
//	pdmflow.y_ref           "float32 CHW RGB, unrounded"  (descriptive)
//	pdmflow.device          "KIND/PRECISION", e.g. "cuda/fp32": the arithmetic that
//	                        made y_ref, kernel and the noise statistics, when not
//	                        the CPU reference (1.1; absent for the CPU)
//
// The columns, in this order (all non-nullable except kernel):
//
//	sample_id        utf8     unique in the batch: "run/producer/batchseq/index"
//	run_id           utf8
//	producer_id      utf8
//	batch_seq        uint64   the producer's batch counter
//	index            uint32   row within the batch
//	seed             uint64   per-sample seed (crop, transform, latents)
//	weights_version  uint64   PDM weights version, 0 for none
//	weights_sha256   utf8     lower-case hex sha256 of the weights, "" exactly when weights_version is 0
//	source_image     utf8     id of the HR source image
//	crop_x, crop_y   int32    top-left of the crop box in the source (HR px, before the transform)
//	crop_w, crop_h   int32    size of the crop box
//	dihedral         uint8    0..7, see below
//	x_ref            fixed_size_list<uint8 not null>[3*H*W]      CHW, RGB
//	y_ref            fixed_size_list<float32 not null>[3*h*w]    CHW, RGB, not rounded or clamped
//	kernel           fixed_size_list<float32 not null>[k*k]      row-major; nullable
//	noise_mean       float32  mean of the added noise over the sample (0 for none)
//	noise_std        float32  its standard deviation (0 for none)
//
// x_ref, y_ref and kernel carry the field metadata pdmflow.shape ("3,H,W",
// "3,h,w", "k,k"). When kernel_size is 0 the kernel column has list size 1
// and every row is null (its child values are zeros): a list size of 0 is
// not supported by every Arrow implementation. When kernel_size is k > 0
// every row has a kernel: k*k finite non-negative values summing to 1
// (within KernelSumTolerance).
//
// # Dihedral transform
//
// x_ref (and y_ref, drawn from it) is the crop after the dihedral transform
// d. With the crop as an image C of crop_h rows and crop_w columns, the
// steps are applied in this order:
//
//  1. if d&1: flip left-right (reverse the columns, the last axis);
//  2. if d&2: flip up-down (reverse the rows, the second-last axis);
//  3. if d&4: transpose (swap rows and columns).
//
// The two flips commute; the transpose comes last. In numpy on a CHW array:
// x = x[..., ::-1] if d&1; x = x[..., ::-1, :] if d&2; x = x.swapaxes(-1, -2)
// if d&4. So pixel (r, c) of the result is C[y][x] with (u, v) = (c, r) if
// d&4 else (r, c), y = crop_h-1-u if d&2 else u, x = crop_w-1-v if d&1
// else v (DihedralSource computes it). Without resizing, H×W equals
// crop_h×crop_w, swapped when d&4; Validate does not check that.
//
// # Versioning
//
// Major (1) changes on any incompatible change; Decode rejects every other
// major with ErrVersion. Minor changes on compatible additions: extra
// metadata keys and extra columns after the ones above. Decode accepts a
// 1.x message of any minor, ignores what it does not know, and rejects extra
// columns only in a message that claims 1.0.
//
// # Limits and hostile input
//
// A batch holds 1..MaxPairs rows. Decode treats its input as untrusted:
// before arrow-go parses anything it walks the stream's framing and
// verifies every flatbuffer it will read (arrow-go trusts their vector
// lengths and would allocate whatever they claim), caps a schema at 4096
// fields nested at most 32 deep, checks every body buffer lies inside its
// message and that the record batch has the buffers its columns need,
// refuses zstd frames whose window exceeds max(8 MiB, the buffer's size),
// and refuses record batches that would decompress to more than
// max(64 MiB, 16×MaxMessageBytes) (ErrTooLarge). Panics arrow-go raises on
// the corrupt input that remains (bad compressed data, string offsets) are
// recovered as ErrInvalid, and the Arrow memory it leaks while unwinding is
// freed by Decode.
//
// # Ownership
//
// Encode returns a fresh []byte owned by the caller. An uncompressed message
// is laid out directly (NewMessage: one allocation, every column written in
// place, the same bytes as arrow-go's IPC writer gives, which the tests
// check); a compressed one goes through arrow-go, and every Arrow buffer
// allocated from EncodeOptions.Allocator is released before Encode returns.
// A producer uses NewMessage itself to cut its crops and write its y_ref
// straight into the message (Message.XRef, YRef, Kernel) and to reuse the
// buffers of acked messages. Decode
// returns ordinary Go memory: no Arrow buffer outlives the call, and
// everything allocated from DecodeOptions.Allocator is freed before it
// returns (on every error path too). But the batch may alias the message:
// when the record batch is uncompressed and its body starts 8-byte aligned
// in memory, the XRef, YRef and Kernel of the rows are windows into the
// message slice itself. The caller must then not modify or reuse the
// message while it uses those slices, and they keep the whole message
// alive. A body at an unaligned address is copied once into fresh aligned
// memory, which the slices share instead; compressed values, strings and
// scalars are always copied. Within a decoded Batch the XRef, YRef and
// Kernel of all rows are windows (with capacity clipped to their length) of
// one region per column, and the strings of a column share one backing
// string; a row's slices therefore keep the whole column's memory (or the
// whole message) alive. Encode and Decode never modify their inputs and are
// safe for concurrent use.
//
// # Errors
//
// Every error about a batch or message is an *Error wrapping one of
// ErrTooLarge, ErrTruncated, ErrVersion or ErrInvalid (use errors.Is), with
// a message naming the column or metadata key and, where it applies, the
// row: "schema: row 3: y_ref has 3071 values, want 3072 (3x32x32)".
package schema
