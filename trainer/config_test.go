package trainer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPresetsValid(t *testing.T) {
	names := Presets()
	for _, want := range []string{"2017Track2", "2018Track2", "2018Track4", "2020Track1", "2020Track2", "cpu-small",
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
