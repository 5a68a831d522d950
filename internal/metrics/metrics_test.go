package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestServe scrapes the endpoint and finds a producer's and the trainer's
// metrics, labelled, with the values set.
func TestServe(t *testing.T) {
	reg := NewRegistry()
	p := NewProducer(reg, "p7")
	tr := NewTrainer(reg)
	p.Pairs.Add(12)
	tr.DataWait.Observe(0.5)
	tr.Losses.WithLabelValues("l1").Set(0.25)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := Serve(ctx, "127.0.0.1:0", reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{
		`pdmflow_producer_pairs_total{producer="p7"} 12`,
		`pdmflow_trainer_data_wait_seconds_count 1`,
		`pdmflow_trainer_loss{name="l1"} 0.25`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if addr, err := Serve(ctx, "", reg, nil); err != nil || addr != "" {
		t.Errorf("empty address: %q, %v; want nothing served", addr, err)
	}
}
