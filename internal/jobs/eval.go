package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/internal/progress"
	"github.com/pdmflow/pdmflow/lpips"
	"github.com/pdmflow/pdmflow/niqe"
	"github.com/pdmflow/pdmflow/quality"
)

// EvalOptions configure EvalWith. The zero value of every metric option
// leaves that metric out; with none of them, EvalWith measures what Eval
// does (RGB PSNR and SSIM after a border crop).
type EvalOptions struct {
	SR string // directory of SR images
	// GT is the directory of ground-truth images (same base names). It may
	// be empty when only NIQE, a no-reference metric, is asked for.
	GT     string
	Border int // pixels cropped from every side before measuring
	// Y measures PSNR and SSIM on the BT.601 Y channel instead of RGB.
	Y bool
	// Shift > 0 maximises PSNR and SSIM over shifts of the ground truth
	// within +-Shift pixels (the NTIRE 2018 scorer), over the centre
	// ShiftPatch x ShiftPatch patch of the ground truth (0: all of it).
	Shift, ShiftPatch int
	// LPIPS lists the LPIPS weights files (lpips.Load): LPIPS of each
	// border-cropped SR image against its ground truth.
	LPIPS []string
	// NIQE is a NIQE model file (niqe.LoadModel): NIQE of each
	// border-cropped SR image.
	NIQE     string
	Progress io.Writer
}

// ImageScore is one image's metrics; a metric that was not measured is
// absent (nil).
type ImageScore struct {
	Name      string   `json:"name"`
	PSNR      *float64 `json:"psnr,omitempty"`
	SSIM      *float64 `json:"ssim,omitempty"`
	PSNRShift *[2]int  `json:"psnr_shift,omitempty"` // (dy, dx): ground truth (y, x) against SR (y+dy, x+dx)
	SSIMShift *[2]int  `json:"ssim_shift,omitempty"`
	LPIPS     *float64 `json:"lpips,omitempty"`
	NIQE      *float64 `json:"niqe,omitempty"`
}

// EvalResult holds per-image metrics and their means, and says how they
// were measured.
type EvalResult struct {
	Images []ImageScore `json:"images"`
	PSNR   *float64     `json:"psnr,omitempty"`
	SSIM   *float64     `json:"ssim,omitempty"`
	LPIPS  *float64     `json:"lpips,omitempty"`
	NIQE   *float64     `json:"niqe,omitempty"`
	Border int          `json:"border"`
	// Channel is "y" for the Y channel (absent: RGB).
	Channel    string `json:"channel,omitempty"`
	Shift      int    `json:"shift,omitempty"`
	ShiftPatch int    `json:"shift_patch,omitempty"`
	// NIQESkipped names the images too small for NIQE (fewer than two
	// whole blocks after the border crop), left out of its mean.
	NIQESkipped []string `json:"niqe_skipped,omitempty"`
}

// Eval compares every image of srDir with the ground-truth image of the
// same base name in gtDir: RGB PSNR and SSIM after cropping border pixels
// (pdm-spec §8). A ground truth larger than its SR image by less than 8
// pixels per side is cropped at the right and bottom (the modcrop of SR
// data sets); other size differences are errors.
func Eval(srDir, gtDir string, border int) (*EvalResult, error) {
	return EvalWith(context.Background(), EvalOptions{SR: srDir, GT: gtDir, Border: border})
}

