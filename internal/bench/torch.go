package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// DefaultPython is the interpreter of the PyTorch reference: Debian's
// system Python, which sees the python3-torch package (a pyenv python3
// first on PATH does not).
const DefaultPython = "/usr/bin/python3"

// ErrNoTorch is returned when the PyTorch reference cannot run: no Python
// at the given path, no torch module in it, or no reference script.
var ErrNoTorch = errors.New("PyTorch reference not available")

// installHint is what to do when Debian's Python has no torch.
const installHint = "install python3-torch (apt-get install -y python3-torch) to get ratios"

// Torch is what bench/pdm_ref.py measured.
type Torch struct {
	Header        string  `json:"header"` // its first line: version, threads, batch, SR network
	W1MsPerBatch  float64 `json:"w1_ms_per_batch"`
	W1PairsPerSec float64 `json:"w1_pairs_per_s"`
	W2MsPerStep   float64 `json:"w2_ms_per_step"`
	W2PairsPerSec float64 `json:"w2_pairs_per_s"`
	// PeakRSSMiB is the peak resident set of the reference's process, which
	// runs W1 and then W2.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

// PairsPerSec is the reference's number for a workload (0 for W3, which
// has none).
func (t *Torch) PairsPerSec(workload string) float64 {
	switch workload {
	case "w1":
		return t.W1PairsPerSec
	case "w2":
		return t.W2PairsPerSec
	}
	return 0
}

var (
	torchW1 = regexp.MustCompile(`(?m)^W1 producer forward: ([0-9.]+) ms/batch = ([0-9.]+) pairs/s\s*$`)
	torchW2 = regexp.MustCompile(`(?m)^W2 joint train step: ([0-9.]+) ms/step = ([0-9.]+) pairs/s\s*$`)
)

// ParseTorch reads pdm_ref.py's output.
func ParseTorch(out string) (*Torch, error) {
	t := &Torch{}
	if i := strings.Index(out, "torch "); i >= 0 {
		t.Header, _, _ = strings.Cut(out[i:], "\n")
	}
	for _, f := range []struct {
		re      *regexp.Regexp
		name    string
		ms, pps *float64
	}{{torchW1, "W1 producer forward", &t.W1MsPerBatch, &t.W1PairsPerSec}, {torchW2, "W2 joint train step", &t.W2MsPerStep, &t.W2PairsPerSec}} {
		m := f.re.FindStringSubmatch(out)
		if m == nil {
			return nil, fmt.Errorf("bench: no %q line in the reference's output:\n%s", f.name, out)
		}
		var err1, err2 error
		*f.ms, err1 = strconv.ParseFloat(m[1], 64)
		*f.pps, err2 = strconv.ParseFloat(m[2], 64)
		if err := errors.Join(err1, err2); err != nil || *f.pps <= 0 {
			return nil, fmt.Errorf("bench: reference line %q: %v", m[0], err)
		}
	}
	return t, nil
}

// TorchOptions say how to run the reference.
type TorchOptions struct {
	Python  string // DefaultPython when empty
	Script  string // bench/pdm_ref.py
	Batch   int
	Threads int
	Iters   int
	Stderr  io.Writer // the script's stderr (nil: discarded)
}

// CheckTorch reports whether python can import torch, and its version;
// the error wraps ErrNoTorch with the reason.
func CheckTorch(ctx context.Context, python string) (string, error) {
	if python == "" {
		python = DefaultPython
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, "-c", "import torch; print(torch.__version__)")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		reason := err.Error()
		if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); lines[len(lines)-1] != "" {
			reason = lines[len(lines)-1]
		}
		return "", fmt.Errorf("%w: %s (%s: %s)", ErrNoTorch, installHint, python, reason)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// RunTorch runs the reference script and parses its numbers; its peak RSS
// comes from the child's resource usage.
func RunTorch(ctx context.Context, o TorchOptions) (*Torch, error) {
	if o.Python == "" {
		o.Python = DefaultPython
	}
	if _, err := CheckTorch(ctx, o.Python); err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.Script); err != nil {
		return nil, fmt.Errorf("%w: no reference script (%v)", ErrNoTorch, err)
	}
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, o.Python, o.Script, "--batch", strconv.Itoa(o.Batch),
		"--threads", strconv.Itoa(o.Threads), "--iters", strconv.Itoa(o.Iters))
	cmd.Stdout = &stdout
	cmd.Stderr = o.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("bench: %s %s: %w\n%s", o.Python, o.Script, err, stdout.String())
	}
	t, err := ParseTorch(stdout.String())
	if err != nil {
		return nil, err
	}
	t.PeakRSSMiB = PeakRSSMiB(cmd.ProcessState)
	return t, nil
}
