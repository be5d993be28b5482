package process

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Load is what one replica did between two scrapes of its /metrics.
type Load struct {
	Replica string
	Ready   bool
	// Rated is false on a replica's first scrape: rates need two.
	Rated bool
	// CPUCores is the replica's CPU use, in cores.
	CPUCores float64
	// MemoryBytes is its resident memory.
	MemoryBytes float64
	// RequestsPerSecond it answered.
	RequestsPerSecond float64
	// P95Seconds is its 95th-percentile latency over the interval; NaN
	// when it answered nothing.
	P95Seconds float64
	// QueueLength is the requests waiting in its queues now.
	QueueLength float64
	// buckets are the latency histogram's increase over the interval.
	buckets []bucket
}

type bucket struct{ le, count float64 }

type point struct {
	at       time.Time
	cpu      float64
	requests float64
	buckets  []bucket // cumulative
}

// Scraper reads the replicas' meridian_inference_* and process_* metrics
// and turns successive readings into rates.
type Scraper struct {
	client *http.Client
	mu     sync.Mutex
	prev   map[string]point // by replica address
}

// NewScraper returns a scraper with no history.
func NewScraper() *Scraper {
	return &Scraper{client: &http.Client{Timeout: 2 * time.Second}, prev: make(map[string]point)}
}

// Scrape reads every replica that has an address; a replica whose
// metrics cannot be read is left out (the autoscaler treats it as
// missing, as the HPA does).
func (s *Scraper) Scrape(ctx context.Context, replicas []Replica) []Load {
	var out []Load
	seen := make(map[string]bool)
	for _, r := range replicas {
		if r.Addr == "" {
			continue
		}
		seen[r.Addr] = true
		cur, queue, mem, err := s.read(ctx, r.Addr)
		if err != nil {
			continue
		}
		l := Load{Replica: r.ID, Ready: r.Ready, MemoryBytes: mem, QueueLength: queue, P95Seconds: math.NaN()}
		s.mu.Lock()
		prev, ok := s.prev[r.Addr]
		s.prev[r.Addr] = cur
		s.mu.Unlock()
		if dt := cur.at.Sub(prev.at).Seconds(); ok && dt > 0 && cur.requests >= prev.requests {
			l.Rated = true
			l.CPUCores = (cur.cpu - prev.cpu) / dt
			l.RequestsPerSecond = (cur.requests - prev.requests) / dt
			l.buckets = diff(cur.buckets, prev.buckets)
			l.P95Seconds = quantile(0.95, l.buckets)
		}
		out = append(out, l)
	}
	s.mu.Lock()
	for addr := range s.prev {
		if !seen[addr] {
			delete(s.prev, addr)
		}
	}
	s.mu.Unlock()
	return out
}

// P95 merges the replicas' latency histograms into the model's p95; NaN
// when none answered anything.
func P95(loads []Load) float64 {
	var merged []bucket
	for _, l := range loads {
		if merged == nil {
			merged = slices.Clone(l.buckets)
			continue
		}
		if len(l.buckets) == len(merged) {
			for i := range merged {
				merged[i].count += l.buckets[i].count
			}
		}
	}
	return quantile(0.95, merged)
}

func (s *Scraper) read(ctx context.Context, addr string) (p point, queue, mem float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return p, 0, 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return p, 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return p, 0, 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return p, 0, 0, err
	}
	p.at = time.Now()
	p.cpu = sum(families["process_cpu_seconds_total"])
	p.requests = sum(families["meridian_inference_requests_total"])
	p.buckets = histogram(families["meridian_inference_request_duration_seconds"])
	return p, sum(families["meridian_inference_queue_depth"]), sum(families["process_resident_memory_bytes"]), nil
}

// sum adds a counter's or gauge's series.
func sum(f *dto.MetricFamily) float64 {
	var total float64
	for _, m := range f.GetMetric() {
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		}
	}
	return total
}

// histogram adds a histogram's series into one set of cumulative buckets.
func histogram(f *dto.MetricFamily) []bucket {
	var out []bucket
	for _, m := range f.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		for i, b := range h.GetBucket() {
			if i >= len(out) {
				out = append(out, bucket{le: b.GetUpperBound()})
			}
			out[i].count += float64(b.GetCumulativeCount())
		}
	}
	return out
}

func diff(cur, prev []bucket) []bucket {
	out := slices.Clone(cur)
	if len(prev) != len(cur) {
		return out
	}
	for i := range out {
		out[i].count -= prev[i].count
	}
	return out
}

// quantile estimates a quantile from cumulative buckets by linear
// interpolation inside the bucket that holds it, as PromQL's
// histogram_quantile does; NaN when the buckets are empty.
func quantile(q float64, buckets []bucket) float64 {
	if len(buckets) == 0 {
		return math.NaN()
	}
	total := buckets[len(buckets)-1].count
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range buckets {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lower
			}
			if b.count == below {
				return b.le
			}
			return lower + (b.le-lower)*(rank-below)/(b.count-below)
		}
		lower, below = b.le, b.count
	}
	return lower
}
