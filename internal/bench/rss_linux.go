package bench

import (
	"os"
	"syscall"
)

// PeakRSSMiB is the peak resident set of a finished child process in MiB
// (Linux reports getrusage's ru_maxrss in KiB), or 0 when unknown.
func PeakRSSMiB(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
