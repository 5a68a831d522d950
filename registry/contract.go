package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/schema"
)

// Contract is what every message of a run must be. The run's trainer sets
// it from its config (Publish it before consuming) and producers read it
// before they produce anything: a producer whose own config makes other
// messages refuses to start, and the trainer's consumer expects exactly
// this header, whatever reaches the stream first. It lives in the KV
// bucket beside the weights pointer, under key RUN.contract.
type Contract struct {
	Run         string `json:"run"`
	SchemaMajor int    `json:"schema_major"` // schema.Major
	Scale       int    `json:"scale"`
	HRH         int    `json:"hr_h"`
	HRW         int    `json:"hr_w"`
	LRH         int    `json:"lr_h"`
	LRW         int    `json:"lr_w"`
	KernelSize  int    `json:"kernel_size"` // 0: the messages carry no kernels
	Degradation string `json:"degradation"` // schema.DegradationPDM, ...
	// PDMConfig is the hex SHA-256 of the PDM config's JSON
	// (model.PDMConfig.SHA256) for a pdm run, "" otherwise: producers and
	// the weights they load must have that config.
	PDMConfig string `json:"pdm_config_sha256,omitempty"`
}

// Header is the message header the contract calls for (Device empty: any
// device's batches fit, see schema.Header.SameStream).
func (c Contract) Header() schema.Header {
	return schema.Header{Scale: c.Scale, HRH: c.HRH, HRW: c.HRW, LRH: c.LRH, LRW: c.LRW, KernelSize: c.KernelSize, Degradation: c.Degradation}
}

// Validate checks that the contract describes valid messages.
func (c Contract) Validate() error {
	if err := ValidRunID(c.Run); err != nil {
		return fmt.Errorf("registry: contract: %w", err)
	}
	if c.SchemaMajor != schema.Major {
		return fmt.Errorf("registry: contract of run %s: schema major version %d, this pdmflow writes and reads %d", c.Run, c.SchemaMajor, schema.Major)
	}
	if err := c.Header().Validate(); err != nil {
		return fmt.Errorf("registry: contract of run %s: %w", c.Run, err)
	}
	if c.PDMConfig != "" && !isHex64(c.PDMConfig) {
		return fmt.Errorf("registry: contract of run %s: pdm_config_sha256 %q is not 64 lower-case hex digits", c.Run, c.PDMConfig)
	}
	if (c.Degradation == schema.DegradationPDM) != (c.PDMConfig != "") {
		return fmt.Errorf("registry: contract of run %s: degradation %q with pdm_config_sha256 %q (a PDM config hash exactly for pdm)", c.Run, c.Degradation, c.PDMConfig)
	}
	return nil
}

// Diff lists the fields in which c and o differ, each as "name A (what) B
// (owhat)", naming both values; nil when they agree.
func (c Contract) Diff(what string, o Contract, owhat string) []string {
	var d []string
	add := func(name string, a, b any) {
		if a != b {
			d = append(d, fmt.Sprintf("%s %v (%s) vs %v (%s)", name, a, what, b, owhat))
		}
	}
	add("run", c.Run, o.Run)
	add("schema major version", c.SchemaMajor, o.SchemaMajor)
	add("degradation", strconv.Quote(c.Degradation), strconv.Quote(o.Degradation))
	add("scale", c.Scale, o.Scale)
	add("HR size", fmt.Sprintf("%dx%d", c.HRH, c.HRW), fmt.Sprintf("%dx%d", o.HRH, o.HRW))
	add("LR size", fmt.Sprintf("%dx%d", c.LRH, c.LRW), fmt.Sprintf("%dx%d", o.LRH, o.LRW))
	add("kernel size", c.KernelSize, o.KernelSize)
	add("PDM config sha256", short(c.PDMConfig), short(o.PDMConfig))
	return d
}

func short(h string) string {
	if h == "" {
		return "none"
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Sentinel errors of the contract.
var (
	// ErrNoContract: the run's trainer has not published its contract yet.
	ErrNoContract = errors.New("registry: the run has no contract yet (its trainer has not started)")
	// ErrContractMismatch: a contract differs from the run's.
	ErrContractMismatch = errors.New("registry: contract mismatch")
)

// ContractKey is the KV key of the run's contract.
func (r *Registry) ContractKey() string { return r.run + ".contract" }

// PublishContract records c (its Run set to the registry's run) as the
// run's contract. A run has one contract for its life: when one is there
// already, PublishContract returns nil if it is c, and an error wrapping
// ErrContractMismatch naming every difference otherwise (a trainer of the
// run restarted with another config must use a new run id).
func (r *Registry) PublishContract(ctx context.Context, c Contract) error {
	c.Run = r.run
	if err := c.Validate(); err != nil {
		return err
	}
	b, _ := json.Marshal(c)
	_, err := r.kv.Create(ctx, r.ContractKey(), b)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("registry: publishing the contract of run %s: %w", r.run, err)
	}
	cur, err := r.Contract(ctx)
	if err != nil {
		return err
	}
	if d := cur.Diff("the run's", c, "this config's"); len(d) > 0 {
		return fmt.Errorf("%w: run %s was started with another config: %v; use a new --run for another config", ErrContractMismatch, r.run, d)
	}
	return nil
}

// Contract reads the run's contract, or ErrNoContract.
func (r *Registry) Contract(ctx context.Context) (Contract, error) {
	e, err := r.kv.Get(ctx, r.ContractKey())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Contract{}, ErrNoContract
	}
	if err != nil {
		return Contract{}, fmt.Errorf("registry: reading %s: %w", r.ContractKey(), err)
	}
	var c Contract
	dec := json.NewDecoder(bytes.NewReader(e.Value()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Contract{}, fmt.Errorf("registry: %s (revision %d) is not a contract: %w", r.ContractKey(), e.Revision(), err)
	}
	if err := c.Validate(); err != nil {
		return Contract{}, fmt.Errorf("registry: %s (revision %d): %w", r.ContractKey(), e.Revision(), err)
	}
	if c.Run != r.run {
		return Contract{}, fmt.Errorf("registry: %s holds the contract of run %q", r.ContractKey(), c.Run)
	}
	return c, nil
}

// WaitContract returns the run's contract, polling every poll (default
// 500 ms) until the trainer has published it or ctx ends. waiting, when
// set, is called once if it has to wait.
func (r *Registry) WaitContract(ctx context.Context, poll time.Duration, waiting func()) (Contract, error) {
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	for first := true; ; first = false {
		c, err := r.Contract(ctx)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, ErrNoContract) {
			if ctx.Err() != nil {
				return Contract{}, ctx.Err()
			}
			r.log.Warn("cannot read the run's contract, retrying", "key", r.ContractKey(), "err", err)
		} else if first && waiting != nil {
			waiting()
		}
		select {
		case <-ctx.Done():
			return Contract{}, ctx.Err()
		case <-time.After(poll):
		}
	}
}
