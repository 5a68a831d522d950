package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Float is the element type of every kernel: float32 for training and
// inference, float64 for gradient checks.
type Float interface{ ~float32 | ~float64 }

var workers atomic.Int32

func init() { workers.Store(int32(runtime.GOMAXPROCS(0))) }

// SetWorkers sets how many goroutines a kernel may use (at least 1) and
// returns the previous value. The default is GOMAXPROCS at start-up.
func SetWorkers(n int) int {
	if n < 1 {
		n = 1
	}
	return int(workers.Swap(int32(n)))
}

// Workers reports how many goroutines a kernel may use.
func Workers() int { return int(workers.Load()) }

// parallelFor runs fn(lo, hi) over [0, n) split into at most Workers()
// contiguous chunks, each at least minChunk long, and waits for all of them.
func parallelFor(n, minChunk int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	w := Workers()
	if minChunk < 1 {
		minChunk = 1
	}
	if c := (n + minChunk - 1) / minChunk; c < w {
		w = c
	}
	if w <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + w - 1) / w
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// parallelTasks runs fn(worker, i) for every i in [0, n) on at most Workers()
// goroutines; worker is in [0, min(Workers(), n)) and lets fn use per-worker
// scratch space. Items are handed out dynamically.
func parallelTasks(n int, fn func(worker, i int)) int { return parallelTasksN(Workers(), n, fn) }

// parallelTasksN is parallelTasks on at most w goroutines.
func parallelTasksN(w, n int, fn func(worker, i int)) int {
	w = min(w, n)
	if w <= 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return 1
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(k, i)
			}
		}()
	}
	wg.Wait()
	return w
}

// ParallelFor runs fn(lo, hi) over [0, n) split into at most Workers()
// contiguous chunks, each at least minChunk long, and waits for all of
// them: the kernels' own worker split, for callers outside the package.
func ParallelFor(n, minChunk int, fn func(lo, hi int)) { parallelFor(n, minChunk, fn) }
