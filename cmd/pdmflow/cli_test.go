package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	flag "github.com/spf13/pflag"
)

// TestEveryCommandDescribes: every command reaches its flag parsing when
// described (completion and these tests rely on it), every flag says what
// it is for, and no command defines a flag whose environment variable
// another flag of it would share.
func TestEveryCommandDescribes(t *testing.T) {
	for name := range commands {
		fs, err := describeCommand(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		envs := map[string]string{}
		fs.VisitAll(func(f *flag.Flag) {
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("%s --%s has no usage text", name, f.Name)
			}
			if other, dup := envs[envName(f.Name)]; dup {
				t.Errorf("%s: --%s and --%s share %s", name, f.Name, other, envName(f.Name))
			}
			envs[envName(f.Name)] = f.Name
		})
	}
}

// TestGNUStyleFlags: --flag value, --flag=value and the Go flag package's
// -flag all work; positional arguments are refused; --version works at
// the top level.
func TestGNUStyleFlags(t *testing.T) {
	for _, args := range [][]string{
		{"presets", "--show", "cpu-small"},
		{"presets", "--show=cpu-small"},
		{"presets", "-show", "cpu-small"},
		{"presets", "--log-level", "warn", "--show", "cpu-small"},
		{"presets", "--show", "cpu-small", "--log-level=warn"},
	} {
		code, stdout, stderr := pdmflow(t, args...)
		if code != exitOK || !strings.Contains(stdout, "name: cpu-small") {
			t.Errorf("%q: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}
	code, _, stderr := pdmflow(t, "presets", "cpu-small")
	if code != exitUsage || !strings.Contains(stderr, `unexpected arguments "cpu-small"`) {
		t.Errorf("a positional argument: exit %d, %s", code, stderr)
	}
	code, _, stderr = pdmflow(t, "presets", "--shwo", "x")
	if code != exitUsage || !strings.Contains(stderr, "unknown flag: --shwo") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("an unknown flag: exit %d, want one line naming it:\n%s", code, stderr)
	}
	code, stdout, _ := pdmflow(t, "--version")
	if code != exitOK || !strings.HasPrefix(stdout, "pdmflow "+version) {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
	code, _, stderr = pdmflow(t, "exprot")
	if code != exitUsage || !strings.Contains(stderr, "did you mean export") {
		t.Errorf("a misspelt command: exit %d, %s", code, stderr)
	}
}

// TestHelpGroupsAndOnlyUsedFlags: a command's help groups its flags by
// purpose and lists only the flags it uses.
func TestHelpGroupsAndOnlyUsedFlags(t *testing.T) {
	code, stdout, _ := pdmflow(t, "export", "--help")
	if code != exitOK {
		t.Fatalf("export --help: exit %d", code)
	}
	wantOutput(t, "export --help", stdout, "Job flags:\n      --run", "NATS and the stream flags:\n      --nats-url", "S3 and stores flags:\n      --s3-endpoint",
		"Output and monitoring flags:\n", "Tuning flags:\n", "Common flags:\n      --threads", "PDMFLOW_FLAG_NAME")
	order := []string{"Job flags:", "NATS and the stream flags:", "S3 and stores flags:", "Output and monitoring flags:", "Tuning flags:", "Common flags:"}
	for i := 1; i < len(order); i++ {
		if strings.Index(stdout, order[i-1]) > strings.Index(stdout, order[i]) {
			t.Errorf("export --help lists %q after %q", order[i-1], order[i])
		}
	}
	for cmd, absent := range map[string][]string{
		"export":  {"--metrics-addr", "--ui-addr"},
		"inspect": {"--metrics-addr"},
		"replay":  {"--metrics-addr"},
		"eval":    {"--nats-url", "--s3-endpoint", "--metrics-addr"},
		"sr":      {"--nats-url", "--run"},
	} {
		_, help, _ := pdmflow(t, cmd, "--help")
		for _, f := range absent {
			if strings.Contains(help, f+" ") {
				t.Errorf("%s --help lists %s, which it does not use", cmd, f)
			}
		}
	}
	for _, cmd := range []string{"produce", "train"} {
		if _, help, _ := pdmflow(t, cmd, "--help"); !strings.Contains(help, "--metrics-addr") {
			t.Errorf("%s --help lacks --metrics-addr", cmd)
		}
	}
}

// TestEveryFlagFromTheEnvironment: PDMFLOW_FLAG_NAME sets --flag-name when
// the command line does not; the command line wins; a bad value names the
// variable, and never shows a secret's value.
func TestEveryFlagFromTheEnvironment(t *testing.T) {
	t.Setenv("PDMFLOW_SHOW", "cpu-small")
	if code, stdout, stderr := pdmflow(t, "presets"); code != exitOK || !strings.Contains(stdout, "name: cpu-small") {
		t.Errorf("PDMFLOW_SHOW: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := pdmflow(t, "presets", "--show", "2018Track4"); code != exitOK || !strings.Contains(stdout, "name: 2018Track4") {
		t.Errorf("the command line should win over PDMFLOW_SHOW: exit %d\n%s", code, stdout)
	}
	t.Setenv("PDMFLOW_SHOW", "")
	t.Setenv("PDMFLOW_THREADS", "zero")
	code, _, stderr := pdmflow(t, "presets")
	if code != exitUsage || !strings.Contains(stderr, `PDMFLOW_THREADS="zero"`) || !strings.Contains(stderr, "--threads") {
		t.Errorf("a bad PDMFLOW_THREADS: exit %d, %s", code, stderr)
	}
	t.Setenv("PDMFLOW_THREADS", "")
	if err := applyEnv(secretFlagSet(), func(string) string { return "s3cr3t" }); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("a bad secret: %v", err)
	}
}

// secretFlagSet has one secret flag that refuses every value.
func secretFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var n int
	fs.Var(intFlag{p: &n, min: 1}, "nats-password", "a secret that only takes numbers (for the test)")
	return fs
}

// TestMissingRequiredFlagsInOneError: every missing required flag is
// named at once.
func TestMissingRequiredFlagsInOneError(t *testing.T) {
	code, _, stderr := pdmflow(t, "produce")
	if code != exitUsage || !strings.Contains(stderr, "--hr and --run are required") {
		t.Errorf("produce without flags: exit %d, %s", code, stderr)
	}
	code, _, stderr = pdmflow(t, "degrade")
	if code != exitUsage || !strings.Contains(stderr, "are required") || !strings.Contains(stderr, "--weights") || !strings.Contains(stderr, "--in") {
		t.Errorf("degrade without flags: exit %d, %s", code, stderr)
	}
}

// TestRenamedFlagsStillWork: the old names of renamed flags work, with a
// note naming the new one.
func TestRenamedFlagsStillWork(t *testing.T) {
	for cmd, names := range renamedFlags {
		fs, err := describeCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		for old, now := range names {
			if fs.Lookup(now) == nil || fs.Lookup(old) != nil {
				t.Errorf("%s: --%s should be renamed --%s", cmd, old, now)
			}
		}
	}
	code, _, stderr := pdmflow(t, "train", "--source", "nats://127.0.0.1:1", "--out", "x")
	if code != exitUsage || !strings.Contains(stderr, "--source is now --nats-url") || !strings.Contains(stderr, "--nats-url needs --run") {
		t.Errorf("train --source: exit %d, %s", code, stderr)
	}
}

// TestCompletion: the scripts are generated, and the requests they make
// are answered with commands, flags and flag values.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		code, stdout, stderr := pdmflow(t, "completion", sh)
		if code != exitOK || !strings.Contains(stdout, "__complete") {
			t.Errorf("completion %s: exit %d, %d bytes\n%s", sh, code, len(stdout), stderr)
		}
	}
	if code, _, _ := pdmflow(t, "completion", "tcsh"); code != exitUsage {
		t.Errorf("completion tcsh: exit %d, want %d", code, exitUsage)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "exp"}, []string{"export"}},
		{[]string{"__complete", "export", "--fo"}, []string{"--format"}},
		{[]string{"__complete", "export", "--format", ""}, []string{"basicsr", "parquet"}},
		{[]string{"__complete", "run", "--preset", ""}, []string{"cpu-small", "2018Track4"}},
		{[]string{"__complete", "run", "--dist", ""}, []string{"default", "motion"}},
	} {
		code, stdout, stderr := pdmflow(t, tc.args...)
		if code != exitOK {
			t.Errorf("%q: exit %d\n%s", tc.args, code, stderr)
		}
		for _, w := range tc.want {
			if !slices.ContainsFunc(strings.Split(stdout, "\n"), func(l string) bool { return strings.HasPrefix(l, w) }) {
				t.Errorf("%q: no %q in\n%s", tc.args, w, stdout)
			}
		}
	}
}

