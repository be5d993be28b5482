package main

import (
	"testing"
	"time"

	"meridian.dev/meridian/internal/loadgen"
)

// A fake run: 2s at the base, 4s after the step, 10 requests per second.
// Second 0 after the step has one failure in ten (p95 a miss), second 1
// one answer slow; seconds 2 and 3 are good.
func TestSecondsCountMisses(t *testing.T) {
	start := time.Unix(1000, 0)
	step := start.Add(2 * time.Second)
	rep := &loadgen.Report{Start: start, End: step.Add(4 * time.Second), Phases: []loadgen.PhaseReport{
		{Start: start, Duration: 2 * time.Second}, {Start: step, Duration: 4 * time.Second}}}
	var results []loadgen.Result
	for i := range 60 {
		due := start.Add(time.Duration(i) * 100 * time.Millisecond)
		r := loadgen.Result{Due: due, OK: true, Latency: 5 * time.Millisecond}
		if !due.Before(step) {
			r.Phase = 1
		}
		switch sec := int(due.Sub(step) / time.Second); {
		case due.Before(step):
		case sec == 0 && i%10 == 3:
			r.OK, r.Latency = false, time.Millisecond // a fast 503 is still a miss
		case sec == 1 && i%10 == 5:
			r.Latency = time.Second
		}
		results = append(results, r)
	}
	secs := bySecond(rep, results)
	if len(secs) != 6 || secs[0].t != -2 || secs[2].t != 0 {
		t.Fatalf("seconds %+v, want -2..3", secs)
	}
	if s := secs[2]; s.offered != 10 || s.ok != 9 || s.p95 != miss {
		t.Errorf("second 0: %+v, want 10 offered, 9 ok, p95 a miss", s)
	}
	if s := secs[3]; s.p95 != time.Second {
		t.Errorf("second 1: p95 %s, want the slow answer's 1s", s.p95)
	}
	if _, ok := recovery(secs, 25*time.Millisecond); ok {
		t.Error("recovered with only two good seconds after the step")
	}
	if d, ok := recovery(secs, 2*time.Second); !ok || d != time.Second {
		t.Errorf("recovery %s %v with a 2s target, want 1s (seconds 1, 2, 3 good)", d, ok)
	}
	if p95, misses, n := stepP95(results); p95 != 5*time.Millisecond || misses != 1 || n != 40 {
		t.Errorf("step p95 %s, %d misses of %d; want 5ms, 1 of 40", durString(p95), misses, n)
	}
	results[55].OK, results[57].OK = false, false // 3 misses of 40: more than 5 %
	if p95, misses, _ := stepP95(results); p95 != miss || misses != 3 {
		t.Errorf("step p95 %s with %d misses of 40, want a miss", durString(p95), misses)
	}
}
