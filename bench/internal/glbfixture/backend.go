package glbfixture

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"meridian.dev/meridian/internal/httpserve"
)

// backendEnv, when set in a benchmark's environment, turns the process
// into a backend: the benchmark re-executes itself with it, so a backend
// is a real process that can be killed like a crashed server.
const backendEnv = "MERIDIAN_BENCH_BACKEND"

// ProbePath is the path the balancer and HAProxy health-check.
const ProbePath = "/v2/health/ready"

// InferPath is the request path of the load.
const InferPath = "/v2/models/" + Model + "/infer"

// InferBody is a sentiment request in the Open Inference Protocol, the
// body the load generators send.
const InferBody = `{"inputs":[{"name":"tokens","shape":[1,6],"datatype":"BYTES","data":["i","love","this","it","is","amazing"]}]}`

// connsPath answers how many connections the backend has accepted.
const connsPath = "/bench/conns"

// inferReply is what the real server answers for InferBody, so the
// proxies move the same bytes as before a real model server.
const inferReply = `{"model_name":"sentiment","model_version":"1","outputs":[{"name":"score","shape":[1],"datatype":"FP32","data":[4.5]},{"name":"p_pos","shape":[1],"datatype":"FP32","data":[0.9890131]}]}`

// ServeBackendIfAsked serves as a backend and exits when the benchmark
// started this process as one; otherwise it returns at once. Call it
// first in main.
func ServeBackendIfAsked() {
	spec := os.Getenv(backendEnv)
	if spec == "" {
		return
	}
	var name, addr string
	if _, err := fmt.Sscanf(spec, "%s %s", &name, &addr); err != nil {
		fmt.Fprintln(os.Stderr, "backend: bad", backendEnv, spec)
		os.Exit(2)
	}
	if err := serveBackend(name, addr); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveBackend answers the paths of a model server as cheaply as it can:
// the probe path, and the sentiment model with a fixed reply. It stands
// for a cluster's model server (docs/benchmarks.md, P3, says why not a
// real one).
func serveBackend(name, addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ProbePath, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	reply := []byte(inferReply)
	infer := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Backend", name)
		_, _ = w.Write(reply)
	}
	mux.HandleFunc("POST "+InferPath, infer)
	mux.HandleFunc("POST /analyze", infer)
	// How many connections were opened to this backend: whether a proxy
	// keeps its upstream connections alive shows in P3's CPU figures.
	var conns atomic.Int64
	mux.HandleFunc("GET "+connsPath, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprint(w, conns.Load())
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv, err := httpserve.New(mux, httpserve.Options{Name: "backend",
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}})
	if err != nil {
		return err
	}
	return srv.Serve(httpserve.Listener(ln))
}

// Backend is one backend process at Addr ("127.0.3.1:port").
type Backend struct {
	Name, Addr string
	dir        string
	stack      *Stack
	proc       *Proc
}

// StartBackend starts a backend process named name on addr and waits
// until it answers its probe path.
func StartBackend(s *Stack, dir, name, addr string) (*Backend, error) {
	b := &Backend{Name: name, Addr: addr, dir: dir, stack: s}
	return b, b.Restart()
}

// Restart starts the backend again after Kill.
func (b *Backend) Restart() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	p, err := Start(b.dir, "backend-"+b.Name, []string{backendEnv + "=" + b.Name + " " + b.Addr}, self)
	if err != nil {
		return err
	}
	b.proc = b.stack.Add(p)
	return b.stack.WaitFor("backend "+b.Name, 20*time.Second, func() error { return Probe(b.URL()) })
}

// Kill ends the backend at once, as a crashing server would: its open
// connections are reset.
func (b *Backend) Kill() { b.proc.Kill() }

// Conns is how many connections the backend has accepted since it
// started (one more for this question).
func (b *Backend) Conns() (int64, error) {
	resp, err := http.Get(b.URL() + connsPath)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
}

// PID is the backend process's id.
func (b *Backend) PID() int { return b.proc.PID() }

// URL is the backend's base URL, as the clusters' model endpoints name it.
func (b *Backend) URL() string { return "http://" + b.Addr }

// Probe GETs base+ProbePath and wants a 200.
func Probe(base string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+ProbePath, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s: %s", base, ProbePath, resp.Status)
	}
	return nil
}
