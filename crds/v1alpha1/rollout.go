package v1alpha1

import (
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultBake is a rollout step's bake time when neither the step nor
// spec.bake sets one.
const DefaultBake = time.Minute

// Plan is the steps each wave of the rollout runs, each with its bake
// time set: a canary's spec.steps (default 10 and 50) and then 100, or
// blue-green's one switch to 100.
func (s *ModelRolloutSpec) Plan() []RolloutStep {
	var steps []RolloutStep
	switch {
	case s.Strategy == StrategyBlueGreen:
		steps = []RolloutStep{{Weight: 100}}
	case len(s.Steps) == 0:
		steps = []RolloutStep{{Weight: 10}, {Weight: 50}}
	default:
		steps = slices.Clone(s.Steps)
	}
	if steps[len(steps)-1].Weight < 100 {
		steps = append(steps, RolloutStep{Weight: 100})
	}
	bake := s.Bake.Duration
	if bake == 0 {
		bake = DefaultBake
	}
	for i := range steps {
		if steps[i].Bake == nil {
			steps[i].Bake = &metav1.Duration{Duration: bake}
		}
	}
	return steps
}
