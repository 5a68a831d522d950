package schema

import (
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// arena is the allocator Decode hands to arrow-go. It forwards to the
// caller's allocator and
//
//   - caps the bytes outstanding at limit, so that a small message cannot make
//     the decompressor allocate without bound (a compression bomb, or a
//     corrupt uncompressed-length prefix); exceeding it panics with
//     errBudget, which arrow-go's reader recovers into an error, and sets
//     exceeded so Decode reports ErrTooLarge;
//   - remembers every live allocation, so that after Decode has released
//     everything it holds, sweep can free what arrow-go leaked while
//     unwinding from a panic on corrupt input. On every path that does not
//     go through such a panic nothing is left to sweep (the tests check it).
type arena struct {
	mem   memory.Allocator
	limit int

	mu       sync.Mutex
	live     map[*byte][]byte
	size     int
	exceeded bool
}

type budgetError struct{ limit int }

func (e budgetError) Error() string { return "schema: decoded buffers exceed the decode budget" }

func newArena(mem memory.Allocator, limit int) *arena {
	return &arena{mem: mem, limit: limit, live: make(map[*byte][]byte)}
}

func (a *arena) reserve(delta int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if delta < 0 || a.size+delta > a.limit {
		a.exceeded = true
		panic(budgetError{a.limit})
	}
	a.size += delta
}

// charge counts n bytes against the limit without allocating them, for
// memory Decode holds on arrow-go's behalf outside the allocator (the
// message body it reads in place). Nothing uncharges them: they count
// until the end of the Decode.
func (a *arena) charge(n int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n < 0 || a.size+n > a.limit {
		a.exceeded = true
		return a.budgetErr()
	}
	a.size += n
	return nil
}

func (a *arena) track(b []byte) {
	if len(b) == 0 {
		return
	}
	a.mu.Lock()
	a.live[unsafe.SliceData(b)] = b
	a.mu.Unlock()
}

func (a *arena) untrack(b []byte) {
	if len(b) == 0 {
		return
	}
	a.mu.Lock()
	delete(a.live, unsafe.SliceData(b))
	a.size -= len(b)
	a.mu.Unlock()
}

func (a *arena) Allocate(size int) []byte {
	a.reserve(size)
	b := a.mem.Allocate(size)
	a.track(b)
	return b
}

func (a *arena) Reallocate(size int, b []byte) []byte {
	if size < 0 {
		a.reserve(-1) // panics
	}
	a.reserve(size)
	a.untrack(b)
	nb := a.mem.Reallocate(size, b)
	a.track(nb)
	return nb
}

func (a *arena) Free(b []byte) {
	a.untrack(b)
	a.mem.Free(b)
}

// sweep frees every allocation still live and returns how many bytes that
// was.
func (a *arena) sweep() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for k, b := range a.live {
		n += len(b)
		a.mem.Free(b)
		delete(a.live, k)
	}
	a.size = 0
	return n
}
