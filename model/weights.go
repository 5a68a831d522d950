package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/safetensors"
)

// Metadata keys of pdmflow's safetensors files.
const (
	MetaKind    = "pdmflow.kind"    // "pdm", "sr", "disc" or "checkpoint"
	MetaConfig  = "pdmflow.config"  // the config, as JSON
	MetaVersion = "pdmflow.version" // the file layout version
)

// WeightsVersion is the layout version written in MetaVersion; readers
// refuse other versions.
const WeightsVersion = 1

// Weights kinds.
const (
	KindPDM        = "pdm"
	KindSR         = "sr"
	KindDisc       = "disc" // a discriminator alone (pdmflow import --kind disc)
	KindCheckpoint = "checkpoint"
)

// EncodeWeights serialises the parameters of modules (learnable weights and
// buffers, as float32) with the config as JSON metadata, plus extra tensors
// and metadata (optimizer state, training state) when given.
func EncodeWeights(kind string, config any, extraMeta map[string]string, extra []safetensors.Tensor, modules ...*Module) ([]byte, error) {
	cfg, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("model: encoding config: %w", err)
	}
	meta := map[string]string{MetaKind: kind, MetaConfig: string(cfg), MetaVersion: strconv.Itoa(WeightsVersion)}
	for k, v := range extraMeta {
		meta[k] = v
	}
	var ts []safetensors.Tensor
	for _, m := range modules {
		for _, p := range m.params {
			ts = append(ts, safetensors.FromFloat32s(p.Name, p.Value.Shape(), p.Float32Data()))
		}
	}
	ts = append(ts, extra...)
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, meta, ts); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return buf.Bytes(), nil
}

// WeightsFile is a decoded weights file whose kind and version were
// checked.
type WeightsFile struct {
	Path string
	Kind string
	File *safetensors.File
}

// DecodeWeights parses a weights file and checks its kind (any kind when
// want is empty) and layout version. path is only used in messages.
func DecodeWeights(path string, b []byte, want string) (*WeightsFile, error) {
	f, err := safetensors.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	kind := f.Metadata[MetaKind]
	if kind == "" {
		return nil, fmt.Errorf("model: %s: not a pdmflow weights file (no %s metadata)", path, MetaKind)
	}
	if v := f.Metadata[MetaVersion]; v != strconv.Itoa(WeightsVersion) {
		return nil, fmt.Errorf("model: %s: weights layout version %q, this pdmflow reads %d", path, v, WeightsVersion)
	}
	if want != "" && kind != want {
		return nil, fmt.Errorf("model: %s holds %s weights, expected %s weights", path, kind, want)
	}
	return &WeightsFile{Path: path, Kind: kind, File: f}, nil
}

// ReadWeightsFile reads and decodes a weights file from disk.
func ReadWeightsFile(path, want string) (*WeightsFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return DecodeWeights(path, b, want)
}

// Config unmarshals the file's config metadata into v, refusing unknown
// fields.
func (w *WeightsFile) Config(v any) error {
	raw, ok := w.File.Metadata[MetaConfig]
	if !ok {
		return fmt.Errorf("model: %s: no config metadata", w.Path)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("model: %s: config metadata: %w", w.Path, err)
	}
	return nil
}

