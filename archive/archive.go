package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pdmflow/pdmflow/schema"
)

// Format names the archive layout this package writes and reads. A reader
// refuses any other value.
const Format = "pdmflow-archive/1"

// ManifestKey is the object key of the manifest.
const ManifestKey = "manifest.json"

// Stream defaults; they match consumer.StreamConfig's (a test checks it).
const (
	DefaultStream = "PDMFLOW_PAIRS"
	DefaultFilter = "pdmflow.pairs.>"
)

// MessageKey returns the object key of the message at stream sequence seq:
// "messages/" + seq as 20 decimal digits + ".arrows", so that keys sort in
// stream order.
func MessageKey(seq uint64) string {
	return fmt.Sprintf("messages/%020d.arrows", seq)
}

// Sentinel errors, testable with errors.Is. Returned errors wrap one and
// name the archive and the key concerned.
var (
	ErrIncomplete = errors.New("archive: incomplete archive")                 // no manifest.json, or a message object missing
	ErrManifest   = errors.New("archive: invalid manifest")                   // unreadable, wrong format, inconsistent
	ErrCorrupt    = errors.New("archive: corrupt message")                    // size or SHA-256 differs from the manifest
	ErrExists     = errors.New("archive: destination already has a manifest") // Export into a finished archive
	ErrEmpty      = errors.New("archive: no messages in the range")
	ErrNotFound   = errors.New("archive: sample not in the archive")
)

// Message describes one archived stream message.
type Message struct {
	Seq      uint64    `json:"seq"`     // stream sequence
	Time     time.Time `json:"time"`    // stream timestamp
	Subject  string    `json:"subject"` // the subject it was published to
	Key      string    `json:"key"`     // object key of the message bytes (MessageKey(Seq))
	Bytes    int       `json:"bytes"`   // length of the message
	SHA256   string    `json:"sha256"`  // lower-case hex SHA-256 of the exact message bytes
	Run      string    `json:"run,omitempty"`
	Producer string    `json:"producer,omitempty"`
	BatchSeq uint64    `json:"batch_seq,omitempty"`
	Pairs    int       `json:"pairs,omitempty"`
	// Header holds the message's NATS headers Nats-Msg-Id,
	// Pdmflow-Batch-Seq, Pdmflow-Pairs and Pdmflow-Weights-Version (those it
	// had): a replay checks the rows against them as the trainer did. nil
	// in archives written before headers were recorded.
	Header map[string]string `json:"header,omitempty"`
	// WeightsVersion and WeightsSHA256 are the first row's; the rows of one
	// batch share them (a producer swaps weights between batches).
	WeightsVersion uint64 `json:"weights_version,omitempty"`
	WeightsSHA256  string `json:"weights_sha256,omitempty"`
	// Error is set when schema.Decode refused the message. It is archived
	// anyway: a trainer drops it, and a replay drops it the same way. Run,
	// Producer, BatchSeq, Pairs and the weights are then empty.
	Error string `json:"error,omitempty"`
}

// Weights is one PDM weights version that made pairs in the archive.
type Weights struct {
	Run     string `json:"run"`
	Version uint64 `json:"version"`
	SHA256  string `json:"sha256"`
}

// Manifest describes an archive: where its messages came from, what they
// hold, and every message in stream order.
type Manifest struct {
	Format  string    `json:"format"`  // Format
	Created time.Time `json:"created"` // when the export finished
	Stream  string    `json:"stream"`  // JetStream stream name
	Filter  string    `json:"filter"`  // subject filter of the export

	// The range actually archived: the first and last message's sequence
	// and timestamp.
	FirstSeq  uint64    `json:"first_seq"`
	LastSeq   uint64    `json:"last_seq"`
	FirstTime time.Time `json:"first_time"`
	LastTime  time.Time `json:"last_time"`

	Runs []string `json:"runs"` // distinct run ids of the decodable messages, sorted
	// Weights lists the distinct PDM weights of every decodable row, sorted
	// by run then version. Rows without weights (version 0: bicubic or
	// gaussian pairs) are not listed.
	Weights []Weights `json:"weights"`
	// Header is the first decodable message's (nil when there is none).
	// In JSON its keys are scale, hr_h, hr_w, lr_h, lr_w, kernel_size and
	// degradation.
	Header *schema.Header `json:"header,omitempty"`

	Pairs    int       `json:"pairs"` // rows of the decodable messages
	Bytes    int64     `json:"bytes"` // bytes of all messages
	Messages []Message `json:"messages"`
}

