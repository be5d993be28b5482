package hub

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

func TestJudge(t *testing.T) {
	a := v1.RolloutAnalysis{MaxErrorRateIncrease: "0.02", MaxLatencyRatio: "1.5", LatencyTolerance: metav1.Duration{Duration: 20 * time.Millisecond}, MinRequests: 20, MaxPredictionShift: "0.1"}
	ms := time.Millisecond
	for _, c := range []struct {
		name          string
		fresh, stable counts
		baked         bool
		want          result
		says          string
	}{
		{"too few requests", counts{requests: 19}, counts{requests: 500}, true, resultInconclusive, "19 of the 20"},
		{"all failing fails before the bake ends", counts{requests: 20, errors: 20}, counts{requests: 200}, false, resultFailed, "error rate 100.0%"},
		{"as many errors as stable", counts{requests: 100, errors: 5}, counts{requests: 900, errors: 45}, true, resultPassed, ""},
		{"three points more errors", counts{requests: 100, errors: 8}, counts{requests: 900, errors: 45}, true, resultFailed, "over the stable 5.0%"},
		{"slow, judged at the end of the bake", counts{requests: 100, p95: 90 * ms}, counts{requests: 900, p95: 40 * ms}, true, resultFailed, "p95 90ms"},
		{"slow, not judged while baking", counts{requests: 100, p95: 90 * ms}, counts{requests: 900, p95: 40 * ms}, false, resultPassed, ""},
		{"twice as slow but within the tolerance", counts{requests: 100, p95: 4 * ms}, counts{requests: 900, p95: 2 * ms}, true, resultPassed, ""},
		{"no stable traffic: errors against zero", counts{requests: 100, errors: 3}, counts{}, true, resultFailed, ""},
		{"no stable traffic, no errors", counts{requests: 100, p95: time.Second}, counts{}, true, resultPassed, ""},
		{"predictions drifted", counts{requests: 100, predictions: map[string]int64{"NEGATIVE": 100}},
			counts{requests: 100, predictions: map[string]int64{"POSITIVE": 90, "NEGATIVE": 10}}, true, resultFailed, `"NEGATIVE" moved 90.0 points`},
		{"predictions within the shift", counts{requests: 100, predictions: map[string]int64{"POSITIVE": 85, "NEGATIVE": 15}},
			counts{requests: 100, predictions: map[string]int64{"POSITIVE": 90, "NEGATIVE": 10}}, true, resultPassed, ""},
		{"drift not judged while baking", counts{requests: 100, predictions: map[string]int64{"NEGATIVE": 100}},
			counts{requests: 100, predictions: map[string]int64{"POSITIVE": 100}}, false, resultPassed, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := judge(a, c.fresh, c.stable, c.baked)
			if v.result != c.want || !strings.Contains(v.message, c.says) {
				t.Fatalf("got %s %q, want %s containing %q", v.result, v.message, c.want, c.says)
			}
		})
	}
}

func TestWavesAndTraffic(t *testing.T) {
	placed := []v1.RegionName{"us-east", "eu-west", "ap-south"}
	waves := resolveWaves([]v1.RolloutWave{{Regions: []v1.RegionName{"eu-west", "mars"}}}, placed)
	if len(waves) != 2 || len(waves[0].Regions) != 1 || waves[0].Regions[0] != "eu-west" || len(waves[1].Regions) != 2 {
		t.Fatalf("waves %v: want [eu-west] then the rest", waves)
	}
	ro := &v1.ModelRollout{Spec: v1.ModelRolloutSpec{Version: 2}, Status: v1.ModelRolloutStatus{StableVersion: 1, Waves: waves, Wave: 1, Step: 0}}
	weights := func(back bool) map[v1.RegionName]map[int64]int32 {
		out := map[v1.RegionName]map[int64]int32{}
		for _, tr := range trafficFor(ro, back) {
			out[tr.Region] = map[int64]int32{}
			var sum int32
			for _, v := range tr.Versions {
				out[tr.Region][v.Version] = v.Weight
				sum += v.Weight
			}
			if sum != 100 {
				t.Fatalf("%s weights add up to %d", tr.Region, sum)
			}
		}
		return out
	}
	w := weights(false)
	if w["eu-west"][2] != 100 || w["eu-west"][1] != 0 || w["us-east"][2] != 10 || w["ap-south"][1] != 90 {
		t.Fatalf("wave 1 step 0 of a default canary: %v", w)
	}
	ro.Status.Step = 2
	if w := weights(false); w["us-east"][2] != 100 {
		t.Fatalf("the last step is 100: %v", w)
	}
	ro.Status.Wave = 0
	if back := weights(true); len(back["us-east"]) != 1 || back["us-east"][1] != 100 || back["eu-west"][2] != 0 || len(back["eu-west"]) != 2 {
		t.Fatalf("rolling back in wave 0: %v, want eu-west's new version warm at 0 and the later wave on the stable version alone", back)
	}
	ro.Status.Wave = 1
	back := weights(true)
	for region, vs := range back {
		if vs[1] != 100 || vs[2] != 0 {
			t.Fatalf("rolling back, %s has %v: want stable at 100, new warm at 0", region, vs)
		}
	}
	ro.Spec.Strategy = v1.StrategyBlueGreen
	ro.Status.Step = 0
	if w := weights(false); w["us-east"][2] != 100 || w["eu-west"][2] != 100 {
		t.Fatalf("blue-green switches a wave at once: %v", w)
	}
	ro.Status.Wave = 0
	if w := weights(false); len(w["us-east"]) != 1 || w["us-east"][1] != 100 {
		t.Fatalf("a later wave stays on the stable version alone: %v", w)
	}
}

func TestDeltaRestartsWithTheAgent(t *testing.T) {
	t0, t1 := metav1.NewTime(time.Unix(100, 0)), metav1.NewTime(time.Unix(200, 0))
	base := map[string]v1.VersionStatus{"a/2": {Version: 2, Requests: 50, Errors: 5, Since: t0}, "b/2": {Version: 2, Requests: 70, Since: t0}}
	now := map[string]v1.VersionStatus{"a/2": {Version: 2, Requests: 80, Errors: 6, Since: t0}, "b/2": {Version: 2, Requests: 10, Errors: 1, Since: t1}, "a/1": {Version: 1, Requests: 999}}
	base["a/2"] = v1.VersionStatus{Version: 2, Requests: 50, Errors: 5, Since: t0, Predictions: map[string]int64{"POSITIVE": 40}}
	now["a/2"] = v1.VersionStatus{Version: 2, Requests: 80, Errors: 6, Since: t0, Predictions: map[string]int64{"POSITIVE": 60, "NEGATIVE": 3}}
	if d := delta(base, now, 2); d.requests != 40 || d.errors != 2 || d.predictions["POSITIVE"] != 20 || d.predictions["NEGATIVE"] != 3 {
		t.Fatalf("delta %+v: want 30+10 requests, 1+1 errors", d)
	}
}
