// Package jobs implements pdmflow's batch commands over directories of
// images: degrade (apply a PDM), sr (apply an SR network or bicubic
// upsampling), eval (PSNR/SSIM against ground truth) and the end-to-end
// demo. cmd/pdmflow parses flags and calls these.
package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/internal/progress"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/trainer"
)

func stem(p string) string {
	b := filepath.Base(p)
	return strings.TrimSuffix(b, filepath.Ext(b))
}

// DegradeOptions configure Degrade.
type DegradeOptions struct {
	Weights  string // PDM weights (pdm.safetensors)
	In, Out  string
	Seed     uint64
	PerImage int  // degradations per image
	Kernels  bool // also write each sample's kernel as a PNG
	Log      *slog.Logger
	Progress io.Writer
}

// DegradeRecord describes one generated LR image (written to
// degradations.json).
type DegradeRecord struct {
	Source   string  `json:"source"`
	Output   string  `json:"output"` // file name in the output directory
	Index    int     `json:"index"`
	Seed     uint64  `json:"seed"`
	Stream   uint64  `json:"stream"`
	Sigma    float64 `json:"kernel_sigma"`
	Aniso    float64 `json:"kernel_aniso"`
	NoiseStd float64 `json:"noise_std"`
}

// SampleStream is the random stream of degradation k of the image named
// base: a hash of the name and k, so an image's degradations do not depend
// on which other images are in the directory.
func SampleStream(base string, k int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(base))
	return h.Sum64() ^ uint64(k)*0x9e3779b97f4a7c15
}

// Degrade applies a trained PDM to every image of In, PerImage times, and
// writes the LR images (rounded to 8 bits) as PNG to Out with a
// degradations.json. The output depends only on the weights, the seed and
// each image.
func Degrade(ctx context.Context, o DegradeOptions) ([]DegradeRecord, error) {
	p, err := model.LoadPDM(o.Weights)
	if err != nil {
		return nil, err
	}
	paths, err := imageio.List(o.In)
	if err != nil {
		return nil, err
	}
	if o.PerImage < 1 {
		return nil, fmt.Errorf("jobs: per-image count %d must be at least 1", o.PerImage)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	meter := &progress.Meter{Out: o.Progress, Unit: "image", Total: len(paths)}
	meter.Start(0)
	var recs []DegradeRecord
	ks := p.Cfg.Kernel.Size
	for i, path := range paths {
		if err := ctx.Err(); err != nil {
			return recs, err
		}
		im, err := imageio.Load(path)
		if err != nil {
			return recs, err
		}
		if min(im.W, im.H) <= ks/2 {
			return recs, fmt.Errorf("jobs: %s is %dx%d: too small for %dx%d kernels (needs more than %d pixels per side)", path, im.W, im.H, ks, ks, ks/2)
		}
		hr := im.Float32()
		for k := 0; k < o.PerImage; k++ {
			stream := SampleStream(filepath.Base(path), k)
			d, err := p.Degrade(hr, im.H, im.W, rand.New(rand.NewPCG(o.Seed, stream)))
			if err != nil {
				return recs, fmt.Errorf("jobs: %s: %w", path, err)
			}
			name := stem(path)
			if o.PerImage > 1 {
				name = fmt.Sprintf("%s_d%02d", name, k)
			}
			out := filepath.Join(o.Out, name+".png")
			if err := imageio.FromPlanarFloat(d.W, d.H, d.LR).Save(out); err != nil {
				return recs, err
			}
			rec := DegradeRecord{Source: path, Output: filepath.Base(out), Index: k, Seed: o.Seed, Stream: stream}
			if !p.Cfg.Kernel.Spatial {
				st := model.MeasureKernel(d.Kernel, ks)
				rec.Sigma, rec.Aniso = math.Sqrt(st.SigmaMajor*st.SigmaMinor), st.SigmaMajor/math.Max(st.SigmaMinor, 1e-9)
				if o.Kernels {
					if err := trainer.KernelGrid(d.Kernel, 1, ks, 1, 8).Save(filepath.Join(o.Out, name+"_kernel.png")); err != nil {
						return recs, err
					}
				}
			}
			if d.Noise != nil {
				rec.NoiseStd = rmsf(d.Noise)
			}
			recs = append(recs, rec)
		}
		meter.Print(i+1, filepath.Base(path))
	}
	b, _ := json.MarshalIndent(recs, "", "  ")
	if err := os.WriteFile(filepath.Join(o.Out, "degradations.json"), b, 0o644); err != nil {
		return recs, fmt.Errorf("jobs: %w", err)
	}
	o.Log.Info("degraded", "images", len(paths), "outputs", len(recs), "out", o.Out)
	return recs, nil
}

func rmsf(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s / float64(max(1, len(v))))
}

// SROptions configure SR.
type SROptions struct {
	Weights  string // SR weights; empty with Bicubic
	Bicubic  bool   // bicubic upsampling instead of a network
	Scale    int    // with Bicubic
	In, Out  string
	Tile     int // LR tile side for large images (0: whole images)
	Log      *slog.Logger
	Progress io.Writer
}

// SR super-resolves every image of In into Out (PNG, same base names).
func SR(ctx context.Context, o SROptions) error {
	var e *model.SR
	scale := o.Scale
	if !o.Bicubic {
		var err error
		if e, err = model.LoadSR(o.Weights); err != nil {
			return err
		}
		scale = e.Cfg.Scale
	} else if scale < 1 {
		return fmt.Errorf("jobs: bicubic upsampling needs a scale, got %d", scale)
	}
	paths, err := imageio.List(o.In)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	meter := &progress.Meter{Out: o.Progress, Unit: "image", Total: len(paths)}
	meter.Start(0)
	for i, path := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		im, err := imageio.Load(path)
		if err != nil {
			return err
		}
		lr := im.Float32()
		var sr []float32
		if o.Bicubic {
			sr = make([]float32, 3*im.H*scale*im.W*scale)
			kernels.ResizeBicubic(3, im.H, im.W, im.H*scale, im.W*scale, sr, lr)
		} else if sr, err = e.Upscale(lr, im.H, im.W, o.Tile); err != nil {
			return fmt.Errorf("jobs: %s: %w", path, err)
		}
		if err := imageio.FromPlanarFloat(im.W*scale, im.H*scale, sr).Save(filepath.Join(o.Out, stem(path)+".png")); err != nil {
			return err
		}
		meter.Print(i+1, filepath.Base(path))
	}
	o.Log.Info("super-resolved", "images", len(paths), "scale", scale, "out", o.Out)
	return nil
}
