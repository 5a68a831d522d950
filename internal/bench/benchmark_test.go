package bench

import (
	"testing"
	"time"
)

// The workloads as Go benchmarks, at the design's shapes (batch 32, HR
// 128: tens of seconds per W2 step on 2 cores), or the quick ones with
// -short:
//
//	go test -run '^$' -bench W1 -benchtime 3x ./internal/bench/
//
// They report pairs/s and GFLOP/s of the measured part of each run; W3
// reports the pipeline and JetStream alone as sub-benchmarks. Peak RSS
// needs a process per workload: see `pdmflow bench`.

func BenchmarkW1(b *testing.B) { benchWorkload(b, "w1") }
func BenchmarkW2(b *testing.B) { benchWorkload(b, "w2") }
func BenchmarkW3(b *testing.B) { benchWorkload(b, "w3") }

func benchWorkload(b *testing.B, name string) {
	s := Full(32)
	if testing.Short() {
		s = Quick()
	}
	w, err := prepare(b.Context(), name, s, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.close()
	for _, ph := range w.phases {
		b.Run(ph.name, func(b *testing.B) {
			var total time.Duration
			runs := 0
			for b.Loop() {
				d, err := ph.fn(b.Context(), runs)
				if err != nil {
					b.Fatal(err)
				}
				total += d
				runs++
			}
			sec := total.Seconds() / float64(runs)
			b.ReportMetric(float64(w.pairsOf(ph))/sec, "pairs/s")
			if w.flops > 0 {
				b.ReportMetric(float64(w.flops)/1e9/sec, "GFLOP/s")
			}
		})
	}
}
