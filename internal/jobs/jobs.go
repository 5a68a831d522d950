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
	"runtime/debug"
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
	// Replace lets Out be a directory with files in it, which the job then
	// replaces as a whole; without it only a missing or empty Out is used.
	Replace bool
	// Tile is the side of the tiles, in LR pixels, an image is degraded in
	// (0: model.DefaultTile). The result does not depend on it.
	Tile     int
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

// gcPercent is the garbage collector's target while degrade and sr run
// (GOGC): they hold one big image while tiles of garbage come and go.
const gcPercent = 25

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
//
// Nothing is written until every input has been checked (options, weights,
// each image's header and size, output names), and the outputs go to a
// temporary directory beside Out that becomes Out at the end: a job that
// fails leaves no partial output. Out must not be, hold or lie inside In.
// Images are degraded in tiles (model.PDM.DegradeTiled), so memory is the
// decoded image plus about 20 bytes per LR pixel, whatever the size.
func Degrade(ctx context.Context, o DegradeOptions) ([]DegradeRecord, error) {
	if o.PerImage < 1 {
		return nil, fmt.Errorf("jobs: per-image count %d must be at least 1", o.PerImage)
	}
	if o.Tile < 0 {
		return nil, fmt.Errorf("jobs: tile %d must not be negative", o.Tile)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	dst, err := newOutputDir(o.In, o.Out, o.Replace)
	if err != nil {
		return nil, err
	}
	p, err := model.LoadPDM(o.Weights)
	if err != nil {
		return nil, err
	}
	paths, err := imageio.List(o.In)
	if err != nil {
		return nil, err
	}
	if err := checkStems(paths); err != nil {
		return nil, err
	}
	ks := p.Cfg.Kernel.Size
	for _, path := range paths {
		info, err := imageio.ReadInfo(path)
		if err != nil {
			return nil, err
		}
		if min(info.W, info.H) <= ks/2 {
			return nil, fmt.Errorf("jobs: %s is %dx%d: too small for %dx%d kernels (needs more than %d pixels per side)", path, info.W, info.H, ks, ks, ks/2)
		}
	}
	tmp, err := dst.begin()
	if err != nil {
		return nil, err
	}
	defer dst.abort()
	// The decoded image stays while its tiles come and go: with the
	// default GOGC the garbage of the tiles could grow to its size again
	// before a collection. A collection costs little here (the big slices
	// hold no pointers to scan).
	defer debug.SetGCPercent(debug.SetGCPercent(gcPercent))
	meter := &progress.Meter{Out: o.Progress, Unit: "image", Total: len(paths)}
	meter.Start(0)
	var recs []DegradeRecord
	for i, path := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pic, err := imageio.Open(path)
		if err != nil {
			return nil, err
		}
		src := func(x0, y0, w, h int, v []float32) error {
			for j, b := range pic.Region(x0, y0, w, h).Pix {
				v[j] = float32(b) / 255
			}
			return nil
		}
		for k := 0; k < o.PerImage; k++ {
			stream := SampleStream(filepath.Base(path), k)
			d, err := p.DegradeTiled(src, pic.H, pic.W, o.Tile, rand.New(rand.NewPCG(o.Seed, stream)))
			if err != nil {
				return nil, fmt.Errorf("jobs: %s: %w", path, err)
			}
			name := stem(path)
			if o.PerImage > 1 {
				name = fmt.Sprintf("%s_d%02d", name, k)
			}
			if err := imageio.FromPlanarFloat(d.W, d.H, d.LR).Save(filepath.Join(tmp, name+".png")); err != nil {
				return nil, err
			}
			rec := DegradeRecord{Source: path, Output: name + ".png", Index: k, Seed: o.Seed, Stream: stream, NoiseStd: d.NoiseRMS}
			if d.Kernel != nil {
				st := model.MeasureKernel(d.Kernel, ks)
				rec.Sigma, rec.Aniso = math.Sqrt(st.SigmaMajor*st.SigmaMinor), st.SigmaMajor/math.Max(st.SigmaMinor, 1e-9)
				if o.Kernels {
					if err := trainer.KernelGrid(d.Kernel, 1, ks, 1, 8).Save(filepath.Join(tmp, name+"_kernel.png")); err != nil {
						return nil, err
					}
				}
			}
			recs = append(recs, rec)
		}
		pic = nil
		meter.Print(i+1, filepath.Base(path))
	}
	b, _ := json.MarshalIndent(recs, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "degradations.json"), b, 0o644); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if err := dst.commit(); err != nil {
		return nil, err
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
	Tile     int  // LR tile side for large images (0: whole images)
	Replace  bool // as DegradeOptions.Replace
	Log      *slog.Logger
	Progress io.Writer
}

