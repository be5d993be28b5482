package loadgen

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Report is what a Run offered and what came of it.
type Report struct {
	// Start is when the schedule began; End when it stopped (the last
	// phase's end, later if the last sends were late, or when the context
	// was done).
	Start, End time.Time
	// Phases has the counts of each phase, in Options.Phases order.
	Phases []PhaseReport
	// Offered counts the requests due before End; Sent those sent; OK and
	// Failed how the sent ones ended; Dropped those not sent for the
	// in-flight cap. Offered - Sent - Dropped were due but never sent
	// because the generator fell behind.
	Offered, Sent, OK, Failed, Dropped int64
	// MaxLateness is the largest lateness of a send behind its schedule.
	MaxLateness time.Duration
	// Latencies holds every sent request's latency, failed ones included;
	// OKLatencies only those of the requests that answered well.
	Latencies, OKLatencies []time.Duration
	// P50 and P99 are over Latencies; OKP50 and OKP99 over OKLatencies.
	P50, P99, OKP50, OKP99 time.Duration
	// Labels counts the good answers by the label their request returned.
	Labels map[string]int64
	// LoadOffered is the verdict: every phase sent at least MinAchieved of
	// its offered requests and no send was later than MaxLatenessBound.
	// Shortfall says why not when it is false.
	LoadOffered bool
	Shortfall   string
	// MinAchieved and MaxLatenessBound are the bounds the verdict used.
	MinAchieved      float64
	MaxLatenessBound time.Duration
}

// PhaseReport is one phase's share of a Report.
type PhaseReport struct {
	// Rate is the phase's configured rate; Start and Duration when it ran
	// (Duration is shorter than configured when the context ended it).
	Rate     float64
	Start    time.Time
	Duration time.Duration
	// The counts and lateness as in Report, for this phase's requests.
	Offered, Sent, OK, Failed, Dropped int64
	MaxLateness                        time.Duration
}

// OfferedRate is the phase's offered requests per second.
func (p PhaseReport) OfferedRate() float64 { return perSecond(p.Offered, p.Duration) }

// AchievedRate is the phase's sent requests per second.
func (p PhaseReport) AchievedRate() float64 { return perSecond(p.Sent, p.Duration) }

// Elapsed is the time from Start to End.
func (r *Report) Elapsed() time.Duration { return r.End.Sub(r.Start) }

// OfferedRate is the offered requests per second over the whole run.
func (r *Report) OfferedRate() float64 { return perSecond(r.Offered, r.Elapsed()) }

// AchievedRate is the sent requests per second over the whole run.
func (r *Report) AchievedRate() float64 { return perSecond(r.Sent, r.Elapsed()) }

// Verdict is "offered", or "short: " and why the load was not offered.
func (r *Report) Verdict() string {
	if r.LoadOffered {
		return "offered"
	}
	return "short: " + r.Shortfall
}

// String is the report on one line.
func (r *Report) String() string {
	return fmt.Sprintf("offered %d (%.1f/s), sent %d (%.1f/s, %.1f%%), ok %d, failed %d, dropped %d, max lateness %s, p50 %s p99 %s (all sent), load %s",
		r.Offered, r.OfferedRate(), r.Sent, r.AchievedRate(), 100*fraction(r.Sent, r.Offered), r.OK, r.Failed, r.Dropped,
		r.MaxLateness.Round(time.Microsecond), r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Verdict())
}

// record counts one finished request; the caller holds the lock.
func (r *Report) record(res Result) {
	p := &r.Phases[res.Phase]
	r.Latencies = append(r.Latencies, res.Latency)
	if res.OK {
		p.OK++
		r.OKLatencies = append(r.OKLatencies, res.Latency)
		r.Labels[res.Label]++
	} else {
		p.Failed++
	}
}

// finish adds the phases up, takes the percentiles and gives the verdict.
func (r *Report) finish() {
	var why []string
	for i, p := range r.Phases {
		r.Offered += p.Offered
		r.Sent += p.Sent
		r.OK += p.OK
		r.Failed += p.Failed
		r.Dropped += p.Dropped
		r.MaxLateness = max(r.MaxLateness, p.MaxLateness)
		if p.Offered > 0 && fraction(p.Sent, p.Offered) < r.MinAchieved {
			why = append(why, fmt.Sprintf("phase %d sent %d of %d offered (%.1f%% < %.0f%%; %d dropped)",
				i, p.Sent, p.Offered, 100*fraction(p.Sent, p.Offered), 100*r.MinAchieved, p.Dropped))
		}
	}
	if r.Offered == 0 {
		why = append(why, "no request was due")
	}
	if r.MaxLateness > r.MaxLatenessBound {
		why = append(why, fmt.Sprintf("a send was %s behind its schedule (bound %s)", r.MaxLateness.Round(time.Millisecond), r.MaxLatenessBound))
	}
	r.LoadOffered, r.Shortfall = len(why) == 0, strings.Join(why, "; ")
	r.P50, r.P99 = Percentile(r.Latencies, 0.5), Percentile(r.Latencies, 0.99)
	r.OKP50, r.OKP99 = Percentile(r.OKLatencies, 0.5), Percentile(r.OKLatencies, 0.99)
}

// Percentile is the q-th quantile (0 < q <= 1) of ds by nearest rank: the
// smallest value with at least q of the samples at or below it; zero for
// no samples. ds is not changed.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s))-1e-9)) - 1 // 0.95*100 is 95.00000000000001
	return s[max(0, min(i, len(s)-1))]
}

func fraction(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
