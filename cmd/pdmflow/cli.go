package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// Help groups, in the order the help lists them.
const (
	groupJob    = "Job"
	groupNATS   = "NATS and the stream"
	groupS3     = "S3 and stores"
	groupOutput = "Output and monitoring"
	groupTuning = "Tuning"
	groupCommon = "Common"
)

var groupOrder = []string{groupJob, groupNATS, groupS3, groupOutput, groupTuning, groupCommon}

// flagGroups puts the flags that are not the job's in their help group;
// a flag may also carry an explicit "group" annotation (setGroup).
var flagGroups = map[string]string{
	"connect": groupNATS, "stream": groupNATS, "subject": groupNATS, "replicas": groupNATS,
	"stream-max-bytes": groupNATS, "stream-max-age": groupNATS, "consumer": groupNATS, "accept-loss": groupNATS,
	"store": groupS3,
	"out":   groupOutput, "metrics-addr": groupOutput, "ui-addr": groupOutput, "replace": groupOutput,
	"batch-pairs": groupTuning, "lag-budget": groupTuning, "compression": groupTuning, "ack-timeout": groupTuning,
	"workers": groupTuning, "row-group": groupTuning, "rows-per-file": groupTuning, "temp-dir": groupTuning,
	"tile": groupTuning, "producers": groupTuning, "device": groupTuning, "precision": groupTuning,
	"gpu-batches": groupTuning, "gpu-max-batch": groupTuning, "publish-every": groupTuning, "pool": groupTuning,
	"threads": groupCommon, "log-level": groupCommon, "log-json": groupCommon, "cpuprofile": groupCommon,
}

// setGroup puts flags of fs in a help group, whatever their names say.
func setGroup(fs *pflag.FlagSet, group string, names ...string) {
	for _, n := range names {
		if err := fs.SetAnnotation(n, "group", []string{group}); err != nil {
			panic(err) // a flag that does not exist: a bug in the command
		}
	}
}

// groupOf is a flag's help group.
func groupOf(f *pflag.Flag) string {
	if g := f.Annotations["group"]; len(g) > 0 {
		return g[0]
	}
	switch {
	case strings.HasPrefix(f.Name, "nats-"):
		return groupNATS
	case strings.HasPrefix(f.Name, "s3-"):
		return groupS3
	}
	if g, ok := flagGroups[f.Name]; ok {
		return g
	}
	return groupJob
}

// printUsage writes a command's help: its synopsis, then its flags by
// group, in the order they were defined, then the environment rule.
func printUsage(w io.Writer, fs *pflag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "Usage: pdmflow %s\n", synopsis)
	groups := map[string]*pflag.FlagSet{}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		g := groupOf(f)
		if groups[g] == nil {
			groups[g] = pflag.NewFlagSet(g, pflag.ContinueOnError)
			groups[g].SortFlags = false
		}
		groups[g].AddFlag(f)
	})
	for _, g := range groupOrder {
		if set := groups[g]; set != nil {
			fmt.Fprintf(w, "\n%s flags:\n%s", g, set.FlagUsagesWrapped(110))
		}
	}
	fmt.Fprintf(w, "\nEvery flag can also come from the environment: --flag-name as %sFLAG_NAME.\n", envPrefix)
}

// envPrefix is the one naming rule of the environment variables:
// PDMFLOW_ and the flag's name in upper case, "-" as "_".
const envPrefix = "PDMFLOW_"

func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// secretFlag reports whether a flag's value must never be echoed.
func secretFlag(name string) bool {
	for _, s := range []string{"password", "secret", "token", "session"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// applyEnv sets every flag that the command line did not set from its
// environment variable (envName), if that is set. A bad value is a usage
// error naming the variable (never the value of a secret).
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		env := envName(f.Name)
		v := getenv(env)
		if v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			if secretFlag(f.Name) {
				err = fmt.Errorf("%w: %s: not a valid value for --%s (the value is not shown: a secret)", errUsage, env, f.Name)
				return
			}
			err = fmt.Errorf("%w: %s=%q: %v (it sets --%s)", errUsage, env, v, serr, f.Name)
		}
	})
	return err
}

// renamedFlags are old flag names, by command, and their names now (the
// same name for the same thing in every command). The old names still
// work, with a note.
var renamedFlags = map[string]map[string]string{
	"train":   {"source": "nats-url"},
	"replay":  {"from-time": "since"},
	"eval":    {"gt": "hr"},
	"produce": {"hr-size": "hr-crop"},
}

// renamed rewrites the old flag names of command in args to their new
// names, and returns a note for each (logged once the log is set up).
func renamed(command string, args []string) ([]string, []string) {
	old := renamedFlags[command]
	if len(old) == 0 {
		return args, nil
	}
	var notes []string
	out := slices.Clone(args)
	for i, a := range out {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") {
			continue
		}
		if now, ok := old[name]; ok {
			notes = append(notes, fmt.Sprintf("--%s is now --%s (the old name still works)", name, now))
			out[i] = "--" + now
			if hasValue {
				out[i] += "=" + value
			}
		}
	}
	return out, notes
}

// missingFlags names, in one error, every required flag left empty.
func missingFlags(fs *pflag.FlagSet, required map[string]string) error {
	var missing []string
	for name, v := range required {
		if v == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// In the order the help lists them.
	pos := map[string]int{}
	i := 0
	if fs != nil {
		fs.VisitAll(func(f *pflag.Flag) { pos["--"+f.Name] = i; i++ })
	}
	slices.SortFunc(missing, func(a, b string) int {
		if pa, pb := pos[a], pos[b]; pa != pb {
			return pa - pb
		}
		return strings.Compare(a, b)
	})
	if len(missing) == 1 {
		return fmt.Errorf("%w: %s is required", errUsage, missing[0])
	}
	return fmt.Errorf("%w: %s and %s are required", errUsage, strings.Join(missing[:len(missing)-1], ", "), missing[len(missing)-1])
}
