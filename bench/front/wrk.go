package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"meridian.dev/meridian/bench/internal/glbfixture"
)

// wrkScript makes every request a sentiment inference (POST, JSON body)
// and prints wrk's totals in one parseable line at the end: wrk counts a
// response that is not 2xx or 3xx as a "status" error, and socket errors
// (connect, read, write, timeout) apart, so a failed request is any of
// those.
const wrkScript = `wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
%sdone = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d %%d %%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// writeWrkScript writes the script as dir/name.lua; with a token, every
// request carries it as a Bearer credential (P3-TLS).
func writeWrkScript(dir, name, token string) (string, error) {
	path := filepath.Join(dir, name+".lua")
	auth := ""
	if token != "" {
		auth = fmt.Sprintf("wrk.headers[\"Authorization\"] = \"Bearer %s\"\n", token)
	}
	return path, os.WriteFile(path, []byte(fmt.Sprintf(wrkScript, glbfixture.InferBody, auth)), 0o644)
}

// load is one wrk run's result.
type load struct {
	requests int
	rps      float64
	// p50 and p99 latency as wrk measured it (closed loop: from sending
	// a request to its response on the same connection).
	p50, p99 time.Duration
	// failed counts non-2xx/3xx responses and socket errors.
	failed                                int
	status, connect, read, write, timeout int
	cores                                 float64 // wrk's own CPU
	// proxyCPU is the proxy's CPU seconds per request (0 for direct).
	proxyCPU float64
	// newConns is the connections the backends accepted per request.
	newConns float64
}

// runWrk runs wrk with one thread and conns connections for d against
// url's inference path. One thread: wrk then takes at most one of the two
// cores, as dnsperf does in P2.
func runWrk(ctx context.Context, script, base string, conns int, d time.Duration) (load, error) {
	args := []string{"-t1", "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%.0fs", d.Seconds()), "--timeout", "2s",
		"-s", script, base + glbfixture.InferPath}
	cmd := exec.CommandContext(ctx, "wrk", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return load{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	st := cmd.ProcessState
	l, err := parseWrk(out.String())
	l.cores = (st.UserTime() + st.SystemTime()).Seconds() / time.Since(start).Seconds()
	return l, err
}

func parseWrk(out string) (load, error) {
	i := strings.Index(out, "RESULT ")
	if i < 0 {
		return load{}, fmt.Errorf("wrk printed no result:\n%s", out)
	}
	line, _, _ := strings.Cut(out[i+len("RESULT "):], "\n")
	var v [9]int64
	for j, f := range strings.Fields(line) {
		if j < len(v) {
			v[j], _ = strconv.ParseInt(f, 10, 64)
		}
	}
	l := load{requests: int(v[0]), status: int(v[2]), connect: int(v[3]), read: int(v[4]), write: int(v[5]), timeout: int(v[6]),
		p50: time.Duration(v[7]) * time.Microsecond, p99: time.Duration(v[8]) * time.Microsecond}
	if v[1] > 0 {
		l.rps = float64(v[0]) / (float64(v[1]) / 1e6)
	}
	l.failed = l.status + l.connect + l.read + l.write + l.timeout
	return l, nil
}

func (l load) errors() string {
	return fmt.Sprintf("non-2xx %d, connect %d, read %d, write %d, timeout %d", l.status, l.connect, l.read, l.write, l.timeout)
}
