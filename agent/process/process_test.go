package process

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"meridian.dev/meridian/internal/testbin"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The replicas are the real `meridian serve`, built once for this test
// binary, serving the real bundled models through ONNX Runtime.
var meridian string

func TestMain(m *testing.M) { testbin.Main(m, &meridian) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serveArgs are the arguments of a replica serving models.
func serveArgs(t *testing.T, models string) []string {
	t.Helper()
	lib := testbin.ORTLibrary(t)
	return []string{"--models", models, "--ort-lib", lib, "--cache-size", "0"}
}

func readyCount(s *Supervisor) int {
	n := 0
	for _, r := range s.Replicas() {
		if r.Ready {
			n++
		}
	}
	return n
}

func analyze(url, text string) (int, string, error) {
	resp, err := http.Post(url+"/analyze", "application/json", strings.NewReader(fmt.Sprintf(`{"text":%q}`, text)))
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestReplicasServeThroughFrontAndSurviveACrash(t *testing.T) {
	models := testbin.Models(t)
	sup := New(Options{Binary: meridian, Args: serveArgs(t, models), Name: "default/sentiment", Logger: quiet(), BackoffMin: 100 * time.Millisecond})
	defer sup.Close()
	front, err := NewFront("default/sentiment", FrontOptions{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	front.SetRoutes(Routes{Pools: []Pool{{Replicas: sup}}})
	defer front.Close(time.Second)
	url := "http://" + front.Addr()

	if code, body, _ := analyze(url, "good"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no ready replica") {
		t.Fatalf("front without replicas: %d %s", code, body)
	}
	sup.Scale(2)
	testbin.Eventually(t, "two ready replicas", 60*time.Second, func() bool { return readyCount(sup) == 2 })

	// Load from 4 clients while one replica is killed: the front retries
	// on the other, so no request fails, and the supervisor restarts it.
	var failures, answered int
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := analyze(url, "I love this, it is amazing")
				mu.Lock()
				answered++
				if err != nil || code != 200 || !strings.Contains(body, "POSITIVE") {
					failures++
					t.Logf("request failed: %d %s %v", code, body, err)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	victim := sup.Replicas()[0]
	if err := killListener(victim.Addr); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the killed replica to be restarted and ready", 60*time.Second, func() bool {
		rs := sup.Replicas()
		return readyCount(sup) == 2 && rs[0].Restarts == 1 && strings.Contains(rs[0].LastError, "exited")
	})
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures > 0 || answered < 10 {
		t.Fatalf("%d of %d requests failed while a replica died", failures, answered)
	}

	// Scale down: one replica left, still serving.
	sup.Scale(1)
	testbin.Eventually(t, "one replica", 40*time.Second, func() bool { return len(sup.Replicas()) == 1 })
	if code, body, _ := analyze(url, "awful"); code != 200 || !strings.Contains(body, "NEGATIVE") {
		t.Fatalf("after scale-down: %d %s", code, body)
	}
}

// killListener finds the replica process listening on addr and SIGKILLs it.
func killListener(addr string) error {
	port := addr[strings.LastIndex(addr, ":")+1:]
	out, err := exec.Command("sh", "-c", "ps -eo pid,args | grep -- '--listen 127.0.0.1:"+port+"' | grep -v grep | awk '{print $1}'").Output()
	if err != nil {
		return err
	}
	var pid int
	if _, err := fmt.Sscan(string(out), &pid); err != nil {
		return fmt.Errorf("no process listens on %s: %q", addr, out)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

func TestBrokenModelBacksOffWithTheReason(t *testing.T) {
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "broken", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "broken", "1", "model.onnx"), []byte("not an onnx model"), 0o644); err != nil {
		t.Fatal(err)
	}
	sup := New(Options{Binary: meridian, Args: serveArgs(t, repo), Name: "default/broken", Logger: quiet(),
		BackoffMin: 200 * time.Millisecond, BackoffMax: 800 * time.Millisecond})
	defer sup.Close()
	sup.Scale(1)
	testbin.Eventually(t, "two failed starts", 30*time.Second, func() bool { return sup.Replicas()[0].Restarts >= 2 })
	r := sup.Replicas()[0]
	if r.Ready || !strings.Contains(r.LastError, "model broken version 1") {
		t.Fatalf("replica state %+v: want not ready with the model's load error", r)
	}
	// Backoff: 200ms, 400ms, 800ms, 800ms... — a storm would restart
	// dozens of times in the same period.
	before := r.Restarts
	time.Sleep(2 * time.Second)
	if n := sup.Replicas()[0].Restarts - before; n > 4 {
		t.Fatalf("%d restarts in 2s: backoff is not working", n)
	}
}

func TestScraperRatesAndP95(t *testing.T) {
	models := testbin.Models(t)
	sup := New(Options{Binary: meridian, Args: serveArgs(t, models), Name: "default/sentiment", Logger: quiet()})
	defer sup.Close()
	sup.Scale(1)
	testbin.Eventually(t, "a ready replica", 60*time.Second, func() bool { return readyCount(sup) == 1 })
	url := "http://" + sup.Replicas()[0].Addr
	s := NewScraper()
	first := s.Scrape(context.Background(), sup.Replicas())
	if len(first) != 1 || first[0].Rated || first[0].MemoryBytes <= 0 {
		t.Fatalf("first scrape: %+v", first)
	}
	for i := range 50 {
		if code, _, err := analyze(url, fmt.Sprintf("good %d", i)); err != nil || code != 200 {
			t.Fatal(code, err)
		}
	}
	loads := s.Scrape(context.Background(), sup.Replicas())
	l := loads[0]
	if !l.Rated || l.RequestsPerSecond <= 0 || math.IsNaN(l.P95Seconds) || l.P95Seconds <= 0 || l.CPUCores < 0 {
		t.Fatalf("second scrape: %+v", l)
	}
	if p := P95(loads); p != l.P95Seconds {
		t.Fatalf("P95 of one replica %v != its own %v", p, l.P95Seconds)
	}
}

func TestQuantile(t *testing.T) {
	b := []bucket{{0.1, 50}, {0.2, 90}, {0.4, 100}, {math.Inf(1), 100}}
	// rank 95 of 100 lies in (0.2, 0.4]: 0.2 + 0.2*(95-90)/(100-90) = 0.3
	if got := quantile(0.95, b); math.Abs(got-0.3) > 1e-9 {
		t.Fatalf("p95 = %v, want 0.3", got)
	}
	if got := quantile(0.5, b); math.Abs(got-0.1) > 1e-9 {
		t.Fatalf("p50 = %v, want 0.1", got)
	}
	if !math.IsNaN(quantile(0.95, []bucket{{0.1, 0}})) {
		t.Fatal("empty histogram should give NaN")
	}
}
