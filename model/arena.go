package model

import (
	"sync"
	"unsafe"

	"github.com/pdmflow/pdmflow/kernels"
)

// Arena hands out op output buffers by exact size and takes them back, so
// that a graph's outputs that are never alive at the same time share
// memory (and the graphs of a training step share it with each other).
// Buffers are not cleared: every kop overwrites its whole output.
type Arena struct {
	mu    sync.Mutex
	f32   map[int][][]float32
	f64   map[int][][]float64
	bytes int64 // allocated so far
}

// Bytes reports how much memory the arena has allocated.
func (a *Arena) Bytes() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bytes
}

// NewArena returns an empty arena.
func NewArena() *Arena {
	return &Arena{f32: map[int][][]float32{}, f64: map[int][][]float64{}}
}

func getArena[T kernels.Float](a *Arena, n int) []T {
	a.mu.Lock()
	defer a.mu.Unlock()
	var zero T
	switch any(zero).(type) {
	case float32:
		if l := a.f32[n]; len(l) > 0 {
			b := l[len(l)-1]
			a.f32[n] = l[:len(l)-1]
			return any(b).([]T)
		}
	case float64:
		if l := a.f64[n]; len(l) > 0 {
			b := l[len(l)-1]
			a.f64[n] = l[:len(l)-1]
			return any(b).([]T)
		}
	}
	a.bytes += int64(n) * int64(unsafe.Sizeof(zero))
	return make([]T, n)
}

func putArena[T kernels.Float](a *Arena, b []T) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch v := any(b).(type) {
	case []float32:
		a.f32[len(v)] = append(a.f32[len(v)], v)
	case []float64:
		a.f64[len(v)] = append(a.f64[len(v)], v)
	}
}
