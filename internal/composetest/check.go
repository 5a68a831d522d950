// Package composetest runs pdmflow's docker compose deployment end to end
// and injects faults into it (a producer killed, NATS restarted, the
// trainer killed, a producer cut off the network, S3 away), checking after
// each that nothing acked was lost or duplicated.
//
// The tests need Docker with compose and run only with
// PDMFLOW_COMPOSE_TEST=1 (`make compose-test`); without it they skip and
// say why. By default they use docker-compose.local.yml, whose images are
// built FROM scratch from binaries built on this host
// (deploy/compose/local-bin.sh), so they pull nothing.
//
// What "nothing acked lost or duplicated" means here, checked from outside
// the containers:
//
//   - in the stream: every (producer, batch) is there once, and each
//     producer's batches are 0, 1, 2, ... without a gap; every batch a
//     producer counted as acked (pdmflow_producer_batches_total) before it
//     was killed is in the stream; every message stored before NATS
//     restarted is still there;
//   - in the trainer's checkpoint (copied out of its volume): its dedup
//     state holds exactly the batches of the stream up to its stream
//     position, and the pairs of those batches equal the pairs trained
//     (steps x batch size) plus the pairs waiting in its shuffle pool, so
//     no acked pair was dropped and none was trained twice.
package composetest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/model"
)

// Message is one pair batch in the stream.
type Message struct {
	Seq      uint64 // stream sequence
	Producer string
	Batch    uint64 // the producer's batch sequence
	Pairs    int
	Weights  uint64 // weights version the pairs were made with
}

type batchKey struct {
	producer string
	batch    uint64
}

// CheckStream checks the stream's messages of one run: no (producer,
// batch) twice and no gap in any producer's batch sequence. It returns the
// number of batches per producer.
func CheckStream(msgs []Message) (map[string]uint64, error) {
	seen := map[batchKey]uint64{}
	byProducer := map[string][]uint64{}
	var errs []string
	for _, m := range msgs {
		k := batchKey{m.Producer, m.Batch}
		if first, dup := seen[k]; dup {
			errs = append(errs, fmt.Sprintf("batch %d of producer %s is in the stream twice (seq %d and %d)", m.Batch, m.Producer, first, m.Seq))
			continue
		}
		seen[k] = m.Seq
		byProducer[m.Producer] = append(byProducer[m.Producer], m.Batch)
	}
	counts := map[string]uint64{}
	for p, bs := range byProducer {
		sort.Slice(bs, func(i, j int) bool { return bs[i] < bs[j] })
		for i, b := range bs {
			if b != uint64(i) {
				errs = append(errs, fmt.Sprintf("producer %s: batch %d missing from the stream (next there: %d)", p, i, b))
				break
			}
		}
		counts[p] = uint64(len(bs))
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return counts, fmt.Errorf("stream: %s", strings.Join(errs, "; "))
	}
	return counts, nil
}

// Checkpoint is what the conservation check needs from a trainer
// checkpoint.
type Checkpoint struct {
	Step     int
	Batch    int // pairs per step
	Position uint64
	Pool     int // pairs in the shuffle pool
	PoolMax  uint64
	Seen     []consumer.SeenRange
}

// ReadCheckpoint reads a trainer's checkpoint.safetensors.
func ReadCheckpoint(path string) (Checkpoint, error) {
	var cp Checkpoint
	w, err := model.ReadWeightsFile(path, model.KindCheckpoint)
	if err != nil {
		return cp, err
	}
	md := w.File.Metadata
	var cfg struct {
		Batch int `json:"batch"`
	}
	if err := json.Unmarshal([]byte(md[model.MetaConfig]), &cfg); err != nil || cfg.Batch <= 0 {
		return cp, fmt.Errorf("%s: no batch size in the config metadata (%v)", path, err)
	}
	cp.Batch = cfg.Batch
	if cp.Step, err = strconv.Atoi(md["pdmflow.step"]); err != nil {
		return cp, fmt.Errorf("%s: step: %w", path, err)
	}
	pos, ok := md["pdmflow.stream.position"]
	if !ok {
		return cp, fmt.Errorf("%s: not a checkpoint of a streaming trainer (no stream position)", path)
	}
	if cp.Position, err = strconv.ParseUint(pos, 10, 64); err != nil {
		return cp, fmt.Errorf("%s: stream position: %w", path, err)
	}
	if err := json.Unmarshal([]byte(md["pdmflow.stream.seen"]), &cp.Seen); err != nil {
		return cp, fmt.Errorf("%s: dedup state: %w", path, err)
	}
	if seqs, ok := w.File.Get("stream.pool.seqs"); ok {
		cp.Pool = len(seqs.Data) / 8
		for i := 0; i < cp.Pool; i++ {
			cp.PoolMax = max(cp.PoolMax, binary.LittleEndian.Uint64(seqs.Data[8*i:]))
		}
	}
	return cp, nil
}

// CheckConservation checks a checkpoint against the stream (all of the
// run's messages, in stream order): the batches of the stream up to the
// checkpoint's position are exactly the batches its dedup state holds, and
// their pairs are exactly the pairs trained plus the pairs in the pool.
func CheckConservation(msgs []Message, cp Checkpoint) error {
	inStream := map[batchKey]int{}
	pairs := 0
	for _, m := range msgs {
		if m.Seq > cp.Position {
			continue
		}
		k := batchKey{m.Producer, m.Batch}
		if _, dup := inStream[k]; dup {
			continue // dropped by the trainer's dedup; CheckStream reports it
		}
		inStream[k] = m.Pairs
		pairs += m.Pairs
	}
	seen := map[batchKey]bool{}
	for _, r := range cp.Seen {
		for b := r.From; b < r.To; b++ {
			seen[batchKey{r.Producer, b}] = true
		}
	}
	var lost, extra []string
	for k := range inStream {
		if !seen[k] {
			lost = append(lost, fmt.Sprintf("%s/%d", k.producer, k.batch))
		}
	}
	for k := range seen {
		if _, ok := inStream[k]; !ok {
			extra = append(extra, fmt.Sprintf("%s/%d", k.producer, k.batch))
		}
	}
	sort.Strings(lost)
	sort.Strings(extra)
	var errs []string
	if len(lost) > 0 {
		errs = append(errs, fmt.Sprintf("%d batches in the stream up to seq %d never reached the trainer (lost): %s", len(lost), cp.Position, head(lost)))
	}
	if len(extra) > 0 {
		errs = append(errs, fmt.Sprintf("the trainer's dedup state holds %d batches that are not in the stream up to seq %d: %s", len(extra), cp.Position, head(extra)))
	}
	if trained := cp.Step * cp.Batch; pairs != trained+cp.Pool {
		errs = append(errs, fmt.Sprintf("the stream up to seq %d holds %d pairs; the trainer trained %d (%d steps x %d) and holds %d in its pool: %+d pairs",
			cp.Position, pairs, trained, cp.Step, cp.Batch, cp.Pool, trained+cp.Pool-pairs))
	}
	if cp.PoolMax > cp.Position {
		errs = append(errs, fmt.Sprintf("the pool holds a pair of stream seq %d, after the position %d", cp.PoolMax, cp.Position))
	}
	if len(errs) > 0 {
		return fmt.Errorf("checkpoint at step %d: %s", cp.Step, strings.Join(errs, "; "))
	}
	return nil
}

func head(s []string) string {
	if len(s) > 8 {
		return strings.Join(s[:8], " ") + fmt.Sprintf(" ... (%d more)", len(s)-8)
	}
	return strings.Join(s, " ")
}
