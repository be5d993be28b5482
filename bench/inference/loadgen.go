package main

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"meridian.dev/meridian/inference"
	"meridian.dev/meridian/internal/loadgen"
)

// newClient returns a client whose transport keeps exactly conns keep-alive
// connections to the server, so the load generator never opens more than
// it measures with.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only; never a proxy from the environment
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// request is one pre-encoded request body and, for the binary extension,
// the length of its JSON part (-1 when all JSON).
type request struct {
	body   []byte
	header int
	length string // header, formatted once
}

// check validates a 200 response's header and body.
type check func(h http.Header, body []byte) error

// loadResult is what one closed-loop load phase did.
type loadResult struct {
	ok, errs  int64
	firstErr  string
	latencies []time.Duration // of the successful requests, client-side
	meter
}

func (r loadResult) perSecond() float64 { return float64(r.ok) / r.wall.Seconds() }

// srvCPUPerImage is the server child's CPU seconds per request answered
// (one image each).
func (r loadResult) srvCPUPerImage() float64 {
	if r.ok == 0 {
		return 0
	}
	return r.srv.Seconds() / float64(r.ok)
}

// cpuPerRequest is this process's (the load generator's) CPU seconds per
// request answered.
func (r loadResult) cpuPerRequest() float64 {
	if r.ok == 0 {
		return 0
	}
	return r.cpu.Seconds() / float64(r.ok)
}

// add merges another phase's counts into r (walls and CPU add up).
func (r *loadResult) add(o loadResult) {
	r.ok += o.ok
	r.errs += o.errs
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
	r.latencies = append(r.latencies, o.latencies...)
	r.meter.add(o.meter)
}

// load runs a closed loop: conc workers, each with one request in flight
// on its own keep-alive connection, posting bodies (round robin) to url
// until d has passed. Requests in flight at the deadline complete and
// count; the wall time runs until the last of them.
//
// Closed on purpose, unlike internal/loadgen's open loop: P1 measures the
// most a server can do (throughput at a fixed concurrency), not what
// users see at a given rate, so each answer releases the next request.
func load(client *http.Client, url string, bodies []request, ok check, conc int, d time.Duration) loadResult {
	var (
		okN, errN atomic.Int64
		mu        sync.Mutex
		firstErr  string
		lat       []time.Duration
		wg        sync.WaitGroup
	)
	fail := func(err error) {
		errN.Add(1)
		mu.Lock()
		if firstErr == "" {
			firstErr = err.Error()
		}
		mu.Unlock()
	}
	m := startMeter()
	deadline := m.wall0.Add(d)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			mine := make([]time.Duration, 0, 4096)
			for i := w; time.Now().Before(deadline); i++ {
				b := bodies[i%len(bodies)]
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b.body))
				if err != nil {
					fail(err)
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				if b.header >= 0 {
					req.Header.Set("Content-Type", "application/octet-stream")
					req.Header.Set(inference.HeaderLength, b.length)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					fail(err)
					time.Sleep(10 * time.Millisecond) // a dead server must not spin the loop
					continue
				}
				buf.Reset()
				_, err = buf.ReadFrom(resp.Body)
				_ = resp.Body.Close()
				elapsed := time.Since(t0)
				switch {
				case err != nil:
					fail(err)
				case resp.StatusCode != http.StatusOK:
					fail(fmt.Errorf("status %s: %.200s", resp.Status, buf.Bytes()))
				default:
					if err := ok(resp.Header, buf.Bytes()); err != nil {
						fail(err)
						continue
					}
					okN.Add(1)
					mine = append(mine, elapsed)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	m.stop()
	return loadResult{ok: okN.Load(), errs: errN.Load(), firstErr: firstErr, latencies: lat, meter: m}
}

// percentile is the p-th percentile (0 < p <= 1) of ds by nearest rank,
// as the open-loop benches report it.
func percentile(ds []time.Duration, p float64) time.Duration { return loadgen.Percentile(ds, p) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", d.Seconds()*1e3) }
func us(d time.Duration) string { return fmt.Sprintf("%.0fus", d.Seconds()*1e6) }
