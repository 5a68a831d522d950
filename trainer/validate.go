package trainer

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
)

// Files validation writes: the weights of the step with the best
// validation PSNR so far, beside the latest.
const (
	SRBestFile  = "sr_best.safetensors"
	PDMBestFile = "pdm_best.safetensors"
)

// ValOptions make the trainer score its SR network on validation pairs
// while it trains.
type ValOptions struct {
	HR, LR string // ground truth and LR images, matched by base name
	Every  int    // steps between validations (0: only at the end)
	// Border pixels cropped from each side before scoring (default 4).
	Border int
}

// valPair is one validation image pair in memory.
type valPair struct {
	name   string
	lr     []float32 // 3 x h x w in [0,1]
	h, w   int
	gt     []uint8 // 3 x h*s x w*s
	gh, gw int
}

// valTile is the LR tile side of validation's tiled SR.
const valTile = 128

// loadVal reads the validation pairs: every LR image of o.LR with a
// ground truth of the same base name in o.HR, cropped to scale times the
// LR size (as `pdmflow eval` pairs them).
func loadVal(o *ValOptions, scale int) ([]valPair, error) {
	lrs, err := imageio.List(o.LR)
	if err != nil {
		return nil, err
	}
	gts, err := imageio.List(o.HR)
	if err != nil {
		return nil, err
	}
	byStem := map[string]string{}
	for _, g := range gts {
		byStem[strings.TrimSuffix(filepath.Base(g), filepath.Ext(g))] = g
	}
	var ps []valPair
	for _, l := range lrs {
		name := strings.TrimSuffix(filepath.Base(l), filepath.Ext(l))
		g, ok := byStem[name]
		if !ok {
			return nil, fmt.Errorf("trainer: validation: no ground truth for %s in %s", l, o.HR)
		}
		lim, err := imageio.Load(l)
		if err != nil {
			return nil, err
		}
		gim, err := imageio.Load(g)
		if err != nil {
			return nil, err
		}
		gh, gw := lim.H*scale, lim.W*scale
		if gim.H < gh || gim.W < gw || gim.H-gh >= scale || gim.W-gw >= scale {
			return nil, fmt.Errorf("trainer: validation: %s is %dx%d, its ground truth %s %dx%d, not x%d", l, lim.W, lim.H, g, gim.W, gim.H, scale)
		}
		gim = gim.Crop(0, 0, gw, gh)
		ps = append(ps, valPair{name: name, lr: lim.Float32(), h: lim.H, w: lim.W, gt: gim.Pix, gh: gh, gw: gw})
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("trainer: validation: no images in %s", o.LR)
	}
	return ps, nil
}

// validate scores the SR network on the validation pairs: mean RGB PSNR
// and SSIM over the pairs, with the border cropped. A new best PSNR saves
// the SR (and PDM) weights as SRBestFile (and PDMBestFile).
func (t *Trainer) validate() ([]kv, error) {
	if t.val == nil {
		return nil, nil
	}
	border := t.opt.Val.Border
	var psnr, ssim float64
	for _, p := range t.val {
		sr, err := t.SR.Upscale(p.lr, p.h, p.w, valTile)
		if err != nil {
			return nil, fmt.Errorf("trainer: validation of %s: %w", p.name, err)
		}
		kernels.Quantize8(sr, sr)
		out := make([]uint8, len(sr))
		for i, v := range sr {
			out[i] = uint8(math.Round(float64(v) * 255))
		}
		psnr += kernels.PSNR(out, p.gt, 3, p.gh, p.gw, border)
		ssim += kernels.SSIM(out, p.gt, 3, p.gh, p.gw, border)
	}
	psnr /= float64(len(t.val))
	ssim /= float64(len(t.val))
	t.m.ValPSNR.Set(psnr)
	t.m.ValSSIM.Set(ssim)
	if psnr > t.bestPSNR {
		t.bestPSNR, t.bestStep = psnr, t.step
		if err := model.SaveSR(filepath.Join(t.opt.Out, SRBestFile), t.SR); err != nil {
			return nil, fmt.Errorf("trainer: %w", err)
		}
		if t.PDM != nil {
			if err := model.SavePDM(filepath.Join(t.opt.Out, PDMBestFile), t.OutPDM()); err != nil {
				return nil, fmt.Errorf("trainer: %w", err)
			}
		}
		t.log.Info("best validation PSNR so far", "step", t.step, "psnr", psnr, "ssim", ssim, "saved", SRBestFile)
	}
	return []kv{{"val_psnr", psnr}, {"val_ssim", ssim}}, nil
}

// checkVal validates the options.
func (o *ValOptions) check() error {
	if o.HR == "" || o.LR == "" {
		return errors.New("trainer: validation needs both ground truth and LR directories")
	}
	if o.Every < 0 || o.Border < 0 {
		return fmt.Errorf("trainer: validation every %d steps with a border of %d", o.Every, o.Border)
	}
	return nil
}
