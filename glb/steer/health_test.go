package steer

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 6, 5, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func TestHealthDefaults(t *testing.T) {
	t.Parallel()
	got := NewHealth(HealthConfig{}).Config()
	if got != DefaultHealthConfig() || got.FailureThreshold != 2 || got.HoldDown != 10*time.Second {
		t.Fatalf("defaults = %+v", got)
	}
	if got := NewHealth(HealthConfig{HoldDown: -1}).Config().HoldDown; got != 0 {
		t.Fatalf("negative hold-down = %v, want none", got)
	}
}

// Each case is a sequence of observations (+ ok, - failed) at whole
// seconds, then the verdicts expected at given seconds.
func TestHealthVerdicts(t *testing.T) {
	t.Parallel()
	type obs struct {
		at float64
		ok bool
	}
	type check struct {
		at      float64
		healthy bool
	}
	seq := func(start float64, pattern string) []obs {
		out := make([]obs, len(pattern))
		for i, c := range pattern {
			out[i] = obs{start + float64(i), c == '+'}
		}
		return out
	}
	tests := []struct {
		name   string
		cfg    HealthConfig
		obs    []obs
		checks []check
	}{
		{"never observed is up", HealthConfig{}, nil, []check{{0, true}}},
		{"one failure is forgiven", HealthConfig{}, seq(0, "+-+"), []check{{1.5, true}, {3, true}}},
		{"isolated failures never add up", HealthConfig{}, seq(0, "-+-+-+-+"), []check{{8, true}}},
		{"two in a row mark down", HealthConfig{}, seq(0, "+--"), []check{{1.5, true}, {2, false}, {100, false}}},
		{"threshold 3", HealthConfig{FailureThreshold: 3}, seq(0, "--"), []check{{2, true}}},
		{"threshold 3 reached", HealthConfig{FailureThreshold: 3}, seq(0, "---"), []check{{3, false}}},
		{"threshold 1", HealthConfig{FailureThreshold: 1}, seq(0, "-"), []check{{0, false}}},
		{"down stays down through the hold-down", HealthConfig{}, seq(0, "+--+++++++++++"),
			[]check{{2.5, false}, {12.9, false}, {13, true}}},
		{"up exactly after hold-down from first success", HealthConfig{HoldDown: 5 * time.Second}, seq(0, "+--+"),
			[]check{{7.9, false}, {8, true}}},
		{"a failure in the hold-down starts it over", HealthConfig{HoldDown: 5 * time.Second}, seq(0, "+--+++-+++++++"),
			[]check{{8, false}, {11, false}, {11.9, false}, {12, true}}},
		{"flapping never comes up", HealthConfig{}, seq(0, "+--+-+-+-+-+-+-+-+-+-+-+-+-"),
			[]check{{25, false}, {30, false}}},
		{"no hold-down: up on first success", HealthConfig{HoldDown: -1}, seq(0, "--+"),
			[]check{{1, false}, {2, true}}},
		{"success without later observations still counts", HealthConfig{}, seq(0, "+--+"),
			[]check{{12.9, false}, {13, true}}},
		{"never up yet: up on its first success, no hold-down", HealthConfig{}, seq(0, "---+"),
			[]check{{2.5, false}, {3, true}}},
		{"down again after recovery needs threshold again", HealthConfig{HoldDown: time.Second}, seq(0, "--++-+-"),
			[]check{{3, true}, {4, true}, {5, true}, {6, true}}},
		{"and then two in a row", HealthConfig{HoldDown: time.Second}, seq(0, "--++--"),
			[]check{{4, true}, {5, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := NewHealth(tt.cfg)
			// Interleave observations and checks in time order.
			i := 0
			for _, c := range tt.checks {
				for i < len(tt.obs) && tt.obs[i].at <= c.at {
					h.Observe("euw1", tt.obs[i].ok, at(tt.obs[i].at))
					i++
				}
				if got := h.Healthy("euw1", at(c.at)); got != c.healthy {
					t.Fatalf("Healthy at %vs = %v, want %v", c.at, got, c.healthy)
				}
			}
		})
	}
}

func TestHealthTargetsAreSeparate(t *testing.T) {
	t.Parallel()
	h := NewHealth(HealthConfig{})
	h.Observe("a", false, at(0))
	h.Observe("a", false, at(1))
	h.Observe("b", true, at(1))
	if h.Healthy("a", at(2)) || !h.Healthy("b", at(2)) || !h.Healthy("c", at(2)) {
		t.Fatal("one target's failures leaked into another")
	}
	h.Forget("a")
	if !h.Healthy("a", at(2)) {
		t.Fatal("a forgotten target is unknown, hence up")
	}
}

// TestHealthConcurrent checks that concurrent observers lose no
// observation and see each target's verdicts as if alone:
//
//   - each goroutine has a target of its own, with a mixed stream of
//     observations, and must see exactly the verdicts a tracker fed the
//     same stream by one goroutine gives;
//   - all goroutines report failures of one shared target whose threshold
//     is exactly the sum of their failures: it must be down at the end (a
//     lost failure would leave it up) while its twin, whose threshold is
//     one more, must still be up (a failure counted twice would take it
//     down);
//   - all goroutines report successes of another shared target, which
//     must never be down.
func TestHealthConcurrent(t *testing.T) {
	t.Parallel()
	const (
		goroutines = 8
		rounds     = 1000
	)
	cfg := HealthConfig{HoldDown: 3 * time.Second}
	// pattern is goroutine g's own stream, about 30% failures at
	// pseudo-random places, so its target goes down, sits out hold-downs
	// and comes back some sixty times.
	pattern := func(g, i int) bool { return uint32(i*2654435761+g*40503)>>20%10 > 2 }
	expected := func(g int) []bool {
		ref := NewHealth(cfg)
		out := make([]bool, rounds)
		for i := range rounds {
			ref.Observe("own", pattern(g, i), at(float64(i)))
			out[i] = ref.Healthy("own", at(float64(i)))
		}
		return out
	}

	h := NewHealth(cfg)
	total := goroutines * rounds
	seen := make([][]bool, goroutines)
	upDown := make([]int, goroutines) // times the always-ok target was down
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			own := fmt.Sprintf("own-%d", g)
			for i := range rounds {
				now := at(float64(i))
				h.Observe(own, pattern(g, i), now)
				seen[g] = append(seen[g], h.Healthy(own, now))
				h.ObserveWith("failing", false, now, total)
				h.ObserveWith("failing-twin", false, now, total+1)
				h.Observe("always-ok", true, now)
				if !h.Healthy("always-ok", now) {
					upDown[g]++
				}
			}
		})
	}
	wg.Wait()

	for g := range goroutines {
		want := expected(g)
		for i := range rounds {
			if seen[g][i] != want[i] {
				t.Fatalf("goroutine %d, observation %d: Healthy = %v, want %v as with one observer", g, i, seen[g][i], want[i])
			}
		}
		if upDown[g] != 0 {
			t.Errorf("goroutine %d saw a target that only ever succeeded down %d times", g, upDown[g])
		}
	}
	end := at(rounds)
	if h.Healthy("failing", end) {
		t.Errorf("%d failures against a threshold of %d left the target up: a failure was lost", total, total)
	}
	if !h.Healthy("failing-twin", end) {
		t.Errorf("%d failures against a threshold of %d took the target down: a failure was counted twice", total, total+1)
	}
}