// Load copies the file's tensors into the parameters of modules. Every
// parameter must be present with its exact shape and dtype F32; tensors in
// the file under a module's prefix that no parameter claims are refused
// too. Errors name the tensor. Nothing is changed unless all of it fits.
func (w *WeightsFile) Load(modules ...*Module) error {
	type pending struct {
		p *Param
		v []float32
	}
	var todo []pending
	claimed := map[string]bool{}
	for _, m := range modules {
		for _, p := range m.params {
			t, ok := w.File.Get(p.Name)
			if !ok {
				return fmt.Errorf("model: %s: tensor %s missing (the weights are of another configuration)", w.Path, p.Name)
			}
			if t.DType != safetensors.F32 {
				return fmt.Errorf("model: %s: tensor %s is %s, want F32", w.Path, p.Name, t.DType)
			}
			if !tensor.Shape(t.Shape).Eq(p.Value.Shape()) && !(len(t.Shape) == 0 && p.Value.Shape().TotalSize() == 1) {
				return fmt.Errorf("model: %s: tensor %s has shape %v, the model needs %v", w.Path, p.Name, t.Shape, []int(p.Value.Shape()))
			}
			v, err := t.Float32s()
			if err != nil {
				return fmt.Errorf("model: %s: %w", w.Path, err)
			}
			todo = append(todo, pending{p, v})
			claimed[p.Name] = true
		}
	}
	for _, t := range w.File.Tensors {
		for _, m := range modules {
			if hasPrefix(t.Name, m.Name+".") && !claimed[t.Name] {
				return fmt.Errorf("model: %s: tensor %s is not part of the configured %s network", w.Path, t.Name, m.Name)
			}
		}
	}
	for _, x := range todo {
		switch d := x.p.Value.Data().(type) {
		case []float32:
			copy(d, x.v)
		case []float64:
			for i, f := range x.v {
				d[i] = float64(f)
			}
		}
	}
	return nil
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// WriteFileAtomic writes b to path through a temporary file and a rename,
// so that a reader never sees a partial file.
func WriteFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := firstErr(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// SavePDM writes a PDM's weights and config to path (kind "pdm").
func SavePDM(path string, p *PDM) error {
	b, err := EncodeWeights(KindPDM, p.Cfg, nil, nil, p.Modules()...)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b)
}

// LoadPDM reads a PDM saved by SavePDM, built as float32.
func LoadPDM(path string) (*PDM, error) {
	w, err := ReadWeightsFile(path, KindPDM)
	if err != nil {
		return nil, err
	}
	return w.PDM()
}

// checkParams refuses a file whose tensors under the module prefixes hold
// fewer bytes than params F32 values: it runs on the file's header alone,
// before a network of that size is allocated, so a small file whose
// config claims a big network costs nothing. (More bytes cost no more than
// the file itself; Load then names the tensor that does not belong.)
func (w *WeightsFile) checkParams(what string, params int, prefixes ...string) error {
	var bytes int64
	for _, t := range w.File.Tensors {
		for _, p := range prefixes {
			if hasPrefix(t.Name, p+".") {
				bytes += int64(len(t.Data))
				break
			}
		}
	}
	if want := 4 * int64(params); bytes < want {
		return fmt.Errorf("model: %s: its config makes a %s of %d parameters (%d bytes of F32), the file holds %d bytes of %s tensors",
			w.Path, what, params, want, bytes, strings.Join(prefixes, "/"))
	}
	return nil
}

// PDMConfig reads and validates the file's PDM config, without building
// anything: what a caller compares with the config it expects before
// calling PDM.
func (w *WeightsFile) PDMConfig() (PDMConfig, error) {
	var cfg PDMConfig
	if err := w.Config(&cfg); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("model: %s: %w", w.Path, err)
	}
	return cfg, nil
}

// PDM builds the PDM the file's config describes and loads its weights.
// The config is validated (every dimension bounded) and the file's tensors
// are checked against its parameter count before the PDM is allocated.
func (w *WeightsFile) PDM() (*PDM, error) {
	cfg, err := w.PDMConfig()
	if err != nil {
		return nil, err
	}
	prefixes := []string{"kernel"}
	if cfg.Noise.Mode != NoiseOff {
		prefixes = append(prefixes, "noise")
	}
	if err := w.checkParams("PDM", cfg.ParamCount(), prefixes...); err != nil {
		return nil, err
	}
	p, err := NewPDM(cfg, tensor.Float32, 0)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", w.Path, err)
	}
	if err := w.Load(p.Modules()...); err != nil {
		return nil, err
	}
	return p, nil
}

// SaveDiscriminator writes a discriminator's weights and config to path
// (kind "disc").
func SaveDiscriminator(path string, d *Discriminator) error {
	b, err := EncodeWeights(KindDisc, d.Cfg, nil, nil, d.M)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b)
}

// LoadDiscriminator reads a discriminator saved by SaveDiscriminator,
// built as float32.
func LoadDiscriminator(path string) (*Discriminator, error) {
	w, err := ReadWeightsFile(path, KindDisc)
	if err != nil {
		return nil, err
	}
	var cfg DiscConfig
	if err := w.Config(&cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	if err := w.checkParams("discriminator", cfg.ParamCount(), "disc"); err != nil {
		return nil, err
	}
	d, err := NewDiscriminator(cfg, tensor.Float32, 0)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	if err := d.Load(w); err != nil {
		return nil, err
	}
	return d, nil
}
