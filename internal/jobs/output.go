package jobs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrOverlap is wrapped by the error of a job whose output directory is,
// holds or lies inside its input directory.
var ErrOverlap = errors.New("jobs: the output directory overlaps the input directory")

// resolve makes path absolute with its symbolic links resolved, for the
// part of it that exists (a directory still to be made is joined as
// given).
func resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rest := ""
	for p := abs; ; {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest), nil
		}
		parent := filepath.Dir(p)
		if parent == p {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// within reports whether path is dir or inside it (both resolved).
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, string(filepath.Separator))+string(filepath.Separator))
}

// checkOverlap refuses an output directory that is, contains or is inside
// the input directory (after symbolic links): writing there would mix the
// outputs with the inputs, or replace them.
func checkOverlap(in, out string) error {
	ri, err := resolve(in)
	if err != nil {
		return fmt.Errorf("jobs: --in %s: %w", in, err)
	}
	ro, err := resolve(out)
	if err != nil {
		return fmt.Errorf("jobs: --out %s: %w", out, err)
	}
	switch {
	case ri == ro:
		return fmt.Errorf("%w: --out %s is --in %s: the outputs would mix with the inputs; choose another directory", ErrOverlap, out, in)
	case within(ro, ri):
		return fmt.Errorf("%w: --out %s is inside --in %s: the outputs would mix with the inputs; choose a directory outside it", ErrOverlap, out, in)
	case within(ri, ro):
		return fmt.Errorf("%w: --in %s is inside --out %s: writing the outputs would touch the inputs; choose a directory outside it", ErrOverlap, in, out)
	}
	return nil
}

// outputDir is a job's output directory. The job writes into a temporary
// directory beside it and commit renames that into place at the end, so
// that a job that fails or is interrupted leaves nothing half-written and
// the directory, when it appears, is complete.
type outputDir struct {
	final   string
	tmp     string
	replace bool
	done    bool
}

// newOutputDir checks out before anything is written: it must not overlap
// in, and it must not exist, or be an empty directory, or (replace) a
// directory the job may replace as a whole.
func newOutputDir(in, out string, replace bool) (*outputDir, error) {
	if err := checkOverlap(in, out); err != nil {
		return nil, err
	}
	st, err := os.Stat(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("jobs: --out %s: %w", out, err)
	case !st.IsDir():
		return nil, fmt.Errorf("jobs: --out %s exists and is not a directory", out)
	default:
		ents, err := os.ReadDir(out)
		if err != nil {
			return nil, fmt.Errorf("jobs: --out %s: %w", out, err)
		}
		if len(ents) > 0 && !replace {
			return nil, fmt.Errorf("jobs: --out %s exists and is not empty (%d entries): choose another directory, remove it, or replace it as a whole with --replace", out, len(ents))
		}
	}
	return &outputDir{final: filepath.Clean(out), replace: replace}, nil
}

// begin makes the temporary directory and returns it.
func (d *outputDir) begin() (string, error) {
	parent := filepath.Dir(d.final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("jobs: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(d.final)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("jobs: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("jobs: %w", err)
	}
	d.tmp = tmp
	return tmp, nil
}

// commit puts the temporary directory in place of the output directory
// (an empty one is removed; with replace, an old one is moved aside and
// removed once the new one is there).
func (d *outputDir) commit() error {
	var old string
	if st, err := os.Stat(d.final); err == nil && st.IsDir() {
		if err := os.Remove(d.final); err != nil {
			if !d.replace {
				return fmt.Errorf("jobs: --out %s: %w", d.final, err)
			}
			old = d.tmp + ".old"
			if err := os.Rename(d.final, old); err != nil {
				return fmt.Errorf("jobs: moving the old %s aside: %w", d.final, err)
			}
		}
	}
	if err := os.Rename(d.tmp, d.final); err != nil {
		if old != "" {
			os.Rename(old, d.final) // put the old output back
		}
		return fmt.Errorf("jobs: %w", err)
	}
	d.done = true
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("jobs: removing the replaced output %s: %w", old, err)
		}
	}
	return nil
}

// abort removes the temporary directory unless commit succeeded.
func (d *outputDir) abort() {
	if !d.done && d.tmp != "" {
		os.RemoveAll(d.tmp)
	}
}

// checkStems refuses inputs that would write the same output name (a.png
// and a.jpg both make a.png).
func checkStems(paths []string) error {
	seen := map[string]string{}
	for _, p := range paths {
		s := stem(p)
		if q, dup := seen[s]; dup {
			return fmt.Errorf("jobs: %s and %s would both write %s.png: rename one", q, p, s)
		}
		seen[s] = p
	}
	return nil
}
