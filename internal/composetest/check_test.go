package composetest

import (
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/consumer"
)

// TestChecks: the stream and conservation checks catch a duplicate, a gap,
// a lost batch and a pair trained twice, and pass a consistent state.
func TestChecks(t *testing.T) {
	msgs := []Message{
		{Seq: 1, Producer: "a", Batch: 0, Pairs: 8},
		{Seq: 2, Producer: "b", Batch: 0, Pairs: 8},
		{Seq: 3, Producer: "a", Batch: 1, Pairs: 8},
		{Seq: 4, Producer: "b", Batch: 1, Pairs: 8},
		{Seq: 5, Producer: "a", Batch: 2, Pairs: 8},
	}
	counts, err := CheckStream(msgs)
	if err != nil || counts["a"] != 3 || counts["b"] != 2 {
		t.Fatalf("consistent stream: %v, %v", counts, err)
	}
	if _, err := CheckStream(append(msgs, Message{Seq: 6, Producer: "a", Batch: 1, Pairs: 8})); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate not reported: %v", err)
	}
	if _, err := CheckStream(append(msgs, Message{Seq: 6, Producer: "b", Batch: 3, Pairs: 8})); err == nil || !strings.Contains(err.Error(), "batch 2 missing") {
		t.Errorf("gap not reported: %v", err)
	}

	// Up to seq 4: 32 pairs; 6 steps of 4 trained, 8 in the pool.
	good := Checkpoint{Step: 6, Batch: 4, Position: 4, Pool: 8, PoolMax: 4,
		Seen: []consumer.SeenRange{{Producer: "a", From: 0, To: 2}, {Producer: "b", From: 0, To: 2}}}
	if err := CheckConservation(msgs, good); err != nil {
		t.Fatalf("consistent checkpoint: %v", err)
	}
	lost := good
	lost.Seen = []consumer.SeenRange{{Producer: "a", From: 0, To: 2}, {Producer: "b", From: 1, To: 2}}
	if err := CheckConservation(msgs, lost); err == nil || !strings.Contains(err.Error(), "lost") {
		t.Errorf("lost batch not reported: %v", err)
	}
	twice := good
	twice.Step = 7
	if err := CheckConservation(msgs, twice); err == nil || !strings.Contains(err.Error(), "+4 pairs") {
		t.Errorf("pairs trained twice not reported: %v", err)
	}
	extra := good
	extra.Seen = append(extra.Seen, consumer.SeenRange{Producer: "a", From: 2, To: 3})
	if err := CheckConservation(msgs, extra); err == nil || !strings.Contains(err.Error(), "not in the stream") {
		t.Errorf("batch beyond the position not reported: %v", err)
	}
	// A duplicate up to the position counts once, as the trainer drops it.
	dup := append([]Message{}, msgs[:4]...)
	dup = append(dup, Message{Seq: 5, Producer: "a", Batch: 1, Pairs: 8})
	withDup := good
	withDup.Position = 5
	if err := CheckConservation(dup, withDup); err != nil {
		t.Errorf("a dropped duplicate broke the count: %v", err)
	}
}
