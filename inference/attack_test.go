package inference

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"meridian.dev/meridian/internal/httpserve"
	"meridian.dev/meridian/internal/testbin"
)

// The slow HTTP attacks, run with the real slowhttptest (`make
// slowhttptest`) against the real model server: a few hundred connections
// that send their headers (slowloris) or their body (R-U-Dead-Yet) a few
// bytes a second. The server's deadlines close every one of them while a
// normal client, on connections of its own, keeps being answered.
func TestSlowAttacksLeaveOthersServed(t *testing.T) {
	bin, err := testbin.SlowHTTPTest()
	testbin.Need(t, err)
	for _, attack := range []struct {
		name string
		args []string
	}{
		{"slowloris", []string{"-H", "-t", "GET", "-u", "/v2/health/ready"}},
		{"slow body", []string{"-B", "-t", "POST", "-s", "65536", "-u", "/analyze"}},
	} {
		t.Run(attack.name, func(t *testing.T) {
			s := serveHardened(t, Options{ModelRepository: testbin.Models(t),
				HTTP: httpserve.Options{ReadHeaderTimeout: 3 * time.Second, BodyTimeout: 3 * time.Second}})
			slowAttack(t, s, bin, attack.args)
		})
	}
}

func slowAttack(t *testing.T, s *testServer, bin string, args []string) {
	const conns = 300
	args = append([]string{}, args...)
	for i, a := range args {
		if a == "-u" {
			args[i+1] = s.url + args[i+1]
		}
	}
	// -i 1: each connection sends a little every second, well inside the
	// server's deadlines were they reset by activity; -l 120: the tool
	// would hold its connections two minutes unless the server closes them.
	stats := filepath.Join(t.TempDir(), "stats")
	args = append(args, "-c", fmt.Sprint(conns), "-r", "300", "-i", "1", "-x", "16", "-l", "120", "-p", "5", "-g", "-o", stats)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out testbin.Buffer // written by the command's copying goroutine, read here
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting slowhttptest: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	open := func() float64 { return s.httpMetric(t, "meridian_http_open_connections", nil) }
	testbin.Eventually(t, "the attack's connections open", 30*time.Second, func() (bool, string) {
		return open() >= conns/2, fmt.Sprintf("%v open; slowhttptest said %q", open(), out.String())
	})

	// A normal client, a new connection per request, is answered all
	// along, until the attack is over.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	served := 0
	for attacking := true; attacking || served < 10; served++ {
		time.Sleep(20 * time.Millisecond) // pacing, so the client does not crowd two cores
		resp, err := client.Post(s.url+"/analyze", "application/json", strings.NewReader(`{"text":"i love it"}`))
		if err != nil {
			t.Fatalf("request %d during the attack (%v connections open): %v", served, open(), err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d during the attack: %s", served, resp.Status)
		}
		select {
		case err := <-exited:
			exited <- err
			attacking = false
		default:
		}
	}

	// slowhttptest ends before its two minutes only when no connection of
	// its own is left open: the server closed them all.
	var exitErr error
	select {
	case exitErr = <-exited:
	case <-time.After(100 * time.Second):
		t.Fatalf("slowhttptest still holds connections (%v open at the server):\n%s", open(), out.String())
	}
	report := ansi.ReplaceAllString(out.String(), "")
	if exitErr != nil || !strings.Contains(report, "Exit status: No open connections left") {
		t.Fatalf("slowhttptest: %v\n%s", exitErr, report)
	}
	// Its own per-second record: the attack was fully up at its peak, and
	// its probe (a normal request each second) was always answered.
	peak := 0
	for _, row := range attackStats(t, stats+".csv") {
		peak = max(peak, row.connected)
		if !row.available {
			t.Errorf("slowhttptest's probe found the service unavailable in second %d:\n%s", row.second, report)
		}
	}
	if peak < conns/2 { // sampled once a second, while the first ones already time out
		t.Errorf("slowhttptest had at most %d of its %d connections up at once:\n%s", peak, conns, report)
	}
	t.Logf("%d requests served during the attack; slowhttptest had %d connections up at its peak; %s", served, peak,
		strings.TrimSpace(report[strings.LastIndex(report, "Test ended"):]))
}

type attackSecond struct {
	second, connected int
	available         bool
}

// attackStats reads slowhttptest's -g CSV: Seconds, Closed, Pending,
// Connected, Service Available (0 when its probe went unanswered).
func attackStats(t *testing.T, path string) []attackSecond {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("slowhttptest's statistics: %v", err)
	}
	var rows []attackSecond
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
		f := strings.Split(line, ",")
		if len(f) != 5 {
			t.Fatalf("slowhttptest's statistics: line %q, want 5 fields", line)
		}
		var n [5]int
		for i := range f {
			if n[i], err = strconv.Atoi(strings.TrimSpace(f[i])); err != nil {
				t.Fatalf("slowhttptest's statistics: line %q: %v", line, err)
			}
		}
		rows = append(rows, attackSecond{second: n[0], connected: n[3], available: n[4] != 0})
	}
	if len(rows) == 0 {
		t.Fatalf("slowhttptest's statistics are empty")
	}
	return rows
}

// ansi matches the terminal colour codes slowhttptest writes.
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// The model server's own listener refuses oversized headers (431) and
// ambiguous framing (400) before any handler runs.
func TestOversizedHeadersAndAmbiguousFraming(t *testing.T) {
	s := serveHardened(t, Options{ModelRepository: testbin.Models(t)})
	for _, c := range []struct{ name, req, want string }{
		{"128 KiB of headers", "POST /analyze HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 128<<10) + "\r\nContent-Length: 2\r\n\r\n{}", "HTTP/1.1 431 "},
		{"two Content-Lengths", "POST /analyze HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\nContent-Length: 2\r\n\r\n{\"text\":\"good\"}", "HTTP/1.1 400 "},
		{"Content-Length and chunked", "POST /analyze HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\nTransfer-Encoding: chunked\r\n\r\nf\r\n{\"text\":\"good\"}\r\n0\r\n\r\n", "HTTP/1.1 400 "},
	} {
		conn := rawConn(t, s.url)
		_, _ = io.WriteString(conn, c.req)
		answer, _ := bufio.NewReader(conn).ReadString('\n')
		if !strings.HasPrefix(answer, c.want) {
			t.Errorf("%s: %q, want %q", c.name, answer, c.want)
		}
	}
	if n, _ := testbin.MetricIfAny(t, s.reg, "meridian_inference_requests_total", nil); n != 0 {
		t.Errorf("%v refused requests reached the model server's handlers", n)
	}
}
