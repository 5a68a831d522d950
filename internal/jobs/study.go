package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pdmflow/pdmflow/diversity"
	"github.com/pdmflow/pdmflow/trainer"
)

// StudyOptions configure Study: the demo run for every config,
// distribution and seed.
type StudyOptions struct {
	Configs   []*trainer.Config // the variants compared (distinct names)
	Dists     []string          // synth distributions
	Seeds     []uint64          // training seeds (the data stay the same)
	Photos    string
	Out       string
	Producers int
	// ReadOnly reads the cells that have results and runs nothing (the
	// table of a study in progress).
	ReadOnly bool
	Version  string // recorded in each cell's results.json
	// CompareDirect also trains every cell's PDM-SR in a single process
	// (DemoOptions.CompareDirect).
	CompareDirect bool
	Log           *slog.Logger
	Progress      io.Writer
}

// StudyCell is one demo run of a study.
type StudyCell struct {
	Config string      `json:"config"`
	Dist   string      `json:"dist"`
	Seed   uint64      `json:"seed"`
	Result *DemoResult `json:"result"`
}

// StudyResult is every cell of a study.
type StudyResult struct {
	Configs []string    `json:"configs"`
	Dists   []string    `json:"dists"`
	Seeds   []uint64    `json:"seeds"`
	Cells   []StudyCell `json:"cells"`
}

// srKey names the runs that depend only on a config's SR training (the
// bicubic-trained SR and the oracle), so that the configs of a study that
// differ only in the PDM share them.
func srKey(c *trainer.Config) string {
	b, _ := json.Marshal(struct {
		SR, Optim                        any
		L1                               float64
		Steps, Batch, HRCrop, StreamPool int
	}{c.SR, c.Optim, c.Loss.L1, c.Steps, c.Batch, c.HRCrop, c.StreamPool})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:4])
}

// directKey names the single-process PDM-SR training of a config: all of
// it but its name and the settings only the stream uses, so that configs
// of a study that differ only in those share it.
func directKey(c *trainer.Config) string {
	d := *c
	d.Name, d.StreamPool, d.PublishEvery, d.LagBudget = "", 0, 0, 0
	b, _ := json.Marshal(d)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:4])
}

// Study runs the demo for every seed, distribution and config, in that
// order of loops (so that a partial study has every cell of its first
// seeds), under Out: runs/CONFIG/DIST/sSEED, the data of each distribution
// under data/DIST, and the bicubic-trained and oracle SR networks, which
// do not depend on the PDM, under shared/ (trained once for all configs
// with the same SR training). A cell whose results.json exists is read,
// not run again, so a study resumes where it stopped.
func Study(ctx context.Context, o StudyOptions) (*StudyResult, error) {
	if len(o.Configs) == 0 || len(o.Dists) == 0 || len(o.Seeds) == 0 {
		return nil, errors.New("jobs: a study needs configs, distributions and seeds")
	}
	names := map[string]bool{}
	res := &StudyResult{Dists: o.Dists, Seeds: o.Seeds}
	for _, c := range o.Configs {
		if names[c.Name] {
			return nil, fmt.Errorf("jobs: study: two configs named %q", c.Name)
		}
		names[c.Name] = true
		res.Configs = append(res.Configs, c.Name)
	}
	total, done := len(o.Configs)*len(o.Dists)*len(o.Seeds), 0
	start := time.Now()
	for _, seed := range o.Seeds {
		for _, dist := range o.Dists {
			for _, base := range o.Configs {
				cfg := *base
				cfg.Seed = seed
				out := filepath.Join(o.Out, "runs", cfg.Name, dist, fmt.Sprintf("s%d", seed))
				cell := StudyCell{Config: cfg.Name, Dist: dist, Seed: seed}
				if b, err := os.ReadFile(filepath.Join(out, "results.json")); err == nil {
					var r DemoResult
					if err := json.Unmarshal(b, &r); err == nil {
						cell.Result = &r
					}
				}
				if cell.Result == nil && o.ReadOnly {
					continue
				}
				if cell.Result == nil {
					key := srKey(&cfg)
					o.Log.Info("study: running", "config", cfg.Name, "dist", dist, "seed", seed, "cell", done+1, "of", total, "out", out)
					r, err := Demo(ctx, DemoOptions{Photos: o.Photos, Out: out, Config: &cfg, Producers: o.Producers, Dist: dist,
						DataDir:       filepath.Join(o.Out, "data", dist),
						BicubicOut:    filepath.Join(o.Out, "shared", "bicubic-sr", key, fmt.Sprintf("s%d", seed)),
						OracleOut:     filepath.Join(o.Out, "shared", "oracle-sr", dist, key, fmt.Sprintf("s%d", seed)),
						DirectOut:     filepath.Join(o.Out, "shared", "pdm-sr-direct", dist, directKey(&cfg), fmt.Sprintf("s%d", seed)),
						CompareDirect: o.CompareDirect, Version: o.Version, Log: o.Log, Progress: o.Progress})
					if err != nil {
						return res, fmt.Errorf("jobs: study cell %s/%s/s%d: %w", cfg.Name, dist, seed, err)
					}
					cell.Result = r
				}
				res.Cells = append(res.Cells, cell)
				done++
				if o.Progress != nil {
					el := time.Since(start)
					fmt.Fprintf(o.Progress, "study: %d/%d cells (%s %s seed %d), elapsed %s\n", done, total, cfg.Name, dist, seed, el.Round(time.Second))
				}
			}
		}
	}
	return res, res.Write(o.Out)
}

