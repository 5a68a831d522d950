package kernels

import "sync"

// Scratch buffers are pooled per element type so that the kernels of a
// training step reuse their working memory instead of allocating it on
// every call.
var pool32, pool64 sync.Pool

func bufPool[T Float]() *sync.Pool {
	var zero T
	if _, ok := any(zero).(float32); ok {
		return &pool32
	}
	return &pool64
}

// getBuf returns a slice of length n with unspecified contents.
func getBuf[T Float](n int) *[]T {
	if p, ok := bufPool[T]().Get().(*[]T); ok {
		if cap(*p) >= n {
			*p = (*p)[:n]
			return p
		}
		bufPool[T]().Put(p)
	}
	s := make([]T, n)
	return &s
}

func putBuf[T Float](p *[]T) { bufPool[T]().Put(p) }
