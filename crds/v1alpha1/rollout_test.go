package v1alpha1

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRolloutPlan(t *testing.T) {
	minute, tenSeconds := &metav1.Duration{Duration: time.Minute}, &metav1.Duration{Duration: 10 * time.Second}
	for _, c := range []struct {
		name string
		spec ModelRolloutSpec
		want []RolloutStep
	}{
		{"default canary", ModelRolloutSpec{}, []RolloutStep{{10, minute}, {50, minute}, {100, minute}}},
		{"steps then 100, a step's own bake", ModelRolloutSpec{Steps: []RolloutStep{{Weight: 20, Bake: tenSeconds}}, Bake: metav1.Duration{Duration: time.Minute}},
			[]RolloutStep{{20, tenSeconds}, {100, minute}}},
		{"steps ending at 100", ModelRolloutSpec{Steps: []RolloutStep{{Weight: 30}, {Weight: 100}}}, []RolloutStep{{30, minute}, {100, minute}}},
		{"blue-green", ModelRolloutSpec{Strategy: StrategyBlueGreen, Bake: metav1.Duration{Duration: 10 * time.Second}}, []RolloutStep{{100, tenSeconds}}},
	} {
		got := c.spec.Plan()
		if len(got) != len(c.want) {
			t.Fatalf("%s: %d steps, want %d", c.name, len(got), len(c.want))
		}
		for i := range got {
			if got[i].Weight != c.want[i].Weight || got[i].Bake.Duration != c.want[i].Bake.Duration {
				t.Errorf("%s: step %d is %d%% for %s, want %d%% for %s", c.name, i, got[i].Weight, got[i].Bake.Duration, c.want[i].Weight, c.want[i].Bake.Duration)
			}
		}
	}
	spec := ModelRolloutSpec{Steps: []RolloutStep{{Weight: 20}}}
	_ = spec.Plan()
	if spec.Steps[0].Bake != nil || len(spec.Steps) != 1 {
		t.Errorf("Plan changed the spec: %+v", spec.Steps)
	}
}
