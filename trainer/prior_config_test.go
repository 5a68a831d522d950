package trainer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestPriorLossDefaultsOff: the presets load with the issue 13 priors and
// the discriminator's batch_std off, and survive a YAML round trip.
func TestPriorLossDefaultsOff(t *testing.T) {
	for _, n := range Presets() {
		c, err := Preset(n)
		if err != nil {
			t.Fatal(err)
		}
		l := c.Loss
		if l.KernelSmooth != 0 || l.KernelRadius != 0 || l.KernelRadiusPx != 0 || l.ModeSeeking != 0 || l.ModeSeekingEps != 0 || c.Disc.BatchStd {
			t.Errorf("%s: priors not off: %+v, batch_std %v", n, l, c.Disc.BatchStd)
		}
		back := roundTrip(t, c)
		if !reflect.DeepEqual(back, c) {
			t.Errorf("%s: YAML round trip\n%+v\nwant\n%+v", n, back, c)
		}
	}
}

func roundTrip(t *testing.T, c *Config) *Config {
	t.Helper()
	f := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(f, c.YAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := LoadConfig(f)
	if err != nil {
		t.Fatalf("%v\n%s", err, c.YAML())
	}
	return back
}

func loadYAML(t *testing.T, text string) (*Config, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return LoadConfig(f)
}

func TestPriorLossConfig(t *testing.T) {
	c, err := loadYAML(t, `base: cpu-small
loss: {kernel_smooth: 0.5, kernel_radius: 0.2, kernel_radius_px: 6, mode_seeking: 0.01}
disc: {batch_std: true}
`)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Loss
	// The preset's other loss weights and disc settings stay.
	if l.Adv != 1 || l.NoiseReg != 10 || l.KernelCenter != 0.1 || l.KernelSmooth != 0.5 || l.KernelRadius != 0.2 || l.KernelRadiusPx != 6 || l.ModeSeeking != 0.01 {
		t.Errorf("loss %+v", l)
	}
	if !c.Disc.BatchStd || c.Disc.NF != 32 {
		t.Errorf("disc %+v", c.Disc)
	}
	if e := l.ModeSeekingEpsilon(); e != 1e-5 {
		t.Errorf("default mode_seeking_eps %g, want 1e-5", e)
	}
	l.ModeSeekingEps = 1e-3
	if e := l.ModeSeekingEpsilon(); e != 1e-3 {
		t.Errorf("mode_seeking_eps %g, want 1e-3", e)
	}
	y := string(c.YAML())
	for _, k := range []string{"kernel_smooth: 0.5", "kernel_radius: 0.2", "kernel_radius_px: 6", "mode_seeking: 0.01", "mode_seeking_eps: 0", "batch_std: true"} {
		if !strings.Contains(y, k) {
			t.Errorf("rendered config lacks %q:\n%s", k, y)
		}
	}
	if back := roundTrip(t, c); !reflect.DeepEqual(back, c) {
		t.Errorf("YAML round trip\n%+v\nwant\n%+v", back, c)
	}
}

func TestPriorLossValidation(t *testing.T) {
	for _, tc := range []struct {
		loss, extra string
		want        []string
	}{
		{"{kernel_smooth: -1}", "", []string{"loss.kernel_smooth -1 must be a non-negative number"}},
		{"{kernel_radius: -0.5, kernel_radius_px: 3}", "", []string{"loss.kernel_radius -0.5 must"}},
		{"{kernel_radius_px: -2}", "", []string{"loss.kernel_radius_px -2 must"}},
		{"{mode_seeking: -0.1}", "", []string{"loss.mode_seeking -0.1 must"}},
		{"{mode_seeking: 0.1, mode_seeking_eps: -1e-5}", "", []string{"loss.mode_seeking_eps -1e-05 must"}},
		{"{kernel_smooth: .nan}", "", []string{"loss.kernel_smooth NaN must"}},
		{"{kernel_smooth: -1, mode_seeking: -2}", "", []string{"loss.kernel_smooth -1", "loss.mode_seeking -2"}},
		{"{kernel_radius: 0.3}", "", []string{"loss.kernel_radius 0.3 needs loss.kernel_radius_px"}},
		{"{mode_seeking: 0.1}", "batch: 15\n", []string{"loss.mode_seeking needs an even batch"}},
		{"{mode_seeking: 0.1}", "pdm: {fix_kernel_z: true}\n", []string{"pdm.fix_kernel_z"}},
	} {
		_, err := loadYAML(t, "base: cpu-small\nloss: "+tc.loss+"\n"+tc.extra)
		if err == nil {
			t.Errorf("%s %q accepted", tc.loss, tc.extra)
			continue
		}
		lines := strings.Split(err.Error(), "\n")
		for _, w := range tc.want {
			found := false
			for _, line := range lines {
				found = found || strings.Contains(line, w)
			}
			if !found {
				t.Errorf("%s %q: error %q lacks a line with %q", tc.loss, tc.extra, err, w)
			}
		}
	}
	// Zero weights and a radius without weight are fine.
	if _, err := loadYAML(t, "base: cpu-small\nloss: {kernel_radius_px: 4, mode_seeking_eps: 0.001}\nbatch: 15\n"); err != nil {
		t.Errorf("priors off: %v", err)
	}
}
