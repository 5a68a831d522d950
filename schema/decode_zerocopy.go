package schema

import (
	"bytes"
	"encoding/binary"
	"io"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// This file lets Decode read a message in place. arrow-go's own message
// reader copies every body into a fresh (zeroed) buffer; msgReader instead
// hands arrow-go the bodies as they lie in the message, so that the arrays
// it builds point into the message, and readList can return their values
// without copying them (view).

// wireScalar is what readFixed and readList read out of Arrow buffers.
type wireScalar interface {
	~uint8 | ~uint32 | ~uint64 | ~int32 | ~int64 | ~float32
}

// bodyAlign is the alignment msgReader guarantees for the bodies it hands
// arrow-go, which views their buffers as []uint64, []float32 and so on. The
// IPC format pads every buffer to a multiple of 8 inside its body.
const bodyAlign = 8

// frame is one IPC message of a stream: its flatbuffer metadata and its
// body, both slices of the stream.
type frame struct {
	meta, body []byte
}

// streamFrames locates the messages of msg, which scanStream has verified:
// it re-walks the framing only to find them, checking bounds again rather
// than trusting the earlier walk.
func streamFrames(msg []byte) ([]frame, error) {
	var fs []frame
	pos := 0
	for {
		if len(msg)-pos < 8 || binary.LittleEndian.Uint32(msg[pos:]) != 0xFFFFFFFF {
			return nil, invalidf(-1, "", "message %d at byte %d has no continuation marker", len(fs), pos)
		}
		mlen := int(int32(binary.LittleEndian.Uint32(msg[pos+4:])))
		pos += 8
		if mlen == 0 {
			break
		}
		if mlen < 0 || mlen > len(msg)-pos {
			return nil, invalidf(-1, "", "message %d has metadata length %d, %d bytes left", len(fs), mlen, len(msg)-pos)
		}
		meta := msg[pos : pos+mlen]
		pos += mlen
		n, err := bodyLength(meta)
		if err != nil {
			return nil, invalidf(-1, "", "metadata of message %d: %v", len(fs), err)
		}
		if n < 0 || n > int64(len(msg)-pos) {
			return nil, invalidf(-1, "", "message %d has body length %d, %d bytes left", len(fs), n, len(msg)-pos)
		}
		fs = append(fs, frame{meta: meta, body: msg[pos : pos+int(n) : pos+int(n)]})
		pos += int(n)
	}
	if pos != len(msg) {
		return nil, invalidf(-1, "", "%d bytes after the end-of-stream marker", len(msg)-pos)
	}
	return fs, nil
}

// bodyLength reads Message.bodyLength from message metadata.
func bodyLength(meta []byte) (int64, error) {
	f := &fbuf{b: meta}
	if len(meta) < 4 {
		return 0, fbError("metadata shorter than a flatbuffer")
	}
	root, err := f.indirect(0)
	if err != nil {
		return 0, err
	}
	t, err := f.table(root)
	if err != nil {
		return 0, err
	}
	p, err := f.scalar(t, 3, 8)
	if err != nil || p == 0 {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(meta[p:])), nil
}

// msgReader is an ipc.MessageReader over the messages of one stream, which
// scanStream has verified. Metadata is copied (it is small, and nothing
// arrow-go keeps from it should alias msg); the record batch body is handed
// over in place when it is aligned, else as one aligned copy. Either way
// region is that body: the arrays arrow-go builds from it point into it.
type msgReader struct {
	refs   atomic.Int64
	frames []frame
	next   int
	cur    *ipc.Message
	region []byte
}

// newMsgReader makes the reader of msg. It charges ar for each body as
// arrow-go's own reader did when it copied the body into ar, so that the
// budget left for decompression is what it was.
func newMsgReader(msg []byte, ar *arena) (*msgReader, error) {
	fs, err := streamFrames(msg)
	if err != nil {
		return nil, err
	}
	if len(fs) != 2 { // scanStream checked: a schema, then a record batch
		return nil, invalidf(-1, "", "stream has %d messages, want 2", len(fs))
	}
	for i := range fs {
		f := &fs[i]
		if len(f.body) == 0 {
			continue
		}
		if err := ar.charge((len(f.body) + 63) &^ 63); err != nil {
			return nil, err
		}
		if !aligned(f.body, bodyAlign) {
			f.body = alignedCopy(f.body)
		}
	}
	r := &msgReader{frames: fs, region: fs[1].body}
	r.refs.Add(1)
	return r, nil
}

func (r *msgReader) Message() (*ipc.Message, error) {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.next >= len(r.frames) {
		return nil, io.EOF
	}
	f := r.frames[r.next]
	r.next++
	r.cur = ipc.NewMessage(memory.NewBufferBytes(bytes.Clone(f.meta)), memory.NewBufferBytes(f.body))
	return r.cur, nil
}

func (r *msgReader) Retain() { r.refs.Add(1) }

func (r *msgReader) Release() {
	if r.refs.Add(-1) == 0 && r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}

// addr is the address of b's first element.
func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func aligned(b []byte, n uintptr) bool { return addr(b)%n == 0 }

// alignedCopy copies b into fresh memory aligned to 8 bytes.
func alignedCopy(b []byte) []byte {
	w := make([]uint64, (len(b)+7)/8)
	out := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), len(b))
	copy(out, b)
	return out[:len(b):len(b)]
}

// view returns the values in b as a []T sharing b's memory, with capacity
// clipped to its length, when b lies entirely inside region (compared by
// address: b may as well be a buffer arrow-go allocated and decompressed
// into) and is aligned for T. Otherwise it returns false and the caller
// copies. len(b) is a multiple of T's size.
func view[T wireScalar](region, b []byte) ([]T, bool) {
	var zero T
	size := unsafe.Sizeof(zero)
	if len(region) == 0 || len(b) == 0 || uintptr(len(b))%size != 0 {
		return nil, false
	}
	r0, b0 := addr(region), addr(b)
	if b0 < r0 {
		return nil, false
	}
	off := b0 - r0
	if off > uintptr(len(region)) || uintptr(len(b)) > uintptr(len(region))-off {
		return nil, false
	}
	if b0%unsafe.Alignof(zero) != 0 {
		return nil, false
	}
	// Derive the pointer from region, the memory this package handed
	// arrow-go, rather than from arrow-go's buffer.
	n := len(b) / int(size)
	return unsafe.Slice((*T)(unsafe.Pointer(&region[off])), n)[:n:n], true
}
