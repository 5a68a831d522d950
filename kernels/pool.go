package kernels

import (
	"sort"
	"sync"
)

// Scratch buffers are kept per element type so that the kernels of a
// training step reuse their working memory instead of allocating it on
// every call. The free list is not a sync.Pool: a pool is emptied at every
// garbage collection, and the large buffers it dropped were allocated again
// on the next step, which made the collector run often and the peak RSS
// vary from run to run. A training step asks for the same sizes every
// time, so the list converges to what one step needs at once.
type freeList[T Float] struct {
	mu   sync.Mutex
	bufs []*[]T // sorted by capacity
}

var free32 freeList[float32]
var free64 freeList[float64]

func listFor[T Float]() *freeList[T] {
	var zero T
	if _, ok := any(zero).(float32); ok {
		return any(&free32).(*freeList[T])
	}
	return any(&free64).(*freeList[T])
}

// getBuf returns a slice of length n with unspecified contents: the
// smallest free buffer that holds n and wastes at most half of n, or a new
// one.
func getBuf[T Float](n int) *[]T {
	l := listFor[T]()
	l.mu.Lock()
	i := sort.Search(len(l.bufs), func(i int) bool { return cap(*l.bufs[i]) >= n })
	if i < len(l.bufs) && cap(*l.bufs[i]) <= n+n/2 {
		p := l.bufs[i]
		l.bufs = append(l.bufs[:i], l.bufs[i+1:]...)
		l.mu.Unlock()
		*p = (*p)[:n]
		return p
	}
	l.mu.Unlock()
	s := make([]T, n)
	return &s
}

// putBuf returns a buffer from getBuf to the free list.
func putBuf[T Float](p *[]T) {
	l := listFor[T]()
	l.mu.Lock()
	i := sort.Search(len(l.bufs), func(i int) bool { return cap(*l.bufs[i]) >= cap(*p) })
	l.bufs = append(l.bufs, nil)
	copy(l.bufs[i+1:], l.bufs[i:])
	l.bufs[i] = p
	l.mu.Unlock()
}
