package loadgen

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The bounds on time here are loose on purpose: the tests run beside
// other builds on small shared machines.

func TestScheduleKeptWhenWorkIsSlow(t *testing.T) {
	t.Parallel()
	var inFlight, most atomic.Int64
	var mu sync.Mutex
	var results []Result
	rep, err := Run(context.Background(), Options{
		Phases:      Constant(100, time.Second),
		MaxLateness: time.Second,
		OnResult:    func(r Result) { mu.Lock(); results = append(results, r); mu.Unlock() },
	}, func(context.Context) (string, error) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(300 * time.Millisecond) // 30x the interval: a closed loop would send about 4
		inFlight.Add(-1)
		return "", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Offered != 100 || rep.Sent != 100 || rep.OK != 100 || rep.Dropped != 0 {
		t.Fatalf("offered %d sent %d ok %d dropped %d, want 100 100 100 0", rep.Offered, rep.Sent, rep.OK, rep.Dropped)
	}
	if most.Load() < 10 {
		t.Errorf("at most %d requests were in flight at once; open loop at 100/s with 300ms answers has about 30", most.Load())
	}
	if !rep.LoadOffered {
		t.Errorf("verdict %q, want offered", rep.Verdict())
	}
	if el := rep.Elapsed(); el < time.Second || el > 3*time.Second {
		t.Errorf("the schedule took %s, want 1s (slow answers must not stretch it)", el)
	}
	if len(results) != 100 {
		t.Fatalf("%d results, want 100", len(results))
	}
	for _, r := range results {
		// The schedule is computed from the start: request i is due at
		// start + i/rate exactly, however late earlier ones were.
		if want := rep.Start.Add(time.Duration(r.Seq) * 10 * time.Millisecond); !r.Due.Equal(want) {
			t.Fatalf("request %d due at +%s, want +%s", r.Seq, r.Due.Sub(rep.Start), want.Sub(rep.Start))
		}
		if late := r.Start.Sub(r.Due); late < 0 || late > rep.MaxLateness {
			t.Fatalf("request %d sent %s after its due time; the report's max lateness is %s", r.Seq, late, rep.MaxLateness)
		}
	}
}

func TestDropsCountedUnderInFlightCap(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var dropped atomic.Int64
	rep, err := Run(context.Background(), Options{
		Phases:      Constant(100, 500*time.Millisecond),
		MaxInFlight: 2,
		Timeout:     30 * time.Second,
		OnResult: func(r Result) {
			if r.Dropped && dropped.Add(1) == 48 {
				close(release) // every other request has been dropped
			}
		},
	}, func(ctx context.Context) (string, error) {
		select {
		case <-release:
			return "", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Offered != 50 || rep.Sent != 2 || rep.Dropped != 48 || rep.OK != 2 || dropped.Load() != 48 {
		t.Fatalf("offered %d sent %d dropped %d (%d reported) ok %d, want 50 2 48 (48) 2", rep.Offered, rep.Sent, rep.Dropped, dropped.Load(), rep.OK)
	}
	if rep.LoadOffered || !strings.Contains(rep.Shortfall, "sent 2 of 50") {
		t.Errorf("verdict %q, want short: the generator could not offer its load", rep.Verdict())
	}
	if len(rep.Latencies) != 2 {
		t.Errorf("%d latencies, want one per sent request (2); dropped ones have none", len(rep.Latencies))
	}
}

func TestOfferedAndAchievedArithmetic(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	rep, err := Run(context.Background(), Options{
		Phases:      []Phase{{Rate: 100, Duration: 200 * time.Millisecond}, {Rate: 400, Duration: 100 * time.Millisecond}},
		MaxLateness: time.Second,
	}, func(context.Context) (string, error) {
		if n.Add(1)%2 == 0 {
			return "even", nil
		}
		return "odd", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Phases; p[0].Offered != 20 || p[1].Offered != 40 || p[0].Sent != 20 || p[1].Sent != 40 {
		t.Fatalf("phases offered %d+%d sent %d+%d, want 20+40 and 20+40", p[0].Offered, p[1].Offered, p[0].Sent, p[1].Sent)
	}
	if rep.Offered != 60 || rep.Sent != 60 || rep.OK != 60 || rep.Labels["odd"] != 30 || rep.Labels["even"] != 30 {
		t.Fatalf("offered %d sent %d ok %d labels %v", rep.Offered, rep.Sent, rep.OK, rep.Labels)
	}
	if d := rep.Phases[1].Start.Sub(rep.Phases[0].Start); d != 200*time.Millisecond {
		t.Errorf("second phase began %s after the first, want 200ms on the schedule", d)
	}
	if got, want := rep.Phases[1].OfferedRate(), 400.0; got != want {
		t.Errorf("phase 1 offered %.1f/s, want %.1f", got, want)
	}
	if el := rep.Elapsed(); el < 300*time.Millisecond {
		t.Errorf("elapsed %s, want at least the 300ms scheduled", el)
	}
	if a, o := rep.AchievedRate(), rep.OfferedRate(); a != o || o <= 0 || o > 200 {
		t.Errorf("achieved %.1f/s, offered %.1f/s: want equal, 60 over at least 300ms", a, o)
	}
	if !rep.LoadOffered {
		t.Errorf("verdict %q, want offered", rep.Verdict())
	}
}

func TestStopsWithContextAndCountsWhatWasDue(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rep, err := Run(ctx, Options{Phases: Constant(200, 0), MaxLateness: time.Second}, func(context.Context) (string, error) { return "", nil })
	if err != nil {
		t.Fatal(err)
	}
	// Due times are start + i/200 for i = 0, 1, ...: those before End.
	want := int64(rep.Elapsed().Seconds()*200) + 1
	if rep.Offered < want-1 || rep.Offered > want || rep.Sent+rep.Dropped > rep.Offered || rep.Sent < rep.Offered-2 {
		t.Errorf("after %s at 200/s: offered %d sent %d dropped %d, want about %d offered and sent", rep.Elapsed(), rep.Offered, rep.Sent, rep.Dropped, want)
	}
}

func TestVerdictFailsWhenLate(t *testing.T) {
	t.Parallel()
	rep, err := Run(context.Background(), Options{Phases: Constant(100, 100*time.Millisecond), MaxLateness: time.Nanosecond},
		func(context.Context) (string, error) { return "", nil })
	if err != nil {
		t.Fatal(err)
	}
	if rep.LoadOffered || !strings.Contains(rep.Shortfall, "behind its schedule") {
		t.Errorf("verdict %q with a 1ns lateness bound, want short for lateness", rep.Verdict())
	}
}

func TestPercentilesIncludeFailures(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	rep, err := Run(context.Background(), Options{Phases: Constant(100, 200*time.Millisecond), MaxLateness: time.Second},
		func(context.Context) (string, error) {
			if n.Add(1)%2 == 0 {
				time.Sleep(150 * time.Millisecond) // the failures are the slow ones
				return "", errors.New("503")
			}
			return "", nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 10 || rep.OK != 10 || len(rep.Latencies) != 20 || len(rep.OKLatencies) != 10 {
		t.Fatalf("failed %d ok %d, %d latencies (%d ok), want 10 10 20 10", rep.Failed, rep.OK, len(rep.Latencies), len(rep.OKLatencies))
	}
	if rep.P99 < 150*time.Millisecond {
		t.Errorf("p99 over all %s, want the failures' 150ms or more", rep.P99)
	}
	if rep.OKP99 >= 150*time.Millisecond {
		t.Errorf("p99 over ok answers %s: the failures leaked in", rep.OKP99)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[99-i] = time.Duration(i+1) * time.Millisecond
	}
	for _, c := range []struct {
		ds   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{[]time.Duration{7}, 0.99, 7},
		{hundred, 0.5, 50 * time.Millisecond},
		{hundred, 0.95, 95 * time.Millisecond},
		{hundred, 0.99, 99 * time.Millisecond},
		{hundred, 1, 100 * time.Millisecond},
	} {
		if got := Percentile(c.ds, c.q); got != c.want {
			t.Errorf("Percentile(%d samples, %v) = %s, want %s", len(c.ds), c.q, got, c.want)
		}
	}
	if hundred[0] != 100*time.Millisecond {
		t.Error("Percentile sorted its input")
	}
}

func TestOptionsRejected(t *testing.T) {
	t.Parallel()
	do := func(context.Context) (string, error) { return "", nil }
	for name, o := range map[string]Options{
		"no phase":           {},
		"zero rate":          {Phases: Constant(0, time.Second)},
		"open middle phase":  {Phases: []Phase{{Rate: 1}, {Rate: 1, Duration: time.Second}}},
		"negative cap":       {Phases: Constant(1, time.Second), MaxInFlight: -1},
		"achieved above one": {Phases: Constant(1, time.Second), MinAchieved: 1.5},
	} {
		if _, err := Run(context.Background(), o, do); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Run(context.Background(), Options{Phases: Constant(1, time.Second)}, nil); err == nil {
		t.Error("nil request: no error")
	}
}
