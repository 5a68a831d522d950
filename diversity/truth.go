package diversity

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/pdmflow/pdmflow/model"
)

// TruthFile is the name synthetic target sets give their truth file.
const TruthFile = "truth.json"

// Truth is the true degradation of every image of a target set (what
// `pdmflow synth` writes): the statistics of its kernel, measured as a
// learned kernel is, and the standard deviation of its noise.
type Truth struct {
	Dist       string       `json:"dist"`
	Doc        string       `json:"doc,omitempty"`
	Scale      int          `json:"scale"`
	KernelSize int          `json:"kernel_size"`
	Images     []TruthImage `json:"images"`
}

// TruthImage is one image's degradation.
type TruthImage struct {
	Name     string            `json:"name"`
	Kernel   model.KernelStats `json:"kernel"` // moments in the window's taps, as model.MeasureKernel gives them
	NoiseStd float64           `json:"noise_std"`
	// Draw holds the generator's own parameters (family, sigmas, radius,
	// length, noise levels), for people; Compare does not read it.
	Draw json.RawMessage `json:"draw,omitempty"`
}

// Sample is the truth as a Sample.
func (t *Truth) Sample() Sample {
	s := Sample{}
	for _, im := range t.Images {
		s.AddKernel(im.Kernel, t.Scale)
		s[Noise] = append(s[Noise], im.NoiseStd)
	}
	return s
}

// ReadTruth reads a truth file.
func ReadTruth(path string) (*Truth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("diversity: %w", err)
	}
	var t Truth
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("diversity: %s: %w", path, err)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("diversity: %s: %w", path, err)
	}
	return &t, nil
}

// Validate checks what Compare needs.
func (t *Truth) Validate() error {
	switch {
	case t.Scale < 1 || t.Scale > 8:
		return fmt.Errorf("scale %d", t.Scale)
	case len(t.Images) == 0:
		return errors.New("no images")
	}
	return nil
}

// Write writes the truth file.
func (t *Truth) Write(path string) error {
	b, err := json.MarshalIndent(t, "", " ")
	if err != nil {
		return fmt.Errorf("diversity: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("diversity: %w", err)
	}
	return nil
}
