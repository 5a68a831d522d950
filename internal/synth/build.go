package synth

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pdmflow/pdmflow/diversity"
	"github.com/pdmflow/pdmflow/internal/imageio"
)

// SplitFile names the file, in a photo directory, that assigns each photo
// to a side: lines "hr: a.png b.png", "lr: ...", "val: ...".
const SplitFile = "split.txt"

// Split assigns photos (base names) to the three uses.
type Split struct {
	HR, LR, Val []string
	// Train photos give both sides: their tiles alternate, checkerboard
	// fashion, between the HR side and the LR side, so the two sides are
	// unpaired (no pixel in both) but show the same kinds of scene.
	Train []string
}

// ReadSplit reads dir/split.txt, or, when there is none, splits the photos
// of dir in sorted order: of every five, two go to the HR side, two to the
// LR side and one to validation.
func ReadSplit(dir string) (Split, error) {
	var s Split
	f, err := os.Open(filepath.Join(dir, SplitFile))
	if errors.Is(err, os.ErrNotExist) {
		paths, err := imageio.List(dir)
		if err != nil {
			return s, err
		}
		if len(paths) < 3 {
			return s, fmt.Errorf("synth: %s: %d photos; the demo needs at least 3 (HR side, LR side, validation)", dir, len(paths))
		}
		// Every fifth photo validates; the others train (both sides).
		for i, p := range paths {
			b := filepath.Base(p)
			if i%5 == 4 {
				s.Val = append(s.Val, b)
			} else {
				s.Train = append(s.Train, b)
			}
		}
		if len(s.Val) == 0 {
			s.Val, s.Train = s.Train[len(s.Train)-1:], s.Train[:len(s.Train)-1]
		}
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("synth: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		key, rest, ok := strings.Cut(t, ":")
		if !ok {
			return s, fmt.Errorf("synth: %s/%s:%d: want \"train|hr|lr|val: files...\"", dir, SplitFile, line)
		}
		names := strings.Fields(rest)
		switch strings.TrimSpace(key) {
		case "hr":
			s.HR = append(s.HR, names...)
		case "lr":
			s.LR = append(s.LR, names...)
		case "val":
			s.Val = append(s.Val, names...)
		case "train":
			s.Train = append(s.Train, names...)
		default:
			return s, fmt.Errorf("synth: %s/%s:%d: unknown side %q", dir, SplitFile, line, key)
		}
	}
	if (len(s.Train) == 0 && (len(s.HR) == 0 || len(s.LR) == 0)) || len(s.Val) == 0 {
		return s, fmt.Errorf("synth: %s/%s: needs train photos (or both hr and lr photos) and val photos", dir, SplitFile)
	}
	return s, sc.Err()
}

// Options control Build.
type Options struct {
	Params  Params
	Seed    uint64
	LRTile  int // HR side of the tiles cut from LR-side photos (each gets its own draw)
	ValTile int // HR side of the validation tiles
	MaxVal  int // validation tiles per photo at most (0: all)
	Log     *slog.Logger
}

// DefaultOptions are the demo's.
func DefaultOptions() Options {
	return Options{Params: Default(), Seed: 1, LRTile: 192, ValTile: 128, MaxVal: 12}
}

// Manifest records what Build made: every LR image with its degradation.
type Manifest struct {
	Params  Params            `json:"params"`
	Seed    uint64            `json:"seed"`
	Split   Split             `json:"split"`
	Images  map[string]Draw   `json:"images"`  // LR file (relative to the output) -> its draw
	Sources map[string]string `json:"sources"` // LR file -> photo and tile
}

// Truth is the true degradation of the LR side (lr/), for package
// diversity.
func (m *Manifest) Truth() *diversity.Truth {
	t := &diversity.Truth{Dist: m.Params.Name, Doc: m.Params.Doc, Scale: m.Params.Scale, KernelSize: m.Params.KernelSize}
	names := make([]string, 0, len(m.Images))
	for name := range m.Images {
		if strings.HasPrefix(name, "lr/") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		d := m.Images[name]
		raw, _ := json.Marshal(d)
		t.Images = append(t.Images, diversity.TruthImage{Name: name, Kernel: d.Stats, NoiseStd: d.NoiseStd, Draw: raw})
	}
	return t
}

// Build writes, under out: hr/ (the HR-side photos), lr/ (tiles of the
// LR-side photos, each degraded with its own draw), val/hr and val/lr
// (validation tiles and their degraded versions), manifest.json (every
// LR image's draw and source) and truth.json (the LR side's true
// degradations, for `pdmflow diversity`).
func Build(photos, out string, o Options) (*Manifest, error) {
	if err := o.Params.Validate(); err != nil {
		return nil, err
	}
	split, err := ReadSplit(photos)
	if err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	for _, d := range []string{"hr", "lr", "val/hr", "val/lr"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
	}
	m := &Manifest{Params: o.Params, Seed: o.Seed, Split: split, Images: map[string]Draw{}, Sources: map[string]string{}}
	for _, name := range split.HR {
		im, err := imageio.Load(filepath.Join(photos, name))
		if err != nil {
			return nil, err
		}
		if err := im.Save(filepath.Join(out, "hr", stem(name)+".png")); err != nil {
			return nil, err
		}
	}
	if err := tiles(photos, out, "lr", split.LR, o.LRTile, 0, "", o, m); err != nil {
		return nil, err
	}
	if err := trainTiles(photos, out, split.Train, o.LRTile, o, m); err != nil {
		return nil, err
	}
	if err := tiles(photos, out, "val/lr", split.Val, o.ValTile, o.MaxVal, filepath.Join(out, "val/hr"), o, m); err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "manifest.json"), b, 0o644); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	if err := m.Truth().Write(filepath.Join(out, diversity.TruthFile)); err != nil {
		return nil, err
	}
	o.Log.Info("demo data built", "out", out, "hr_photos", len(split.HR), "train_photos", len(split.Train), "hr_tiles", countPrefix(m.Sources, "hr/"), "lr_images", countPrefix(m.Images, "lr/"), "val_pairs", countPrefix(m.Images, "val/lr/"))
	return m, nil
}

