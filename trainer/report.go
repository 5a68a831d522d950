package trainer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var csvColumns = []string{"step", "unix_time", "g_adv", "noise_reg", "noise_std", "d", "d_real", "d_fake", "l1", "pdm_gnorm", "k_sigma", "k_sigma_std", "k_aniso", "step_s", "wait_s",
	// The distribution monitor (observeDiversity), and with a truth file its distances.
	"k_width", "k_width_std", "k_aniso_std", "k_pair_ratio", "k_fill", "k_hf_excess", "noise_level_std",
	"w1_width", "spread_width", "w1_noise", "spread_noise",
	// The priors, unweighted (when on).
	"k_smooth", "k_radius", "mode_seek",
	// Streamed pairs: the mean age of their weights, and the oldest, in steps.
	"pair_age", "pair_age_max",
	// Validation (Options.Val), at the reports after it ran.
	"val_psnr", "val_ssim",
	// PDM-SRGAN: the SR network's perceptual and adversarial terms
	// (weighted, as l1), and its discriminator D2's loss.
	"percep", "sr_adv", "d2", "d2_real", "d2_fake"}

func (t *Trainer) openCSV() error {
	path := filepath.Join(t.opt.Out, LogFile)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	if statErr != nil {
		fmt.Fprintln(f, strings.Join(csvColumns, ","))
	}
	t.csv = f
	return nil
}

func (t *Trainer) writeCSV(vals []kv) {
	if t.csv == nil {
		return
	}
	m := map[string]float64{}
	for _, v := range vals {
		m[v.k] = v.v
	}
	row := []string{fmt.Sprint(t.step), fmt.Sprint(time.Now().Unix())}
	for _, c := range csvColumns[2:] {
		if v, ok := m[c]; ok {
			row = append(row, fmt.Sprintf("%.6g", v))
		} else {
			row = append(row, "")
		}
	}
	fmt.Fprintln(t.csv, strings.Join(row, ","))
}
