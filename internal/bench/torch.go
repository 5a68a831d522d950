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

	// On a GPU (pdm_ref.py --device cuda --w1-only, ParseTorchGPU): the
	// device as the script names it, the precision, and W1 at each batch
	// (the CPU fields above stay zero).
	Device    string       `json:"device,omitempty"`
	Precision string       `json:"precision,omitempty"`
	W1Batches []TorchBatch `json:"w1_batches,omitempty"`
}

// TorchBatch is the reference's W1 on a GPU at one batch size.
type TorchBatch struct {
	Batch       int     `json:"batch"`
	MsPerBatch  float64 `json:"ms_per_batch,omitempty"`
	PairsPerSec float64 `json:"pairs_per_s,omitempty"`
	Error       string  `json:"error,omitempty"` // e.g. "out of memory": no figures
}

// W1At is the reference's W1 on a GPU at batch n (nil when not run).
func (t *Torch) W1At(n int) *TorchBatch {
	for i := range t.W1Batches {
		if t.W1Batches[i].Batch == n {
			return &t.W1Batches[i]
		}
	}
	return nil
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

// torchW1GPU is pdm_ref.py's W1 line on a GPU: the device, the precision,
// the batch, then the timing or why there is none.
var torchW1GPU = regexp.MustCompile(`(?m)^W1 producer forward (cuda(?::[0-9]+)?) (fp32|tf32|bf16) batch ([0-9]+): (?:([0-9.]+) ms/batch = ([0-9.]+) pairs/s|(.*\S))[ \t\r]*$`)

// ParseTorchGPU reads pdm_ref.py's output with --device cuda --w1-only: a
// header line ("torch VERSION device=... precision=..."), then per batch
//
//	W1 producer forward cuda:0 fp32 batch 32: 1.234 ms/batch = 25931.2 pairs/s
//
// or, where that batch could not run, the reason after the colon
// ("W1 producer forward cuda:0 fp32 batch 4096: out of memory").
func ParseTorchGPU(out string) (*Torch, error) {
	t := &Torch{}
	if i := strings.Index(out, "torch "); i >= 0 {
		t.Header, _, _ = strings.Cut(out[i:], "\n")
	}
	for _, m := range torchW1GPU.FindAllStringSubmatch(out, -1) {
		if t.Device == "" {
			t.Device, t.Precision = m[1], m[2]
		} else if m[1] != t.Device || m[2] != t.Precision {
			return nil, fmt.Errorf("bench: reference line %q: another device or precision than %s %s", m[0], t.Device, t.Precision)
		}
		b := TorchBatch{Error: m[6]}
		var err error
		if b.Batch, err = strconv.Atoi(m[3]); err != nil || b.Batch < 1 {
			return nil, fmt.Errorf("bench: reference line %q: batch %q", m[0], m[3])
		}
		if b.Error == "" {
			var err1, err2 error
			b.MsPerBatch, err1 = strconv.ParseFloat(m[4], 64)
			b.PairsPerSec, err2 = strconv.ParseFloat(m[5], 64)
			if err := errors.Join(err1, err2); err != nil || b.PairsPerSec <= 0 {
				return nil, fmt.Errorf("bench: reference line %q: %v", m[0], err)
			}
		}
		if t.W1At(b.Batch) != nil {
			return nil, fmt.Errorf("bench: reference line %q: batch %d twice", m[0], b.Batch)
		}
		t.W1Batches = append(t.W1Batches, b)
	}
	if len(t.W1Batches) == 0 {
		return nil, fmt.Errorf("bench: no GPU \"W1 producer forward cuda...\" line in the reference's output:\n%s", out)
	}
	return t, nil
}

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

	// Device is "" or "cpu" for the CPU reference (W1 and W2 at Batch),
	// or "cuda" or "cuda:N" for W1 alone on that GPU at each of Batches
	// in Precision (fp32, tf32 or bf16), parsed by ParseTorchGPU.
	Device    string
	Precision string
	Batches   []int
}

// onGPU reports whether the options ask for the GPU reference.
func (o TorchOptions) onGPU() bool { return o.Device != "" && o.Device != "cpu" }

