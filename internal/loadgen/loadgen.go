package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Request does one request. The label says something about the answer
// worth counting, such as the cluster that answered; it may be empty. A
// non-nil error makes the request a failure. ctx carries Options.Timeout.
type Request func(ctx context.Context) (label string, err error)

// Phase is a stretch of the run at one rate.
type Phase struct {
	// Rate is the requests per second offered in this phase; it must be
	// above zero.
	Rate float64
	// Duration is how long the phase lasts. Zero is allowed only for the
	// last phase and means until Run's context is done.
	Duration time.Duration
}

// Options configure Run.
type Options struct {
	// Phases are run one after the other; each phase's schedule starts
	// where the previous one ended. At least one is required.
	Phases []Phase
	// MaxInFlight caps the requests in flight. A request due while that
	// many are in flight is dropped (counted, reported to OnResult, never
	// sent). Zero means no cap: every due request is sent.
	MaxInFlight int
	// Timeout bounds each request through its context. Default 10s.
	Timeout time.Duration
	// MinAchieved is the fraction of each phase's offered requests that
	// must be sent for the load to count as offered. Default 0.95.
	MinAchieved float64
	// MaxLateness is the largest lateness of a send behind its schedule
	// for which the load still counts as offered. Default 100ms.
	MaxLateness time.Duration
	// OnResult, if set, is called once for every offered request that
	// was sent (when it has finished) or dropped (at its due time). Calls
	// are serialized, never concurrent; keep them short.
	OnResult func(Result)
}

// Constant is the Options.Phases of one phase at rate requests per second
// for d (zero: until the context is done).
func Constant(rate float64, d time.Duration) []Phase {
	return []Phase{{Rate: rate, Duration: d}}
}

// Result is what became of one request.
type Result struct {
	// Phase is the index of the request's phase in Options.Phases; Seq
	// its number over the whole run, from 0.
	Phase int
	Seq   int64
	// Due is when the schedule said to send it; Start when it was sent
	// (zero when dropped).
	Due, Start time.Time
	// Latency runs from Start to the answer or the failure; zero when
	// dropped.
	Latency time.Duration
	// OK is true when the request returned no error.
	OK bool
	// Dropped is true when MaxInFlight requests were in flight at Due.
	Dropped bool
	// Label is what the request returned; Err its error.
	Label string
	Err   error
}

// Run offers load by opts.Phases until the last phase ends or ctx is
// done, then waits for the requests in flight (each bounded by
// opts.Timeout, even after ctx is done) and reports what happened.
func Run(ctx context.Context, opts Options, do Request) (*Report, error) {
	if err := opts.validate(do); err != nil {
		return nil, err
	}
	opts.defaults()
	g := &generator{opts: opts, do: do, reqCtx: context.WithoutCancel(ctx)}
	if opts.MaxInFlight > 0 {
		g.slots = make(chan struct{}, opts.MaxInFlight)
	}
	g.rep = &Report{MinAchieved: opts.MinAchieved, MaxLatenessBound: opts.MaxLateness, Labels: map[string]int64{}}
	g.rep.Phases = make([]PhaseReport, len(opts.Phases))
	g.schedule(ctx)
	g.inFlight.Wait()
	g.rep.finish()
	return g.rep, nil
}

func (o Options) validate(do Request) error {
	if do == nil {
		return errors.New("loadgen: no request function")
	}
	if len(o.Phases) == 0 {
		return errors.New("loadgen: no phase to run")
	}
	for i, p := range o.Phases {
		if !(p.Rate > 0) || math.IsInf(p.Rate, 0) {
			return fmt.Errorf("loadgen: phase %d: rate %v is not a positive number of requests per second", i, p.Rate)
		}
		if p.Duration < 0 || p.Duration == 0 && i < len(o.Phases)-1 {
			return fmt.Errorf("loadgen: phase %d: duration %s; only the last phase may run until the context is done (0)", i, p.Duration)
		}
	}
	if o.MaxInFlight < 0 || o.MinAchieved < 0 || o.MinAchieved > 1 || o.MaxLateness < 0 || o.Timeout < 0 {
		return errors.New("loadgen: MaxInFlight, Timeout, MaxLateness must not be negative and MinAchieved must be within [0, 1]")
	}
	return nil
}

func (o *Options) defaults() {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MinAchieved == 0 {
		o.MinAchieved = 0.95
	}
	if o.MaxLateness == 0 {
		o.MaxLateness = 100 * time.Millisecond
	}
}

type generator struct {
	opts     Options
	do       Request
	reqCtx   context.Context
	slots    chan struct{}
	inFlight sync.WaitGroup
	seq      int64

	mu  sync.Mutex // guards rep's completion counts and OnResult calls
	rep *Report
}

// schedule sends every phase's requests at their due times; it returns
// when the last phase has ended or ctx is done.
func (g *generator) schedule(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	g.rep.Start = start
	phaseStart := start
	for k, ph := range g.opts.Phases {
		pr := &g.rep.Phases[k]
		pr.Rate, pr.Start = ph.Rate, phaseStart
		var phaseEnd time.Time
		if ph.Duration > 0 {
			phaseEnd = phaseStart.Add(ph.Duration)
		}
		stopped := false
		for i := int64(0); ; i++ {
			due := phaseStart.Add(time.Duration(float64(i) * float64(time.Second) / ph.Rate))
			if !phaseEnd.IsZero() && !due.Before(phaseEnd) {
				break
			}
			if !stopped && !g.wait(ctx, timer, due) {
				stopped, g.rep.End = true, time.Now()
			}
			if stopped {
				// Due before the stop but not sent: offered all the same.
				if !due.Before(g.rep.End) {
					break
				}
				pr.Offered++
				continue
			}
			pr.Offered++
			now := time.Now()
			pr.MaxLateness = max(pr.MaxLateness, now.Sub(due))
			g.send(k, due, now)
		}
		if stopped {
			pr.Duration = g.rep.End.Sub(phaseStart)
			return
		}
		pr.Duration = ph.Duration
		phaseStart = phaseEnd
	}
	g.rep.End = phaseStart
	if now := time.Now(); now.After(phaseStart) {
		g.rep.End = now // the last sends were late
	}
}

// wait sleeps until due; false when ctx is done first.
func (g *generator) wait(ctx context.Context, timer *time.Timer, due time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	d := time.Until(due)
	if d <= 0 {
		return true
	}
	timer.Reset(d)
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func (g *generator) send(phase int, due, start time.Time) {
	seq := g.seq
	g.seq++
	if g.slots != nil {
		select {
		case g.slots <- struct{}{}:
		default:
			g.mu.Lock()
			defer g.mu.Unlock()
			g.rep.Phases[phase].Dropped++
			if g.opts.OnResult != nil {
				g.opts.OnResult(Result{Phase: phase, Seq: seq, Due: due, Dropped: true})
			}
			return
		}
	}
	g.rep.Phases[phase].Sent++
	g.inFlight.Go(func() {
		if g.slots != nil {
			defer func() { <-g.slots }()
		}
		ctx, cancel := context.WithTimeout(g.reqCtx, g.opts.Timeout)
		defer cancel()
		label, err := g.do(ctx)
		r := Result{Phase: phase, Seq: seq, Due: due, Start: start, Latency: time.Since(start), OK: err == nil, Label: label, Err: err}
		g.mu.Lock()
		defer g.mu.Unlock()
		g.rep.record(r)
		if g.opts.OnResult != nil {
			g.opts.OnResult(r)
		}
	})
}