// Write saves study.json and study.md in dir.
func (r *StudyResult) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	b, _ := json.MarshalIndent(r, "", " ")
	if err := os.WriteFile(filepath.Join(dir, "study.json"), b, 0o644); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "study.md"), []byte(r.Markdown()), 0o644)
}

// agg is the mean and sample standard deviation of some values.
type agg struct{ v []float64 }

func (a *agg) add(x float64) {
	if !math.IsNaN(x) {
		a.v = append(a.v, x)
	}
}

func (a agg) String() string { return a.format("%.2f") }

func (a agg) format(f string) string {
	if len(a.v) == 0 {
		return "-"
	}
	var m, s float64
	for _, x := range a.v {
		m += x
	}
	m /= float64(len(a.v))
	if len(a.v) == 1 {
		return fmt.Sprintf(f, m)
	}
	for _, x := range a.v {
		s += (x - m) * (x - m)
	}
	s = math.Sqrt(s / float64(len(a.v)-1))
	return fmt.Sprintf(f+" ± "+f, m, s)
}

func (a agg) mean() float64 {
	if len(a.v) == 0 {
		return math.NaN()
	}
	var m float64
	for _, x := range a.v {
		m += x
	}
	return m / float64(len(a.v))
}

// Markdown renders the study: per distribution, every method's PSNR and
// SSIM as mean ± standard deviation over the seeds, and for each config's
// PDM-SR the learned-against-true spread ratio and Wasserstein-1 distance
// of the kernel width and the noise level.
func (r *StudyResult) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Seeds %v; mean ± sample standard deviation over the seeds with results (n).\n\n", r.Seeds)
	b.WriteString("| distribution | method | n | PSNR (dB) | SSIM | width spread ratio | width W1 (px) | noise spread ratio | noise W1 |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, dist := range r.Dists {
		type key struct{ method, config string }
		rows := map[key]*[6]agg{}
		var order []key
		get := func(k key) *[6]agg {
			if rows[k] == nil {
				rows[k] = &[6]agg{}
				order = append(order, k)
			}
			return rows[k]
		}
		for _, c := range r.Cells {
			if c.Dist != dist || c.Result == nil {
				continue
			}
			var stream, direct *DemoRow
			for i, row := range c.Result.Rows {
				switch {
				case strings.HasPrefix(row.Method, "PDM-SR (SR trained"):
					stream = &c.Result.Rows[i]
				case strings.HasPrefix(row.Method, "PDM-SR, single process"):
					direct = &c.Result.Rows[i]
				}
			}
			if stream != nil && direct != nil {
				// Paired by seed: the stream's cost without the seeds'
				// spread.
				a := get(key{method: streamMinusDirect, config: c.Config})
				a[0].add(stream.PSNR - direct.PSNR)
				a[1].add(stream.SSIM - direct.SSIM)
			}
			for _, row := range c.Result.Rows {
				k := key{method: row.Method}
				if strings.HasPrefix(row.Method, "PDM-SR") {
					k.config = c.Config
				} else if seenSeed(r, c, row.Method) {
					continue // shared across configs: count each seed once
				}
				a := get(k)
				a[0].add(row.PSNR)
				a[1].add(row.SSIM)
				dv := row.Diversity
				if dv == nil && row.Method == "PDM-SR (SR trained on PDM pairs)" {
					dv = c.Result.Diversity // results written before rows carried theirs
				}
				if k.config != "" && dv != nil {
					w, n := dv.Get(diversity.Width), dv.Get(diversity.Noise)
					a[2].add(w.SpreadRatio)
					a[3].add(w.W1)
					a[4].add(n.SpreadRatio)
					a[5].add(n.W1)
				}
			}
		}
		sort.SliceStable(order, func(i, j int) bool { return methodRank(order[i].method) < methodRank(order[j].method) })
		for _, k := range order {
			a := rows[k]
			name := k.method
			switch {
			case k.method == streamMinusDirect:
				name = streamMinusDirect + ", " + k.config
			case k.config != "" && strings.Contains(k.method, "single process"):
				name = "PDM-SR single process, " + k.config
			case k.config != "":
				name = "PDM-SR, " + k.config
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s |\n", dist, name, len(a[0].v), a[0], a[1].format("%.4f"),
				a[2].format("%.2f"), a[3].format("%.3f"), a[4].format("%.2f"), a[5].format("%.4f"))
		}
	}
	return b.String()
}

// seenSeed reports whether a method shared by the configs (bicubic,
// bicubic-SR, oracle) was already counted for c's seed and distribution by
// an earlier cell.
func seenSeed(r *StudyResult, c StudyCell, _ string) bool {
	for _, o := range r.Cells {
		if o.Dist == c.Dist && o.Seed == c.Seed && o.Result != nil && indexOf(r.Configs, o.Config) < indexOf(r.Configs, c.Config) {
			return true
		}
	}
	return false
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// streamMinusDirect is the study row of the paired difference between
// the streamed PDM-SR and the single-process one, seed by seed.
const streamMinusDirect = "streamed minus single process"

func methodRank(m string) int {
	switch {
	case m == streamMinusDirect:
		return 3
	case strings.HasPrefix(m, "bicubic upsampling"):
		return 0
	case strings.HasPrefix(m, "SR trained on bicubic"):
		return 1
	case strings.HasPrefix(m, "PDM-SR"):
		return 2
	}
	return 4
}