// SR super-resolves every image of In into Out (PNG, same base names).
// As Degrade, it checks every input first (an output above
// imageio.MaxPixels is refused: it could not be read back), writes into a
// temporary directory that becomes Out at the end, and refuses an Out that
// overlaps In. The network runs in tiles of Tile LR pixels whose SR pixels
// go straight into the 8-bit output, so memory is the input in floats plus
// the output in bytes.
func SR(ctx context.Context, o SROptions) error {
	if o.Tile < 0 {
		return fmt.Errorf("jobs: tile %d must not be negative", o.Tile)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	dst, err := newOutputDir(o.In, o.Out, o.Replace)
	if err != nil {
		return err
	}
	var e *model.SR
	scale := o.Scale
	if !o.Bicubic {
		if e, err = model.LoadSR(o.Weights); err != nil {
			return err
		}
		scale = e.Cfg.Scale
	} else if scale < 1 || scale > 8 {
		return fmt.Errorf("jobs: bicubic upsampling needs a scale in 1..8, got %d", scale)
	}
	paths, err := imageio.List(o.In)
	if err != nil {
		return err
	}
	if err := checkStems(paths); err != nil {
		return err
	}
	for _, path := range paths {
		info, err := imageio.ReadInfo(path)
		if err != nil {
			return err
		}
		if n := int64(info.W*scale) * int64(info.H*scale); n > imageio.MaxPixels {
			return fmt.Errorf("jobs: %s is %dx%d: at x%d the output would be %dx%d = %d pixels, more than the limit of %d", path, info.W, info.H, scale, info.W*scale, info.H*scale, n, int64(imageio.MaxPixels))
		}
	}
	tmp, err := dst.begin()
	if err != nil {
		return err
	}
	defer dst.abort()
	defer debug.SetGCPercent(debug.SetGCPercent(gcPercent)) // as in Degrade
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
		W, H := im.W*scale, im.H*scale
		out := imageio.NewImage(W, H)
		if o.Bicubic {
			sr := make([]float32, 3*H*W)
			kernels.ResizeBicubic(3, im.H, im.W, H, W, sr, lr)
			for j, v := range sr {
				out.Pix[j] = imageio.Quantize8(v)
			}
		} else {
			err := e.UpscaleTiles(lr, im.H, im.W, o.Tile, func(y0, x0, th, tw int, v []float32) error {
				for c := 0; c < 3; c++ {
					for y := 0; y < th; y++ {
						row := out.Pix[(c*H+y0+y)*W+x0:][:tw]
						for x := range row {
							row[x] = imageio.Quantize8(v[(c*th+y)*tw+x])
						}
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("jobs: %s: %w", path, err)
			}
		}
		if err := out.Save(filepath.Join(tmp, stem(path)+".png")); err != nil {
			return err
		}
		meter.Print(i+1, filepath.Base(path))
	}
	if err := dst.commit(); err != nil {
		return err
	}
	o.Log.Info("super-resolved", "images", len(paths), "scale", scale, "out", o.Out)
	return nil
}
