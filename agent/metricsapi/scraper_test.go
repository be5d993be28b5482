package metricsapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"meridian.dev/meridian/agent/kube"
	"meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/scheme"
	"meridian.dev/meridian/internal/testbin"
)

// The replicas are the real `meridian serve`, built once for this test
// binary, serving the bundled models through ONNX Runtime.
var meridian string

func TestMain(m *testing.M) { testbin.Main(m, &meridian) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// replica is a real `meridian serve` process on a loopback port.
type replica struct{ addr string }

// startReplica runs `meridian serve` until the test ends and waits until
// it is ready.
func startReplica(t *testing.T) replica {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	models, lib := testbin.Models(t), testbin.ORTLibrary(t)
	cmd := exec.Command(meridian, "serve", "--listen", addr, "--models", models, "--ort-lib", lib, "--cache-size", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testbin.Eventually(t, "meridian serve on "+addr+" ready", 60*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/v2/health/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return replica{addr: addr}
}

func (r replica) analyze(text string) error {
	resp, err := http.Post("http://"+r.addr+"/analyze", "application/json", strings.NewReader(fmt.Sprintf(`{"text":%q}`, text)))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("analyze: %s", resp.Status)
	}
	return nil
}

// readyPod is a Running, Ready model replica pod as the API server would
// return it.
func readyPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{
			kube.NameLabel: kube.NameValue, kube.InstanceLabel: "sentiment", kube.ModelLabel: "sentiment",
		}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

// timedScrape runs one scrape and returns when it started and ended.
func timedScrape(s *Scraper) (start, end time.Time) {
	start = time.Now()
	s.ScrapeOnce(context.Background())
	return start, time.Now()
}

// rateBounds are the least and most a rate of n events between two
// scrapes can be: the scraper's clock reads lie inside each scrape.
func rateBounds(n float64, s1, e1, s2, e2 time.Time) (lo, hi float64) {
	return n / e2.Sub(s1).Seconds(), n / s2.Sub(e1).Seconds()
}

// TestScraperExactValues feeds the scraper metrics in the exact form
// `meridian serve` writes them (same names, labels and latency buckets,
// written by the same Prometheus library) with known increases between two
// scrapes, and checks the rate, the p95 of the increase only, the queue
// summed over model versions, the window, and what the adapter serves.
func TestScraperExactValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_inference_requests_total", Help: "h"}, []string{"model", "version", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meridian_inference_request_duration_seconds", Help: "h",
		Buckets: prometheus.ExponentialBuckets(50e-6, 2, 19)}, []string{"model", "version"})
	q1 := prometheus.NewGauge(prometheus.GaugeOpts{Name: "meridian_inference_queue_depth", Help: "h", ConstLabels: prometheus.Labels{"model": "sentiment", "version": "1"}})
	q2 := prometheus.NewGauge(prometheus.GaugeOpts{Name: "meridian_inference_queue_depth", Help: "h", ConstLabels: prometheus.Labels{"model": "textdir", "version": "1"}})
	reg.MustRegister(requests, duration, q1, q2)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	// Before the first scrape: 1000 slow requests, which must not count.
	requests.WithLabelValues("sentiment", "1", "200").Add(1000)
	for range 1000 {
		duration.WithLabelValues("sentiment", "1").Observe(1.0)
	}
	pods := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(readyPod("r-0")).Build()
	mreg := prometheus.NewRegistry()
	s := NewScraper(ScraperOptions{Pods: pods, Logger: quiet(), Metrics: mustMetrics(t, mreg),
		Address: func(*corev1.Pod) (string, bool) { return strings.TrimPrefix(srv.URL, "http://"), true }})
	s1, e1 := timedScrape(s)
	first := s.PodMetrics("default")
	if len(first) != 1 || len(first[0].Values) != 1 || first[0].Values[MetricQueueLength] != 0 {
		t.Fatalf("first scrape: want the queue only (rates need two scrapes), got %+v", first)
	}

	// Between the scrapes: 100 requests over two models and codes, 90
	// answered in 1ms and 10 in 100ms; 3 and 4 requests queued now.
	requests.WithLabelValues("sentiment", "1", "200").Add(60)
	requests.WithLabelValues("textdir", "1", "429").Add(40)
	for i := range 100 {
		v := 0.001
		if i >= 90 {
			v = 0.1
		}
		duration.WithLabelValues("sentiment", "1").Observe(v)
	}
	q1.Set(3)
	q2.Set(4)
	time.Sleep(200 * time.Millisecond) // a window long enough to bound the rate
	s2, e2 := timedScrape(s)
	got := s.PodMetrics("default")
	if len(got) != 1 {
		t.Fatalf("second scrape: %+v", got)
	}
	v := got[0].Values
	lo, hi := rateBounds(100, s1, e1, s2, e2)
	if rps := v[MetricRequestsPerSecond]; rps < lo || rps > hi {
		t.Errorf("requests/s = %v, want 100 requests over the interval: within [%v, %v]", rps, lo, hi)
	}
	// Rank 95 of 100 lies in the bucket (0.0512, 0.1024] holding the 10
	// slow ones above the 90 fast: 0.0512 + 0.0512*(95-90)/(100-90).
	if p95 := v[MetricP95LatencySeconds]; math.Abs(p95-0.0768) > 1e-9 {
		t.Errorf("p95 = %v, want 0.0768", p95)
	}
	if q := v[MetricQueueLength]; q != 7 {
		t.Errorf("queue = %v, want 3+4", q)
	}
	if w := got[0].Window; w < s2.Sub(e1) || w > e2.Sub(s1) {
		t.Errorf("window %v outside the interval between the scrapes", w)
	}
	if n := testbin.Metric(t, mreg, "meridian_agent_metricsapi_pods", map[string]string{"state": "served"}); n != 1 {
		t.Errorf("pods served = %v, want 1", n)
	}

	// The replica stops answering: the pod is left out at once, and counted.
	srv.Close()
	s.ScrapeOnce(context.Background())
	if got := s.PodMetrics("default"); len(got) != 0 {
		t.Errorf("an unscrapable pod is served: %+v", got)
	}
	if n := testbin.Metric(t, mreg, "meridian_agent_metricsapi_pods", map[string]string{"state": "left_out"}); n != 1 {
		t.Errorf("pods left out = %v, want 1", n)
	}
	if n := testbin.Metric(t, mreg, "meridian_agent_metricsapi_scrape_errors_total", nil); n != 1 {
		t.Errorf("scrape errors = %v, want 1", n)
	}
}