// headerJSON is schema.Header with the archive's snake_case keys.
type headerJSON struct {
	Scale       int    `json:"scale"`
	HRH         int    `json:"hr_h"`
	HRW         int    `json:"hr_w"`
	LRH         int    `json:"lr_h"`
	LRW         int    `json:"lr_w"`
	KernelSize  int    `json:"kernel_size"`
	Degradation string `json:"degradation"`
}

// manifestAlias has Manifest's fields without its methods.
type manifestAlias Manifest

// manifestJSON shadows the embedded Header with the snake_case form: the
// shallower field wins in encoding/json.
type manifestJSON struct {
	*manifestAlias
	Header *headerJSON `json:"header,omitempty"`
}

// MarshalJSON encodes m with snake_case keys throughout, the header's
// included.
func (m Manifest) MarshalJSON() ([]byte, error) {
	j := manifestJSON{manifestAlias: (*manifestAlias)(&m)}
	if h := m.Header; h != nil {
		j.Header = &headerJSON{h.Scale, h.HRH, h.HRW, h.LRH, h.LRW, h.KernelSize, h.Degradation}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON writes.
func (m *Manifest) UnmarshalJSON(b []byte) error {
	var a manifestAlias
	j := manifestJSON{manifestAlias: &a}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = Manifest(a)
	m.Header = nil
	if h := j.Header; h != nil {
		m.Header = &schema.Header{Scale: h.Scale, HRH: h.HRH, HRW: h.HRW, LRH: h.LRH, LRW: h.LRW, KernelSize: h.KernelSize, Degradation: h.Degradation}
	}
	return nil
}

// parseManifest decodes and validates a manifest: the format, sequences in
// strictly increasing order (so unique), each key MessageKey(seq), sizes
// and hashes well formed. Errors wrap ErrManifest and say what is wrong
// where, but not which archive (the caller adds that).
func parseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrManifest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrManifest)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrManifest, m.Format, Format)
	}
	for i := range m.Messages {
		msg := &m.Messages[i]
		if i > 0 && msg.Seq <= m.Messages[i-1].Seq {
			return nil, fmt.Errorf("%w: message %d: seq %d does not follow seq %d (sequences must increase)", ErrManifest, i, msg.Seq, m.Messages[i-1].Seq)
		}
		if want := MessageKey(msg.Seq); msg.Key != want {
			return nil, fmt.Errorf("%w: message %d (seq %d): key %q, want %q", ErrManifest, i, msg.Seq, msg.Key, want)
		}
		if msg.Bytes < 0 {
			return nil, fmt.Errorf("%w: message %d (%s): negative size %d", ErrManifest, i, msg.Key, msg.Bytes)
		}
		if !isSHA256(msg.SHA256) {
			return nil, fmt.Errorf("%w: message %d (%s): sha256 %q is not 64 lower-case hex digits", ErrManifest, i, msg.Key, clip(msg.SHA256))
		}
	}
	if n := len(m.Messages); n > 0 && (m.FirstSeq != m.Messages[0].Seq || m.LastSeq != m.Messages[n-1].Seq) {
		return nil, fmt.Errorf("%w: range %d..%d does not match its messages (%d..%d)", ErrManifest, m.FirstSeq, m.LastSeq, m.Messages[0].Seq, m.Messages[n-1].Seq)
	}
	return &m, nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// clip shortens a string from a file for quoting in an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
