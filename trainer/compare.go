package trainer

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pdmflow/pdmflow/internal/safetensors"
)

// CompareOutputs compares two training outputs (Options.Out directories),
// as `pdmflow replay --compare` does: every logged loss of train_log.csv
// (the timing columns aside) and every tensor of the PDM and SR weights,
// bit for bit. It returns one line per difference; none means identical.
func CompareOutputs(a, b string) ([]string, error) {
	var diffs []string
	la, err := LossLog(filepath.Join(a, LogFile))
	if err != nil {
		return nil, err
	}
	lb, err := LossLog(filepath.Join(b, LogFile))
	if err != nil {
		return nil, err
	}
	if len(la) != len(lb) {
		diffs = append(diffs, fmt.Sprintf("%s: %d rows against %d", LogFile, len(la), len(lb)))
	}
	for i := 0; i < min(len(la), len(lb)); i++ {
		for k, v := range la[i] {
			if lb[i][k] != v {
				diffs = append(diffs, fmt.Sprintf("%s row %d: %s %s against %s", LogFile, i+1, k, v, lb[i][k]))
			}
		}
	}
	for _, f := range []string{PDMFile, SRFile} {
		ta, errA := readTensors(filepath.Join(a, f))
		tb, errB := readTensors(filepath.Join(b, f))
		if errors.Is(errA, os.ErrNotExist) && errors.Is(errB, os.ErrNotExist) {
			continue
		}
		if errA != nil {
			return nil, errA
		}
		if errB != nil {
			return nil, errB
		}
		for _, x := range ta.Tensors {
			y, ok := tb.Get(x.Name)
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("%s: tensor %s missing from %s", f, x.Name, b))
			case !bytes.Equal(x.Data, y.Data):
				diffs = append(diffs, fmt.Sprintf("%s: tensor %s differs", f, x.Name))
			}
		}
	}
	return diffs, nil
}

// LossLog reads a train_log.csv as one map per row, without the columns
// that measure time (unix_time, step_s, wait_s) or the live stream's timing
// (pair_age, pair_age_max: how old the producers' weights were, which a
// replay, publishing nothing, does not know).
func LossLog(path string) ([]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []map[string]string
	for _, r := range rows[min(1, len(rows)):] {
		m := map[string]string{}
		for i, h := range rows[0] {
			if h == "unix_time" || h == "step_s" || h == "wait_s" || h == "pair_age" || h == "pair_age_max" || i >= len(r) {
				continue
			}
			m[h] = r[i]
		}
		out = append(out, m)
	}
	return out, nil
}

func readTensors(path string) (*safetensors.File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := safetensors.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}
