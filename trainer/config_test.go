package trainer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/model"
)

func TestPresetsValid(t *testing.T) {
	names := Presets()
	for _, want := range []string{"2017Track2", "2018Track2", "2018Track4", "2020Track1", "2020Track2", "cpu-small", "srgan", "2020Track1-srgan-official",
		"2017Track2-official", "2018Track2-official", "2018Track4-official", "2020Track1-official", "2020Track2-official"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("preset %s missing from %v", want, names)
		}
	}
	for _, n := range names {
		c, err := Preset(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if c.Name != n {
			t.Errorf("preset file %s names itself %q", n, c.Name)
		}
		// Each says what it is: the paper's settings, or the departures
		// from them.
		b, _ := PresetYAML(n)
		want := "paper's stated settings"
		if strings.HasSuffix(n, "-official") || n == "cpu-small" {
			want = "Departures"
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("preset %s's header does not say %q", n, want)
		}
	}
}

func TestConfigFileOverridesBase(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "c.yaml")
	os.WriteFile(f, []byte("base: cpu-small\nname: mine\nsteps: 7\npdm:\n  noise: {mode: z-only, nc: 3, nf: 8, nb: 1, conv: 3}\n"), 0o644)
	c, err := LoadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.Steps != 7 || c.Name != "mine" || c.PDM.Noise.Mode != "z-only" || c.PDM.Kernel.Size != 21 {
		t.Fatalf("%+v", c)
	}
	os.WriteFile(f, []byte("base: cpu-small\nstepz: 7\n"), 0o644)
	if _, err := LoadConfig(f); err == nil || !strings.Contains(err.Error(), "stepz") {
		t.Fatalf("misspelt key: %v", err)
	}
	os.WriteFile(f, []byte("base: cpu-small\nhr_crop: 30\nbatch: 0\n"), 0o644)
	_, err = LoadConfig(f)
	if err == nil || !strings.Contains(err.Error(), "hr_crop") || !strings.Contains(err.Error(), "batch") {
		t.Fatalf("invalid values: %v", err)
	}
}

// TestConfigsDirectory: every file of configs/ loads; each
// NAME-deterministic.yaml is preset NAME with z_k (and z_n where the
// preset draws one) fixed to zero and nothing else changed, for every
// paper preset; the Table 4 and Table 5 files change only what their
// comments say.
func TestConfigsDirectory(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "configs", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("configs: %v %v", files, err)
	}
	loaded := map[string]*Config{}
	for _, f := range files {
		c, err := LoadConfig(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if c.Name != name {
			t.Errorf("%s names itself %q", f, c.Name)
		}
		loaded[name] = c
	}
	// only returns base with the given changes, to compare with a file.
	only := func(base string, edit func(c *Config)) *Config {
		c, err := Preset(base)
		if err != nil {
			t.Fatal(err)
		}
		edit(c)
		return c
	}
	for _, p := range Presets() {
		name := p + "-deterministic"
		c, ok := loaded[name]
		if !ok {
			t.Errorf("no configs/%s.yaml: the deterministic ablation of preset %s", name, p)
			continue
		}
		want := only(p, func(c *Config) {
			c.Name = name
			c.PDM.FixKernelZ = true
			m := c.PDM.Noise.Mode
			c.PDM.FixNoiseZ = m == model.NoiseMixed || m == model.NoiseZOnly
		})
		if !reflect.DeepEqual(c, want) {
			t.Errorf("%s is not %s with the latents fixed:\n%s\nwant\n%s", name, p, c.YAML(), want.YAML())
		}
	}
	for name, edit := range map[string]func(c *Config){
		"2018Track4-fixed-zk": func(c *Config) { c.PDM.FixKernelZ = true },
		"2018Track4-fixed-zn": func(c *Config) { c.PDM.FixNoiseZ = true },
		"2017Track2-kernel-mix": func(c *Config) {
			c.PDM.Kernel.Spatial, c.PDM.Kernel.Conv, c.PDM.Kernel.Mix = true, 1, true
		},
		"2017Track2-kernel-content": func(c *Config) {
			c.PDM.Kernel.Spatial, c.PDM.Kernel.Conv, c.PDM.Kernel.Mix = true, 1, true
			c.PDM.FixKernelZ = true
		},
	} {
		base, _, _ := strings.Cut(name, "-")
		want := only(base, func(c *Config) { c.Name = name; edit(c) })
		if c := loaded[name]; !reflect.DeepEqual(c, want) {
			t.Errorf("configs/%s.yaml is not %s with its change", name, base)
		}
	}
}
