// Package gradcheck compares analytic gradients with central differences in
// float64. It is used by the tests of kernels and model.
package gradcheck

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Param is one differentiable input: its values (perturbed in place and
// restored) and the analytic gradient of the loss with respect to them.
type Param struct {
	Name  string
	Value []float64
	Grad  []float64
}

// Options control a check. Zero values take the defaults.
type Options struct {
	Eps     float64 // step of the central difference (default 1e-6)
	Samples int     // elements checked per parameter; 0 or more than its size checks all
	Tol     float64 // largest accepted error (default 1e-6), see Check
	Seed    uint64  // picks the sampled elements
}

// Check perturbs elements of every parameter by +-Eps, evaluates loss, and
// compares (loss(+) - loss(-)) / 2Eps with the analytic gradient. The error
// of one element is |num - ana| / max(1, |num|, |ana|) and must not exceed
// Tol. It returns a description of the worst element, and an error naming
// the first parameter that fails.
func Check(loss func() float64, params []Param, o Options) (worst string, err error) {
	if o.Eps == 0 {
		o.Eps = 1e-6
	}
	if o.Tol == 0 {
		o.Tol = 1e-6
	}
	r := rand.New(rand.NewPCG(o.Seed, 99))
	worstErr := -1.0
	for _, p := range params {
		if len(p.Value) != len(p.Grad) {
			return "", fmt.Errorf("gradcheck: %s: %d values but %d gradients", p.Name, len(p.Value), len(p.Grad))
		}
		idx := make([]int, len(p.Value))
		for i := range idx {
			idx[i] = i
		}
		if o.Samples > 0 && o.Samples < len(idx) {
			r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			idx = idx[:o.Samples]
		}
		for _, i := range idx {
			v := p.Value[i]
			p.Value[i] = v + o.Eps
			lp := loss()
			p.Value[i] = v - o.Eps
			lm := loss()
			p.Value[i] = v
			num := (lp - lm) / (2 * o.Eps)
			ana := p.Grad[i]
			e := math.Abs(num-ana) / math.Max(1, math.Max(math.Abs(num), math.Abs(ana)))
			if math.IsNaN(e) {
				e = math.Inf(1)
			}
			if e > worstErr {
				worstErr = e
				worst = fmt.Sprintf("%s[%d]: numeric %.10g analytic %.10g (err %.3g)", p.Name, i, num, ana, e)
			}
			if e > o.Tol && err == nil {
				err = fmt.Errorf("gradcheck: %s[%d]: numeric %.10g, analytic %.10g, error %.3g > %.3g", p.Name, i, num, ana, e, o.Tol)
			}
		}
	}
	return worst, err
}

// Dot returns sum(a[i]*b[i]), the usual loss sum(y * r) with a fixed random r.
func Dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
