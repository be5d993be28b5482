package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"meridian.dev/meridian/internal/loadgen"
)

// requestTimeout is when a user gives up on an answer: a request still
// unanswered then is a failure (the loadgen's per-request timeout).
const requestTimeout = 5 * time.Second

// maxInFlight only protects the machine: at the step rate and
// requestTimeout it is never reached unless the generator stalls, and a
// request that finds it full is dropped and counted as a miss.
const maxInFlight = 8192

// miss stands for a failed or dropped request among latencies: worse than
// any answer, so a p95 over all requests counts it as a miss, never as
// fast and never left out.
const miss = time.Duration(math.MaxInt64)

// offerStep offers base requests per second for *baseFor, then 5*base for
// *stepFor, open loop through internal/loadgen, and returns the report
// and every request's result.
func offerStep(url string, img []byte, base float64) (*loadgen.Report, []loadgen.Result, error) {
	var mu sync.Mutex
	results := make([]loadgen.Result, 0, int(base*(baseFor.Seconds()+5*stepFor.Seconds()))+16)
	rep, err := loadgen.Run(context.Background(), loadgen.Options{
		Phases:      []loadgen.Phase{{Rate: base, Duration: *baseFor}, {Rate: 5 * base, Duration: *stepFor}},
		MaxInFlight: maxInFlight,
		Timeout:     requestTimeout,
		OnResult:    func(r loadgen.Result) { mu.Lock(); results = append(results, r); mu.Unlock() },
	}, func(ctx context.Context) (string, error) { return "", infer(ctx, url, img) })
	return rep, results, err
}

// second is what the requests due in one second of the run got.
type second struct {
	t           int // seconds since the step; negative before it
	offered, ok int // requests due, and answered well
	p95         time.Duration
}

// good is the recovery criterion: p95 over every request due in the
// second, failed and dropped ones as misses, within target.
func (s second) good(target time.Duration) bool { return s.offered > 0 && s.p95 <= target }

func (s second) p95String() string {
	if s.p95 == miss {
		return "miss"
	}
	return fmt.Sprintf("%.1f", ms(s.p95))
}

// bySecond groups the results by the second they were due in, counted
// from the step (the start of phase 1).
func bySecond(rep *loadgen.Report, results []loadgen.Result) []second {
	step := rep.Phases[1].Start
	first := int(math.Floor(rep.Start.Sub(step).Seconds()))
	lat := map[int][]time.Duration{}
	ok := map[int]int{}
	for _, r := range results {
		t := int(math.Floor(r.Due.Sub(step).Seconds()))
		d := miss
		if r.OK {
			d = r.Latency
			ok[t]++
		}
		lat[t] = append(lat[t], d)
	}
	var out []second
	for t := first; t < int(math.Ceil(rep.Phases[1].Duration.Seconds())); t++ {
		out = append(out, second{t: t, offered: len(lat[t]), ok: ok[t], p95: loadgen.Percentile(lat[t], 0.95)})
	}
	return out
}

// recovery is the time from the step to the first of three seconds in a
// row whose p95, misses included, is within target.
func recovery(secs []second, target time.Duration) (time.Duration, bool) {
	for i, s := range secs {
		if s.t < 0 || i+3 > len(secs) {
			continue
		}
		if s.good(target) && secs[i+1].good(target) && secs[i+2].good(target) {
			return time.Duration(s.t) * time.Second, true
		}
	}
	return 0, false
}

// stepP95 is the p95 over every request due after the step, failed and
// dropped ones as misses, and how many of them missed.
func stepP95(results []loadgen.Result) (time.Duration, int, int) {
	var lat []time.Duration
	misses := 0
	for _, r := range results {
		if r.Phase != 1 {
			continue
		}
		if !r.OK {
			lat = append(lat, miss)
			misses++
			continue
		}
		lat = append(lat, r.Latency)
	}
	return loadgen.Percentile(lat, 0.95), misses, len(lat)
}

// failures counts the failed requests by kind: timed out, the status
// answered, or other (with the first such error).
func failures(results []loadgen.Result) string {
	kinds := map[string]int{}
	var other error
	for _, r := range results {
		switch {
		case r.OK || r.Dropped:
		case errors.Is(r.Err, context.DeadlineExceeded):
			kinds["timed out"]++
		case strings.HasPrefix(r.Err.Error(), "status "):
			kinds[r.Err.Error()]++
		default:
			kinds["other"]++
			other = cmp.Or(other, r.Err)
		}
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		out = append(out, fmt.Sprintf("%d %s", kinds[k], k))
	}
	if other != nil {
		out = append(out, "first other: "+other.Error())
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func durString(d time.Duration) string {
	if d == miss {
		return "miss"
	}
	return fmt.Sprintf("%.1fms", ms(d))
}

// sample is the ModelDeployment's replica counts at one moment.
type sample struct {
	at                    time.Time
	desired, ready, queue int32
}

// at is the last sample taken at or before t (the first if none).
func sampleAt(samples []sample, t time.Time) sample {
	i, _ := slices.BinarySearchFunc(samples, t, func(s sample, t time.Time) int { return s.at.Compare(t) })
	if i < len(samples) && samples[i].at.Equal(t) {
		return samples[i]
	}
	return samples[max(0, i-1)]
}