// EvalWith measures what o asks for on every image of o.SR.
func EvalWith(ctx context.Context, o EvalOptions) (*EvalResult, error) {
	qo := quality.Options{Y: o.Y, Border: o.Border, Shift: o.Shift, Patch: o.ShiftPatch}
	if err := qo.Validate(); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	fullRef := o.GT != ""
	if !fullRef && (o.NIQE == "" || o.Y || o.Shift > 0 || len(o.LPIPS) > 0) {
		return nil, errors.New("jobs: eval: PSNR, SSIM and LPIPS need the ground truth; without it only NIQE can be measured")
	}
	var net *lpips.Net
	if len(o.LPIPS) > 0 {
		var err error
		if net, err = lpips.Load(o.LPIPS...); err != nil {
			return nil, err
		}
	}
	var model *niqe.Model
	if o.NIQE != "" {
		var err error
		if model, err = niqe.LoadModel(o.NIQE); err != nil {
			return nil, err
		}
	}
	srs, err := imageio.List(o.SR)
	if err != nil {
		return nil, err
	}
	byStem := map[string]string{}
	if fullRef {
		gts, err := imageio.List(o.GT)
		if err != nil {
			return nil, err
		}
		for _, g := range gts {
			byStem[stem(g)] = g
		}
	}
	res := &EvalResult{Border: o.Border, Shift: o.Shift}
	if o.Y {
		res.Channel = "y"
	}
	if o.Shift > 0 {
		res.ShiftPatch = o.ShiftPatch
	}
	meter := &progress.Meter{Out: o.Progress, Unit: "image", Total: len(srs)}
	meter.Start(0)
	for i, s := range srs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a, err := imageio.Load(s)
		if err != nil {
			return nil, err
		}
		if a.W <= 2*o.Border || a.H <= 2*o.Border {
			return nil, fmt.Errorf("jobs: %s is %dx%d: nothing left after cropping %d pixels per side", s, a.W, a.H, o.Border)
		}
		sc := ImageScore{Name: stem(s)}
		if fullRef {
			g, ok := byStem[stem(s)]
			if !ok {
				return nil, fmt.Errorf("jobs: no ground truth for %s in %s", s, o.GT)
			}
			b, err := imageio.Load(g)
			if err != nil {
				return nil, err
			}
			if b.W < a.W || b.H < a.H || b.W-a.W >= 8 || b.H-a.H >= 8 {
				return nil, fmt.Errorf("jobs: %s is %dx%d but its ground truth %s is %dx%d", s, a.W, a.H, g, b.W, b.H)
			}
			if b.W != a.W || b.H != a.H {
				b = b.Crop(0, 0, a.W, a.H)
			}
			q, err := quality.Compare(a.Pix, b.Pix, a.H, a.W, qo)
			if err != nil {
				return nil, fmt.Errorf("jobs: %s: %w", s, err)
			}
			sc.PSNR, sc.SSIM = &q.PSNR, &q.SSIM
			if o.Shift > 0 {
				sc.PSNRShift, sc.SSIMShift = &q.PSNRShift, &q.SSIMShift
			}
			if net != nil {
				ca := a.Crop(o.Border, o.Border, a.W-2*o.Border, a.H-2*o.Border)
				cb := b.Crop(o.Border, o.Border, a.W-2*o.Border, a.H-2*o.Border)
				d, err := net.Distance(ca.Pix, cb.Pix, ca.H, ca.W)
				if err != nil {
					return nil, fmt.Errorf("jobs: %s: %w", s, err)
				}
				sc.LPIPS = &d
			}
		}
		if model != nil {
			ca := a.Crop(o.Border, o.Border, a.W-2*o.Border, a.H-2*o.Border)
			v, err := model.Score(niqe.Gray(ca.Pix, ca.H, ca.W), ca.H, ca.W)
			switch {
			case errors.Is(err, niqe.ErrTooFewPatches):
				res.NIQESkipped = append(res.NIQESkipped, sc.Name)
			case err != nil:
				return nil, fmt.Errorf("jobs: %s: %w", s, err)
			default:
				sc.NIQE = &v
			}
		}
		res.Images = append(res.Images, sc)
		meter.Print(i+1, filepath.Base(s))
	}
	sort.Slice(res.Images, func(i, j int) bool { return res.Images[i].Name < res.Images[j].Name })
	mean := func(get func(ImageScore) *float64) *float64 {
		var sum float64
		n := 0
		for _, sc := range res.Images {
			if v := get(sc); v != nil {
				sum += *v
				n++
			}
		}
		if n == 0 {
			return nil
		}
		m := sum / float64(n)
		return &m
	}
	res.PSNR = mean(func(s ImageScore) *float64 { return s.PSNR })
	res.SSIM = mean(func(s ImageScore) *float64 { return s.SSIM })
	res.LPIPS = mean(func(s ImageScore) *float64 { return s.LPIPS })
	res.NIQE = mean(func(s ImageScore) *float64 { return s.NIQE })
	if model != nil && res.NIQE == nil {
		return nil, fmt.Errorf("jobs: no image of %s is large enough for NIQE: after the %d-pixel border crop it needs at least two %dx%d blocks", o.SR, o.Border, model.BlockSize, model.BlockSize)
	}
	return res, nil
}

// NIQEFitOptions configure NIQEFit.
type NIQEFitOptions struct {
	Pristine  string  // directory of pristine images
	Out       string  // model file to write
	Block     int     // patch side (niqe.DefaultBlock)
	Sharpness float64 // sharpness threshold (niqe.DefaultSharpness)
	Log       *slog.Logger
	Progress  io.Writer
}

// NIQEFit fits a NIQE pristine model on every image of o.Pristine (in gray
// levels as MATLAB's rgb2gray) and writes it to o.Out. Images without a
// whole block are skipped (and logged).
func NIQEFit(ctx context.Context, o NIQEFitOptions) (*niqe.Model, error) {
	f, err := niqe.NewFitter(niqe.FitOptions{Block: o.Block, Sharpness: o.Sharpness})
	if err != nil {
		return nil, err
	}
	paths, err := imageio.List(o.Pristine)
	if err != nil {
		return nil, err
	}
	meter := &progress.Meter{Out: o.Progress, Unit: "image", Total: len(paths)}
	meter.Start(0)
	for i, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		im, err := imageio.Load(p)
		if err != nil {
			return nil, err
		}
		kept, err := f.Add(niqe.Gray(im.Pix, im.H, im.W), im.H, im.W)
		if errors.Is(err, niqe.ErrTooFewPatches) {
			if o.Log != nil {
				o.Log.Warn("niqe-fit: image skipped", "image", p, "reason", err)
			}
			meter.Print(i+1, filepath.Base(p))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("jobs: %s: %w", p, err)
		}
		if o.Log != nil {
			o.Log.Debug("niqe-fit", "image", p, "patches_kept", kept)
		}
		meter.Print(i+1, filepath.Base(p))
	}
	m, err := f.Model()
	if err != nil {
		return nil, err
	}
	m.Source = o.Pristine
	if dir := filepath.Dir(o.Out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
	}
	if err := m.Save(o.Out); err != nil {
		return nil, err
	}
	return m, nil
}
