package schema

import (
	"bytes"
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

// bodyAlign is the alignment msgReader guarantees for the bodies it hands
// arrow-go, which views their buffers as []uint64, []float32 and so on. The
// IPC format pads every buffer to a multiple of 8 inside its body.
const bodyAlign = 8

// frame is one IPC message of a stream: its flatbuffer metadata and its
// body, both slices of the stream.
type frame struct {
	meta, body []byte
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

// newMsgReader makes the reader of the stream whose messages scanStream
// located (rb.frames). It charges ar for each body as arrow-go's own reader
// did when it copied the body into ar, so that the budget left for
// decompression is what it was.
func newMsgReader(rb *ipcMsg, ar *arena) (*msgReader, error) {
	fs := rb.frames
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
	r := &msgReader{frames: fs[:], region: fs[1].body}
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
func view[T fixedWidth](region, b []byte) ([]T, bool) {
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
