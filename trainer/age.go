package trainer

import "github.com/pdmflow/pdmflow/consumer"

// observeAges records how old the weights that made a step's streamed pairs
// are, in steps: the step trains them at, minus the step its weights
// version was published at (versions this run did not publish are not
// counted). The mean goes to the progress line and the CSV, the oldest of
// the interval too, every pair to pdmflow_trainer_pair_age_steps.
func (t *Trainer) observeAges(pairs []consumer.Entry) {
	var sum float64
	n := 0
	for _, e := range pairs {
		s, ok := t.versionSteps[e.Pair.WeightsVersion]
		if !ok {
			continue
		}
		age := t.step - s
		sum += float64(age)
		n++
		t.ageMax = max(t.ageMax, age)
		t.m.PairAge.Observe(float64(age))
	}
	if n > 0 {
		t.acc.add("pair_age", sum/float64(n))
	}
}
