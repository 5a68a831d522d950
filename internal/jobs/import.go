package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/pdmflow/pdmflow/internal/official"
	"github.com/pdmflow/pdmflow/internal/safetensors"
	"github.com/pdmflow/pdmflow/lpips"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/pth"
)

// KindLPIPS is the import kind that merges LPIPS weights (AlexNet features
// and lin layers) into one safetensors file.
const KindLPIPS = "lpips"

// ImportOptions configure Import.
type ImportOptions struct {
	// In is the checkpoint (.pth); for KindLPIPS, the files to merge
	// (.pth or safetensors).
	In   []string
	Kind string // official.KindPDM, KindDisc, KindEDSR, KindRRDB, or KindLPIPS
	Out  string
	official.Options
}

// ImportResult says what Import wrote.
type ImportResult struct {
	Kind   string
	Config string // the inferred configuration, as JSON
	Notes  []string
}

// Import converts an official checkpoint (or LPIPS weights) into a pdmflow
// weights file.
func Import(o ImportOptions) (*ImportResult, error) {
	if len(o.In) == 0 {
		return nil, fmt.Errorf("jobs: import: no input file")
	}
	if o.Kind == KindLPIPS {
		return importLPIPS(o)
	}
	if len(o.In) != 1 {
		return nil, fmt.Errorf("jobs: import --kind %s reads one checkpoint, got %d files", o.Kind, len(o.In))
	}
	f, err := pth.ReadFile(o.In[0])
	if err != nil {
		return nil, err
	}
	res, err := official.Convert(o.Kind, f, o.Options)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.In[0], err)
	}
	if err := res.Save(o.Out); err != nil {
		return nil, err
	}
	var cfg any
	switch {
	case res.PDM != nil:
		cfg = res.PDM.Cfg
	case res.Disc != nil:
		cfg = res.Disc.Cfg
	case res.SR != nil:
		cfg = res.SR.Cfg
	}
	b, _ := json.Marshal(cfg)
	return &ImportResult{Kind: o.Kind, Config: string(b), Notes: res.Notes}, nil
}

func importLPIPS(o ImportOptions) (*ImportResult, error) {
	net, err := lpips.Load(o.In...)
	if err != nil {
		return nil, err
	}
	ts := net.Tensors()
	names := make([]string, 0, len(ts))
	for n := range ts {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []safetensors.Tensor
	for _, n := range names {
		out = append(out, safetensors.FromFloat32s(n, ts[n].Shape, ts[n].Data))
	}
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, map[string]string{"pdmflow.kind": KindLPIPS, "pdmflow.lpips": "alexnet v0.1"}, out); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if err := model.WriteFileAtomic(o.Out, buf.Bytes()); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	b, _ := json.Marshal(map[string]any{"channels": net.Channels})
	return &ImportResult{Kind: KindLPIPS, Config: string(b)}, nil
}