// TestDocumentedCommands: every pdmflow command line in the README and
// docs/ names a command that exists and flags that command has (under
// their current names), and its --help works.
func TestDocumentedCommands(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	files = append(files, filepath.Join("..", "..", "README.md"))
	start := regexp.MustCompile(`(^|[\s;&|(])(bin/pdmflow(-cuda)?|pdmflow) ([a-z][a-z-]*)\b(.*)$`)
	flagRE := regexp.MustCompile(`(^|\s)--([a-z0-9][a-z0-9-]*)`)
	seen, lines := map[string]bool{}, 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inBlock := false
		var cont string
		for i, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "```") {
				inBlock = !inBlock
				continue
			}
			if !inBlock {
				continue
			}
			if cont != "" {
				l = cont + " " + strings.TrimSpace(l)
				cont = ""
			}
			if strings.HasSuffix(strings.TrimSpace(l), `\`) {
				cont = strings.TrimSuffix(strings.TrimSpace(l), `\`)
				continue
			}
			code, _, _ := strings.Cut(l, " #") // a comment
			m := start.FindStringSubmatch(code)
			if m == nil {
				continue
			}
			cmd, rest := m[4], m[5]
			where := f + ":" + strconv.Itoa(i+1)
			if _, ok := commands[cmd]; !ok {
				t.Errorf("%s: pdmflow %s: no such command", where, cmd)
				continue
			}
			lines++
			fs, err := describeCommand(cmd)
			if err != nil {
				t.Fatal(err)
			}
			for _, fm := range flagRE.FindAllStringSubmatch(rest, -1) {
				if name := fm[2]; fs.Lookup(name) == nil && name != "help" {
					t.Errorf("%s: pdmflow %s has no --%s", where, cmd, name)
				}
			}
			if !seen[cmd] {
				seen[cmd] = true
				if code, _, stderr := pdmflow(t, cmd, "--help"); code != exitOK {
					t.Errorf("%s: pdmflow %s --help: exit %d\n%s", where, cmd, code, stderr)
				}
			}
		}
	}
	if lines < 30 {
		t.Errorf("found only %d documented command lines: is the pattern still right?", lines)
	}
}
