//go:build !linux

package bench

import "os"

// PeakRSSMiB is the peak resident set of a finished child process in MiB;
// it is measured on Linux only, and 0 (unknown) elsewhere.
func PeakRSSMiB(ps *os.ProcessState) float64 { return 0 }