// TestScraperOnRealReplica scrapes a real `meridian serve` before and
// after 40 real inference requests.
func TestScraperOnRealReplica(t *testing.T) {
	r := startReplica(t)
	pods := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(readyPod("r-0")).Build()
	s := NewScraper(ScraperOptions{Pods: pods, Logger: quiet(),
		Address: func(*corev1.Pod) (string, bool) { return r.addr, true }})
	s1, e1 := timedScrape(s)
	var slowest time.Duration
	for i := range 40 {
		start := time.Now()
		if err := r.analyze(fmt.Sprintf("a good day %d", i)); err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(start))
	}
	s2, e2 := timedScrape(s)
	got := s.PodMetrics("default")
	if len(got) != 1 {
		t.Fatalf("pod metrics: %+v", got)
	}
	v := got[0].Values
	lo, hi := rateBounds(40, s1, e1, s2, e2)
	if rps := v[MetricRequestsPerSecond]; rps < lo || rps > hi {
		t.Errorf("requests/s = %v, want 40 requests over the interval: within [%v, %v]", rps, lo, hi)
	}
	// The p95 is interpolated inside a bucket (le/2, le] that holds a real
	// request, so it is above 0 and below twice the slowest one the client saw.
	if p95, ok := v[MetricP95LatencySeconds]; !ok || p95 <= 0 || p95 >= 2*slowest.Seconds() {
		t.Errorf("p95 = %v (present %v), want in (0, %v)", p95, ok, 2*slowest.Seconds())
	}
	if q, ok := v[MetricQueueLength]; !ok || q != 0 {
		t.Errorf("queue = %v (present %v), want 0 with no request in flight", q, ok)
	}
}

// The pods of a Deployment a ModelDeployment adopts carry the user's
// labels, not Meridian's; the scraper finds them by the Deployment's own
// selector, so an HPA on requests_per_second works for them too. A pod of
// another, unadopted Deployment with the same labels elsewhere is not
// scraped. (A fake client stands in for the API server here: the real one
// is in TestBlogManifestsScaleOnARealNode.)
func TestScraperFindsAdoptedDeploymentsPods(t *testing.T) {
	r := startReplica(t)
	userPod := func(ns, name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "sentiment-inference"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.8",
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		}
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "sentiment-inference-deployment"},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sentiment-inference"}}},
	}
	md := &v1alpha1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "sentiment"},
		Spec: v1alpha1.ModelDeploymentSpec{Model: v1alpha1.ModelSource{Name: "sentiment"},
			Adopt: &v1alpha1.Adoption{Deployment: "sentiment-inference-deployment"}},
	}
	pods := fake.NewClientBuilder().WithScheme(scheme.Scheme).
		WithObjects(dep, md, userPod("default", "user-0"), userPod("other", "stranger-0")).Build()
	s := NewScraper(ScraperOptions{Pods: pods, Logger: quiet(),
		Address: func(*corev1.Pod) (string, bool) { return r.addr, true }})
	s.ScrapeOnce(context.Background())
	if err := r.analyze("a good day"); err != nil {
		t.Fatal(err)
	}
	s.ScrapeOnce(context.Background())
	got := s.PodMetrics("default")
	if len(got) != 1 || got[0].Name != "user-0" {
		t.Fatalf("pod metrics in default: %+v, want the adopted Deployment's pod user-0", got)
	}
	if rps := got[0].Values[MetricRequestsPerSecond]; rps <= 0 {
		t.Errorf("requests/s of the adopted pod = %v, want above 0 after a request", rps)
	}
	if other := s.PodMetrics("other"); len(other) != 0 {
		t.Errorf("a pod no ModelDeployment adopts was scraped: %+v", other)
	}
}

func mustMetrics(t *testing.T, reg *prometheus.Registry) *Metrics {
	t.Helper()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
