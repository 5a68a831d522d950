// Package store is where pdmflow keeps its artifacts: the trainer publishes
// model weights to a bucket, and producer processes poll that bucket and
// hot-reload new weights from it. Later, Arrow archives of training data live
// there too.
//
// A bucket is opened by URL with [Open]:
//
//	file:///abs/dir        a directory on the local disk (the default)
//	file://rel/dir         a directory relative to the working directory
//	rel/dir, /abs/dir      a plain path is the same as file://
//	s3://bucket            an S3 bucket (any S3-compatible server)
//	s3://bucket/a/prefix   the keys under "a/prefix/" of an S3 bucket
//
// Whatever the URL, the caller gets the same concrete [*Bucket]; the storage
// behind it is a small unexported driver, and one conformance suite
// (package store/storetest) is run against every driver, so code written and
// tested against a temporary directory behaves the same against S3.
//
// # Keys
//
// Keys are '/'-separated paths: non-empty, at most 1024 bytes, valid UTF-8,
// no leading '/', no empty, "." or ".." segments, no backslash, no NUL or
// other ASCII control character. Anything else is rejected with
// [ErrInvalidKey] by every driver, before any I/O. The file driver resolves
// keys with [os.Root], so no key and no symbolic link inside the directory
// can make it read or write outside its root.
//
// # Driver differences
//
// The conformance suite pins down the common behaviour; what it leaves out:
//
//   - File: keys "a" and "a/b" cannot both exist (a file cannot be a
//     directory); writing the second fails with a plain error. Versitygw's
//     posix backend has the same limit; AWS S3 does not. Each path segment
//     is limited by the filesystem, usually to 255 bytes.
//   - S3: the bucket prefix counts against S3's 1024-byte key limit.
//     Stat's ModTime has second precision. List never shows the
//     ".pdmflow-probe/" scratch prefix (see PutIfAbsent).
//
// # Errors
//
// Every error starts with "store: ". Callers branch with [errors.Is] on
// [ErrNotFound], [ErrExists], [ErrHashMismatch] and [ErrInvalidKey], and on
// [context.Canceled] or [context.DeadlineExceeded] when their context ends.
//
// # Writes
//
// [Bucket.Put] replaces an object atomically: a reader sees the old object or
// the new one, never a mix (file: temporary file, fsync, rename, fsync of the
// directory; S3: a single PUT). [Bucket.PutIfAbsent] writes only if the key
// is free; see its documentation for what "atomic" means per driver.
//
// # Large objects
//
// Put and Get hold the whole object in memory, which is right for weights
// (a few MB to ~20 MB). For objects of hundreds of MB use [Bucket.PutFile]
// and [Bucket.GetToFile], which stream between a local file and the bucket
// (S3: multipart upload in 16 MiB parts) and never hold the object in
// memory; GetToFile replaces its target file atomically.
//
// # Weights
//
// Weights are content-addressed: [PutWeights] stores a safetensors file under
// [WeightsKey] of its SHA-256, so publishing is idempotent and an object,
// once written, never changes; [GetVerified] checks the hash on the way back.
//
// # S3 timeouts
//
// A dead or unreachable S3 endpoint must not hang a trainer or producer. The
// s3 driver dials with a 5 s timeout, waits at most 30 s for response headers,
// makes at most 3 attempts per request (minio-go's backoff: 200 ms unit, 1 s
// cap), and bounds every call except PutFile and GetToFile by Config.Timeout
// (default 60 s). PutFile and GetToFile take as long as the transfer needs and
// are bounded by the caller's context. A refused connection fails in about a
// second.
package store
