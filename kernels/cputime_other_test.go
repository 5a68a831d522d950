//go:build !unix

package kernels

import "time"

// cpuTime is not measured here: benchmarks report wall-time figures only.
func cpuTime() time.Duration { return 0 }
