package dashboard

import (
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The stream panel's sampling.
const (
	// rateWindow is the span rates and means are computed over.
	rateWindow = 5 * time.Second
	// keepSnapshots is how long snapshots are kept (a little more than
	// rateWindow, so that one of them is rateWindow old).
	keepSnapshots = 8 * time.Second
	// maxHistory bounds each stream curve (one point a second: 10 minutes
	// at full resolution, coarser before).
	maxHistory = 600
)

// entity is one producer or the trainer in the registry: its kind, its run
// label (set where several runs share a registry, as in `pdmflow run`) and
// its producer id.
type entity struct{ kind, run, id string }

// label names the entity in the stream curves: "RUN/ID" or "ID" for a
// producer, "trainer RUN" or "trainer" for the trainer.
func (e entity) label() string {
	switch {
	case e.kind == "trainer" && e.run != "":
		return "trainer " + e.run
	case e.kind == "trainer":
		return "trainer"
	case e.run != "":
		return e.run + "/" + e.id
	}
	return e.id
}

// snapshot is the registry's pdmflow_producer_* and pdmflow_trainer_*
// values at one time, by entity and metric name without its prefix
// (histograms as NAME_sum and NAME_count).
type snapshot struct {
	t    time.Time
	vals map[entity]map[string]float64
}

// gather reads a snapshot of g. Metrics with labels other than run and
// producer (the trainer's losses and diversity measures, which the trainer
// reports itself) are skipped. Gather may return some metrics along with
// an error; they are used.
func gather(g prometheus.Gatherer, now time.Time) (snapshot, error) {
	fams, err := g.Gather()
	snap := snapshot{t: now, vals: map[entity]map[string]float64{}}
	for _, f := range fams {
		name := f.GetName()
		var kind string
		switch {
		case strings.HasPrefix(name, "pdmflow_producer_"):
			kind = "producer"
		case strings.HasPrefix(name, "pdmflow_trainer_"):
			kind = "trainer"
		default:
			continue
		}
		field := strings.TrimPrefix(name, "pdmflow_"+kind+"_")
	metrics:
		for _, m := range f.GetMetric() {
			e := entity{kind: kind}
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "run":
					e.run = l.GetValue()
				case "producer":
					e.id = l.GetValue()
				default:
					continue metrics
				}
			}
			v := snap.vals[e]
			if v == nil {
				v = map[string]float64{}
				snap.vals[e] = v
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v[field] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v[field] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				v[field+"_sum"] = m.GetHistogram().GetSampleSum()
				v[field+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return snap, err
}

// sampler turns snapshots into the stream panel: current values, rates and
// means over rateWindow, and their history.
type sampler struct {
	g       prometheus.Gatherer
	start   time.Time
	snaps   []snapshot
	cur     streamView
	history map[string]map[string]*series // curve -> entity label -> points
}

func newSampler(g prometheus.Gatherer, start time.Time) *sampler {
	return &sampler{g: g, start: start, history: map[string]map[string]*series{},
		cur: streamView{Producers: []producerView{}, Trainers: []trainerView{}}}
}

// streamView is the stream panel in /api/state. Rates and means are over
// the last rateWindow seconds; null when there is nothing to compute them
// from yet.
type streamView struct {
	Producers []producerView `json:"producers"`
	Trainers  []trainerView  `json:"trainers"`
	// History holds curves of (seconds since the dashboard started, value)
	// by name (pairs_per_s, weights_version, lag, data_wait_ms, pair_age)
	// and entity label.
	History map[string]map[string]*series `json:"history"`
	Sampled float64                       `json:"sampled"` // when, in seconds since the dashboard started
	Error   string                        `json:"error,omitempty"`
}

type producerView struct {
	Run            string   `json:"run,omitempty"`
	ID             string   `json:"id"`
	PairsPerS      *float64 `json:"pairs_per_s"`
	Pairs          float64  `json:"pairs"`
	WeightsVersion float64  `json:"weights_version"`
	Lag            float64  `json:"lag"` // the trainer consumer's pending + unacked messages, as this producer last saw
	Stalls         float64  `json:"stalls"`
	Stalled        *float64 `json:"stalled"`    // fraction of the time paused for backpressure (a stall's time is counted when it ends: at most 1)
	GenerateS      *float64 `json:"generate_s"` // mean time to generate a batch
	InFlightBytes  float64  `json:"inflight_bytes"`
	PublishErrors  float64  `json:"publish_errors"`
	ReloadFailures float64  `json:"reload_failures"`
}

type trainerView struct {
	Run            string   `json:"run,omitempty"`
	Steps          float64  `json:"steps"`
	StepsPerS      *float64 `json:"steps_per_s"`
	PairsPerS      *float64 `json:"pairs_per_s"`
	DataWaitS      *float64 `json:"data_wait_s"` // mean wait for streamed pairs per step
	PairAge        *float64 `json:"pair_age"`    // mean age of the trained pairs' weights, in steps
	Lag            float64  `json:"lag"`
	Pool           float64  `json:"pool"`
	WeightsVersion float64  `json:"weights_version"`
	BadMessages    float64  `json:"bad_messages"`
	Duplicates     float64  `json:"duplicates"`
	Redeliveries   float64  `json:"redeliveries"`
}

// add takes a new snapshot and recomputes the view.
func (s *sampler) add(snap snapshot, err error) {
	s.snaps = append(s.snaps, snap)
	for len(s.snaps) > 2 && snap.t.Sub(s.snaps[0].t) > keepSnapshots {
		s.snaps = s.snaps[1:]
	}
	// The base of rates: the newest snapshot at least rateWindow old, else
	// the oldest.
	var base *snapshot
	if len(s.snaps) > 1 {
		base = &s.snaps[0]
		for i := range s.snaps[:len(s.snaps)-1] {
			if snap.t.Sub(s.snaps[i].t) >= rateWindow {
				base = &s.snaps[i]
			}
		}
	}
	dt := 0.0
	if base != nil {
		dt = snap.t.Sub(base.t).Seconds()
	}
	at := snap.t.Sub(s.start).Seconds()
	view := streamView{Producers: []producerView{}, Trainers: []trainerView{}, History: s.history, Sampled: at}
	if err != nil {
		view.Error = err.Error()
	}
	ents := make([]entity, 0, len(snap.vals))
	for e := range snap.vals {
		ents = append(ents, e)
	}
	sort.Slice(ents, func(i, j int) bool {
		a, b := ents[i], ents[j]
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		if a.run != b.run {
			return a.run < b.run
		}
		return a.id < b.id
	})
	for _, e := range ents {
		v := snap.vals[e]
		var old map[string]float64
		if base != nil {
			old = base.vals[e]
		}
		rate := func(k string) *float64 {
			o, ok := old[k]
			if !ok || dt <= 0 || v[k] < o {
				return nil
			}
			r := (v[k] - o) / dt
			return &r
		}
		mean := func(k string) *float64 {
			o, ok := old[k+"_count"]
			n := v[k+"_count"] - o
			if !ok || n <= 0 {
				return nil
			}
			m := (v[k+"_sum"] - old[k+"_sum"]) / n
			return &m
		}
		l := e.label()
		switch e.kind {
		case "producer":
			p := producerView{Run: e.run, ID: e.id, PairsPerS: rate("pairs_total"), Pairs: v["pairs_total"],
				WeightsVersion: v["weights_version"], Lag: v["consumer_lag_messages"], Stalls: v["stalls_total"],
				Stalled: atMost1(rate("stall_seconds_total")), GenerateS: mean("generate_seconds"), InFlightBytes: v["inflight_bytes"],
				PublishErrors: v["publish_errors_total"], ReloadFailures: v["weights_reload_failures_total"]}
			view.Producers = append(view.Producers, p)
			s.record("pairs_per_s", l, at, p.PairsPerS)
			s.record("weights_version", l, at, &p.WeightsVersion)
			s.record("lag", l, at, &p.Lag)
		case "trainer":
			t := trainerView{Run: e.run, Steps: v["steps_total"], StepsPerS: rate("steps_total"), PairsPerS: rate("pairs_total"),
				DataWaitS: mean("data_wait_seconds"), PairAge: mean("pair_age_steps"), Lag: v["consumer_lag_messages"],
				Pool: v["pool_pairs"], WeightsVersion: v["weights_version"], BadMessages: v["bad_messages_total"],
				Duplicates: v["duplicate_batches_total"], Redeliveries: v["redeliveries_total"]}
			view.Trainers = append(view.Trainers, t)
			if t.DataWaitS != nil {
				ms := 1000 * *t.DataWaitS
				s.record("data_wait_ms", l, at, &ms)
			}
			s.record("pair_age", l, at, t.PairAge)
			s.record("weights_version", l, at, &t.WeightsVersion)
			s.record("lag", l, at, &t.Lag)
		}
	}
	s.cur = view
}

// atMost1 caps a fraction of time at 1: a counter of seconds that is
// added to when a pause ends can grow faster than the clock over a window.
func atMost1(v *float64) *float64 {
	if v != nil && *v > 1 {
		one := 1.0
		return &one
	}
	return v
}

// record adds a point to a history curve (nil: none).
func (s *sampler) record(curve, label string, at float64, v *float64) {
	if v == nil {
		return
	}
	c := s.history[curve]
	if c == nil {
		c = map[string]*series{}
		s.history[curve] = c
	}
	p := c[label]
	if p == nil {
		p = &series{}
		c[label] = p
	}
	p.add(at, *v, maxHistory)
}

// view is the current stream panel.
func (s *sampler) view() *streamView {
	v := s.cur
	if v.History == nil {
		v.History = s.history
	}
	return &v
}
