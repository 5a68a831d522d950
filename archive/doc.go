// Package archive records a stretch of the pair stream into object storage
// and reads it back, so that a training run can be audited, replayed or
// compared against a regeneration long after JetStream's retention dropped
// the messages.
//
// # Layout (format "pdmflow-archive/1")
//
// An archive is a set of objects in a [store.Bucket] (a directory or an S3
// prefix):
//
//	messages/00000000000000000042.arrows   one object per stream message (MessageKey)
//	manifest.json                          the Manifest, written last
//
// Each message object holds exactly the bytes JetStream stored: one Arrow IPC
// stream as package schema encodes it, never re-encoded, so a replay decodes
// what the trainer decoded. Its size and SHA-256 are in the manifest, and
// [Reader.Read] checks both. Messages that schema.Decode refuses are archived
// too, with Message.Error set: a trainer drops them, and so does a replay.
//
// manifest.json is written after every message object, with a conditional
// put: an archive without it is incomplete (an export that failed or is
// still running) and [Open] refuses it, and [Export] refuses a destination
// that already holds one. The manifest is JSON with snake_case keys; readers
// ignore keys they do not know.
//
// # Ownership
//
// Export holds at most a few messages in memory at once (the ones being
// written, plus the consumer's buffer, bounded in bytes), whatever the size
// of the range. A Reader holds the manifest only; Read returns a fresh slice
// the caller owns. A Reader is safe for concurrent use.
package archive