// CheckTorch reports whether python can import torch, and its version;
// the error wraps ErrNoTorch with the reason.
func CheckTorch(ctx context.Context, python string) (string, error) {
	out, err := pythonOutput(ctx, python, "import torch; print(torch.__version__)")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// pythonOutput runs code in python and returns its stdout; an error wraps
// ErrNoTorch with the last line of its stderr.
func pythonOutput(ctx context.Context, python, code string) (string, error) {
	if python == "" {
		python = DefaultPython
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, "-c", code)
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
	return stdout.String(), nil
}

// cudaHint is what to do when torch has no CUDA.
const cudaHint = "install a CUDA build of PyTorch (Debian's python3-torch is CPU-only) to get the GPU ratios"

// CheckTorchCUDA reports whether python's torch can use GPU device
// ("cuda" or "cuda:N"), and torch's version; the error wraps ErrNoTorch
// with the reason (no torch, a torch without CUDA, no such GPU).
func CheckTorchCUDA(ctx context.Context, python, device string) (string, error) {
	idx := 0
	if rest, ok := strings.CutPrefix(device, "cuda:"); ok {
		var err error
		if idx, err = strconv.Atoi(rest); err != nil || idx < 0 {
			return "", fmt.Errorf("bench: reference device %q: want cuda or cuda:N", device)
		}
	} else if device != "cuda" {
		return "", fmt.Errorf("bench: reference device %q: want cuda or cuda:N", device)
	}
	out, err := pythonOutput(ctx, python, "import torch; print(torch.__version__); print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return "", fmt.Errorf("%w: %s printed %q for its version and GPU count", ErrNoTorch, python, out)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return "", fmt.Errorf("%w: %s printed %q for its version and GPU count", ErrNoTorch, python, out)
	}
	if n == 0 {
		return "", fmt.Errorf("%w: torch %s in %s sees no CUDA GPU (torch.cuda.is_available() is False): %s", ErrNoTorch, f[0], python, cudaHint)
	}
	if idx >= n {
		return "", fmt.Errorf("%w: torch %s in %s sees %d CUDA GPUs, no %s", ErrNoTorch, f[0], python, n, device)
	}
	return f[0], nil
}

// RunTorch runs the reference script and parses its numbers; its peak RSS
// comes from the child's resource usage.
func RunTorch(ctx context.Context, o TorchOptions) (*Torch, error) {
	if o.Python == "" {
		o.Python = DefaultPython
	}
	if o.onGPU() {
		if len(o.Batches) == 0 {
			return nil, errors.New("bench: the GPU reference needs batch sizes")
		}
		if _, err := CheckTorchCUDA(ctx, o.Python, o.Device); err != nil {
			return nil, err
		}
	} else if _, err := CheckTorch(ctx, o.Python); err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.Script); err != nil {
		return nil, fmt.Errorf("%w: no reference script (%v)", ErrNoTorch, err)
	}
	args := []string{o.Script, "--batch", strconv.Itoa(o.Batch), "--threads", strconv.Itoa(o.Threads), "--iters", strconv.Itoa(o.Iters)}
	if o.onGPU() {
		bs := make([]string, len(o.Batches))
		for i, b := range o.Batches {
			bs[i] = strconv.Itoa(b)
		}
		prec := o.Precision
		if prec == "" {
			prec = "fp32"
		}
		args = []string{o.Script, "--device", o.Device, "--precision", prec, "--w1-only", "--batch", strings.Join(bs, ","),
			"--threads", strconv.Itoa(o.Threads), "--iters", strconv.Itoa(o.Iters)}
	}
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, o.Python, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = o.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("bench: %s %s: %w\n%s", o.Python, o.Script, err, stdout.String())
	}
	parse := ParseTorch
	if o.onGPU() {
		parse = ParseTorchGPU
	}
	t, err := parse(stdout.String())
	if err != nil {
		return nil, err
	}
	t.PeakRSSMiB = PeakRSSMiB(cmd.ProcessState)
	return t, nil
}
