package official

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/pth"
)

// A Rule maps pdmflow parameter names onto a checkpoint's. Ours and
// Theirs are name patterns: literal text and placeholders. {n} matches a
// block index and {p} the last part of a name (weight, bias,
// running_mean, ...); in Theirs, {n+K} and {n*K} compute an index.
//
//	Rule{Ours: "sr.body.{n}.conv1.{p}", Theirs: "body.{n}.body.0.{p}"}
type Rule struct {
	Ours, Theirs string
	// Repeat > 0 repeats the checkpoint tensor Repeat times along its first
	// dimension (a one-channel output broadcast to R, G and B).
	Repeat int
}

// Table is how one network's parameters are found in a checkpoint.
type Table struct {
	Network string
	Rules   []Rule
	// Ignore matches checkpoint tensors that hold nothing pdmflow uses
	// (BatchNorm's num_batches_tracked). Any other tensor the rules do not
	// claim is an error: the checkpoint is of another network.
	Ignore []*regexp.Regexp
}

var (
	placeholder = regexp.MustCompile(`\{([np])(?:([+*])([0-9]+))?\}`)
	batchCount  = regexp.MustCompile(`\.num_batches_tracked$`)
)

type compiled struct {
	rule Rule
	re   *regexp.Regexp
	vars []string // the placeholders of Ours, in order
}

func compile(r Rule) (compiled, error) {
	var b strings.Builder
	b.WriteString("^")
	var vars []string
	last := 0
	for _, m := range placeholder.FindAllStringSubmatchIndex(r.Ours, -1) {
		b.WriteString(regexp.QuoteMeta(r.Ours[last:m[0]]))
		if m[4] >= 0 {
			return compiled{}, fmt.Errorf("official: rule %q: arithmetic belongs in Theirs", r.Ours)
		}
		name := r.Ours[m[2]:m[3]]
		if name == "n" {
			b.WriteString(`([0-9]+)`)
		} else {
			b.WriteString(`([a-z_]+)`)
		}
		vars = append(vars, name)
		last = m[1]
	}
	b.WriteString(regexp.QuoteMeta(r.Ours[last:]))
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return compiled{}, err
	}
	return compiled{r, re, vars}, nil
}

// theirs returns the checkpoint name of one of our names, or false.
func (c compiled) theirs(ours string) (string, bool, error) {
	m := c.re.FindStringSubmatch(ours)
	if m == nil {
		return "", false, nil
	}
	vals := map[string]string{}
	for i, v := range c.vars {
		vals[v] = m[i+1]
	}
	var err error
	out := placeholder.ReplaceAllStringFunc(c.rule.Theirs, func(ph string) string {
		p := placeholder.FindStringSubmatch(ph)
		v, ok := vals[p[1]]
		if !ok {
			err = fmt.Errorf("official: rule %q -> %q: %s is not in the pattern", c.rule.Ours, c.rule.Theirs, ph)
			return ""
		}
		if p[2] == "" {
			return v
		}
		n, _ := strconv.Atoi(v)
		k, _ := strconv.Atoi(p[3])
		if p[2] == "+" {
			return strconv.Itoa(n + k)
		}
		return strconv.Itoa(n * k)
	})
	return out, true, err
}

// source is a checkpoint's tensors, and which of them were used.
type source struct {
	tensors map[string]*pth.Tensor
	order   []string
	used    map[string]bool
}

func newSource(ts []pth.Tensor) *source {
	s := &source{tensors: map[string]*pth.Tensor{}, used: map[string]bool{}}
	for i := range ts {
		s.tensors[ts[i].Name] = &ts[i]
		s.order = append(s.order, ts[i].Name)
	}
	return s
}

// floats returns a checkpoint tensor as float32 with its shape, marking it
// used.
func (s *source) floats(name string) ([]float32, []int, error) {
	t, ok := s.tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("official: the checkpoint has no tensor %s", name)
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, nil, fmt.Errorf("official: %w", err)
	}
	s.used[name] = true
	return v, t.Shape, nil
}

// has reports whether the checkpoint has the tensor.
func (s *source) has(name string) bool { _, ok := s.tensors[name]; return ok }

// apply fills every parameter of the modules from the checkpoint by the
// table, then refuses checkpoint tensors that no rule claimed.
func (s *source) apply(t Table, modules ...*model.Module) error {
	var cs []compiled
	for _, r := range t.Rules {
		c, err := compile(r)
		if err != nil {
			return err
		}
		cs = append(cs, c)
	}
	for _, m := range modules {
		for _, p := range m.Params() {
			var name string
			var rule compiled
			found := false
			for _, c := range cs {
				n, ok, err := c.theirs(p.Name)
				if err != nil {
					return err
				}
				if ok {
					name, rule, found = n, c, true
					break
				}
			}
			if !found {
				return fmt.Errorf("official: %s table: no rule for pdmflow's %s", t.Network, p.Name)
			}
			v, shape, err := s.floats(name)
			if err != nil {
				return fmt.Errorf("%w (for %s: the checkpoint is not of this %s configuration)", err, p.Name, t.Network)
			}
			if r := rule.rule.Repeat; r > 0 {
				if len(shape) == 0 || shape[0] != 1 {
					return fmt.Errorf("official: %s has shape %v; repeating it for %s needs a first dimension of 1", name, shape, p.Name)
				}
				shape = append([]int{r}, shape[1:]...)
				rep := make([]float32, 0, r*len(v))
				for range r {
					rep = append(rep, v...)
				}
				v = rep
			}
			want := []int(p.Value.Shape())
			if !sameShape(shape, want) {
				return fmt.Errorf("official: %s has shape %v, pdmflow's %s needs %v", name, shape, p.Name, want)
			}
			copy(p.Value.Data().([]float32), v)
		}
	}
	var extra []string
	for _, n := range s.order {
		if s.used[n] {
			continue
		}
		ignored := false
		for _, re := range t.Ignore {
			if re.MatchString(n) {
				ignored = true
			}
		}
		if !ignored {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		if len(extra) > 6 {
			extra = append(extra[:6], fmt.Sprintf("... (%d in all)", len(extra)))
		}
		return fmt.Errorf("official: tensors %s of the checkpoint have no place in the %s network (is --kind right?)", strings.Join(extra, ", "), t.Network)
	}
	return nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