// countPrefix counts the keys of m that start with p.
func countPrefix[V any](m map[string]V, p string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, p) {
			n++
		}
	}
	return n
}

func stem(name string) string { return strings.TrimSuffix(name, filepath.Ext(name)) }

// tiles cuts every photo into tile x tile HR tiles (at most maxTiles per
// photo, spread evenly), degrades each with its own draw and writes the LR
// tile to out/dir (and the HR tile to gtDir when set). Each tile's
// randomness is keyed by the seed, the photo's name and the tile index.
func tiles(photos, out, dir string, names []string, tile, maxTiles int, gtDir string, o Options, m *Manifest) error {
	sort.Strings(names)
	for _, name := range names {
		im, err := imageio.Load(filepath.Join(photos, name))
		if err != nil {
			return err
		}
		nx, ny := im.W/tile, im.H/tile
		if nx == 0 || ny == 0 {
			return fmt.Errorf("synth: %s is %dx%d, smaller than a %d-pixel tile", name, im.W, im.H, tile)
		}
		idx := make([]int, nx*ny)
		for i := range idx {
			idx[i] = i
		}
		if maxTiles > 0 && len(idx) > maxTiles {
			picked := make([]int, maxTiles)
			for i := range picked {
				picked[i] = idx[i*len(idx)/maxTiles]
			}
			idx = picked
		}
		h := fnv.New64a()
		h.Write([]byte(name))
		for _, t := range idx {
			x0, y0 := (t%nx)*tile, (t/nx)*tile
			hr := im.Crop(x0, y0, tile, tile)
			r := rand.New(rand.NewPCG(o.Seed, h.Sum64()^uint64(t)))
			d := o.Params.Sample(r)
			lr, lh, lw, err := o.Params.Apply(hr.Float32(), tile, tile, &d, r)
			if err != nil {
				return fmt.Errorf("synth: %s tile %d: %w", name, t, err)
			}
			file := fmt.Sprintf("%s_t%02d.png", stem(name), t)
			if err := imageio.FromPlanarFloat(lw, lh, lr).Save(filepath.Join(out, dir, file)); err != nil {
				return err
			}
			if gtDir != "" {
				if err := hr.Save(filepath.Join(gtDir, file)); err != nil {
					return err
				}
			}
			rel := filepath.ToSlash(filepath.Join(dir, file))
			m.Images[rel] = d
			m.Sources[rel] = fmt.Sprintf("%s@%d,%d+%d", name, x0, y0, tile)
		}
	}
	return nil
}

// trainTiles cuts every train photo into tile x tile tiles and sends them,
// checkerboard fashion, to the HR side (saved as they are) and to the LR
// side (degraded with their own draw, as tiles does).
func trainTiles(photos, out string, names []string, tile int, o Options, m *Manifest) error {
	sort.Strings(names)
	for _, name := range names {
		im, err := imageio.Load(filepath.Join(photos, name))
		if err != nil {
			return err
		}
		nx, ny := im.W/tile, im.H/tile
		if nx*ny < 2 {
			return fmt.Errorf("synth: %s is %dx%d: a train photo needs at least two %d-pixel tiles (one per side)", name, im.W, im.H, tile)
		}
		h := fnv.New64a()
		h.Write([]byte(name))
		for t := 0; t < nx*ny; t++ {
			tx, ty := t%nx, t/nx
			x0, y0 := tx*tile, ty*tile
			hr := im.Crop(x0, y0, tile, tile)
			file := fmt.Sprintf("%s_t%02d.png", stem(name), t)
			if (tx+ty)%2 == 0 {
				if err := hr.Save(filepath.Join(out, "hr", file)); err != nil {
					return err
				}
				m.Sources["hr/"+file] = fmt.Sprintf("%s@%d,%d+%d", name, x0, y0, tile)
				continue
			}
			r := rand.New(rand.NewPCG(o.Seed, h.Sum64()^uint64(t)))
			d := o.Params.Sample(r)
			lr, lh, lw, err := o.Params.Apply(hr.Float32(), tile, tile, &d, r)
			if err != nil {
				return fmt.Errorf("synth: %s tile %d: %w", name, t, err)
			}
			if err := imageio.FromPlanarFloat(lw, lh, lr).Save(filepath.Join(out, "lr", file)); err != nil {
				return err
			}
			m.Images["lr/"+file] = d
			m.Sources["lr/"+file] = fmt.Sprintf("%s@%d,%d+%d", name, x0, y0, tile)
		}
	}
	return nil
}
