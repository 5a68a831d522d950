package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"

	"github.com/pdmflow/pdmflow/internal/progress"
	"github.com/pdmflow/pdmflow/internal/synth"
	"github.com/pdmflow/pdmflow/trainer"
)

// The completion command refers to the command table, so it joins it
// here rather than in its literal.
func init() {
	commands["completion"] = command{"This program", "print a shell completion script: bash, zsh, fish or powershell", cmdCompletion}
}

// Shell completion is cobra's: the scripts it generates call `pdmflow
// __complete ARGS...` as the user types, and cobra answers from a command
// tree built here from each command's own flag set (describe). pdmflow's
// commands parse their flags themselves (parse); cobra only completes.

// describeCommand returns the flag set of command name, without running it.
func describeCommand(name string) (*flag.FlagSet, error) {
	c, ok := commands[name]
	if !ok {
		return nil, fmt.Errorf("no command %q", name)
	}
	var fs *flag.FlagSet
	e := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler), progress: progress.NewWriter(io.Discard), describe: &fs}
	err := runCommand(context.Background(), c, e, nil)
	if fs == nil {
		return nil, fmt.Errorf("command %s did not reach its flag parsing (%v)", name, err)
	}
	return fs, nil
}

// flagValues lists the values some flags take, for completion.
func flagValues() map[string][]string {
	return map[string][]string{
		"preset":      trainer.Presets(),
		"presets":     trainer.Presets(),
		"show":        trainer.Presets(),
		"dist":        synth.Names(),
		"format":      {formatArchive, formatBasicSR, formatParquet},
		"log-level":   {"debug", "info", "warn", "error"},
		"degradation": {"pdm", "bicubic", "gaussian"},
		"precision":   {"fp32", "tf32", "bf16"},
		"kind":        {"pdm", "disc", "edsr", "rrdb", "lpips"},
	}
}

// cobraTree is pdmflow's commands as a cobra tree, for completion only.
func cobraTree() *cobra.Command {
	root := &cobra.Command{
		Use: "pdmflow", Short: "learn real-world image degradations (PDM) and train super-resolution on them",
		SilenceErrors: true, SilenceUsage: true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	values := flagValues()
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		sub := &cobra.Command{Use: n, Short: commands[n].summary, Run: func(*cobra.Command, []string) {}}
		if n == "completion" {
			sub.ValidArgs = []string{"bash", "zsh", "fish", "powershell"}
		}
		if fs, err := describeCommand(n); err == nil {
			sub.Flags().AddFlagSet(fs)
			fs.VisitAll(func(f *flag.Flag) {
				if v, ok := values[f.Name]; ok {
					_ = sub.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions(v, cobra.ShellCompDirectiveNoFileComp))
				}
			})
		}
		root.AddCommand(sub)
	}
	return root
}

// complete answers a completion script's request (__complete ARGS...).
func complete(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := cobraTree()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "pdmflow: completion: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func cmdCompletion(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "completion", "completion bash|zsh|fish|powershell\n\n"+
		"Prints a completion script for the shell. Bash: source <(pdmflow completion bash), or write it to\n"+
		"/etc/bash_completion.d/pdmflow. Zsh: pdmflow completion zsh > \"${fpath[1]}/_pdmflow\". Fish:\n"+
		"pdmflow completion fish > ~/.config/fish/completions/pdmflow.fish. It completes commands, flags and\n"+
		"the values of --preset, --dist, --format and a few others; files elsewhere.")
	shell := fs.String("shell", "", "bash, zsh, fish or powershell (or give it as the argument)")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		*shell, args = args[0], args[1:]
	}
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	root := cobraTree()
	switch *shell {
	case "bash":
		return root.GenBashCompletionV2(e.stdout, true)
	case "zsh":
		return root.GenZshCompletion(e.stdout)
	case "fish":
		return root.GenFishCompletion(e.stdout, true)
	case "powershell":
		return root.GenPowerShellCompletionWithDesc(e.stdout)
	case "":
		return fmt.Errorf("%w: which shell? pdmflow completion bash|zsh|fish|powershell", errUsage)
	}
	return fmt.Errorf("%w: shell %q: bash, zsh, fish or powershell", errUsage, *shell)
}

// suggest names the commands close to an unknown one (" (did you mean
// X?)"), or "".
func suggest(typed string) string {
	var close []string
	for n := range commands {
		if strings.HasPrefix(n, typed) || editDistance(n, typed) <= 2 {
			close = append(close, n)
		}
	}
	if len(close) == 0 {
		return ""
	}
	slices.Sort(close)
	return " (did you mean " + strings.Join(close, " or ") + "?)"
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
