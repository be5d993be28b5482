package process

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure a Supervisor. Zero values are usable.
type Options struct {
	// Binary is the meridian executable run as `meridian serve` for each
	// replica; default the running executable.
	Binary string
	// Args follow "serve" on every replica's command line (e.g. --models,
	// --ort-lib); --listen is added by the supervisor.
	Args []string
	// Name identifies the replicas in logs, e.g. "default/sentiment".
	Name string
	// IDPrefix starts every replica ID; default "r". Supervisors behind
	// one Front need different prefixes.
	IDPrefix string
	// Logger receives replica lifecycle logs; default slog.Default().
	Logger *slog.Logger
	// ReadyTimeout is how long a starting replica may take to answer
	// /v2/health/ready before it is killed and restarted. Default 60s.
	ReadyTimeout time.Duration
	// BackoffMin and BackoffMax bound the delay before restarting a replica
	// that exited: it starts at BackoffMin and doubles per consecutive
	// failure up to BackoffMax, so a model that cannot load never causes a
	// restart storm. Defaults 1s and 1m.
	BackoffMin, BackoffMax time.Duration
	// StableAfter is how long a replica must run for its backoff to reset.
	// Default 2m.
	StableAfter time.Duration
	// DrainTimeout is how long a stopping replica may take to finish its
	// in-flight requests after SIGTERM before it is killed. Default 35s.
	DrainTimeout time.Duration
	// OnChange, if set, is called (without locks held) whenever a replica
	// becomes ready or stops being ready.
	OnChange func()
}

func (o *Options) setDefaults() {
	if o.Binary == "" {
		o.Binary, _ = os.Executable()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.IDPrefix = cmp.Or(o.IDPrefix, "r")
	o.ReadyTimeout = cmp.Or(o.ReadyTimeout, time.Minute)
	o.BackoffMin = cmp.Or(o.BackoffMin, time.Second)
	o.BackoffMax = cmp.Or(o.BackoffMax, time.Minute)
	o.StableAfter = cmp.Or(o.StableAfter, 2*time.Minute)
	o.DrainTimeout = cmp.Or(o.DrainTimeout, 35*time.Second)
}

// Replica is the state of one replica process.
type Replica struct {
	// ID is unique within the supervisor, e.g. "r3" (Options.IDPrefix).
	ID string
	// Addr is host:port the replica serves on (changes on restart).
	Addr string
	// Ready is true while the replica answers /v2/health/ready with 200.
	Ready bool
	// Restarts counts exits after which the replica was started again.
	Restarts int
	// LastError says why the replica last exited or was killed, with the
	// last line it wrote to stderr.
	LastError string
	// Started is when the current process started.
	Started time.Time
}

// Supervisor keeps a number of `meridian serve` replicas running: it
// starts them on free loopback ports, tracks their readiness, restarts
// them with backoff when they exit, and stops the surplus gracefully.
type Supervisor struct {
	opts Options
	ctx  context.Context
	stop context.CancelFunc

	mu       sync.Mutex
	replicas map[string]*replica
	next     int
	wg       sync.WaitGroup
}

type replica struct {
	Replica
	cancel context.CancelFunc
}

// New returns a supervisor with no replicas; Scale starts them.
func New(opts Options) *Supervisor {
	opts.setDefaults()
	ctx, stop := context.WithCancel(context.Background())
	return &Supervisor{opts: opts, ctx: ctx, stop: stop, replicas: make(map[string]*replica)}
}

// Replicas returns the replicas, ordered by ID.
func (s *Supervisor) Replicas() []Replica {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Replica, 0, len(s.replicas))
	for _, r := range s.replicas {
		out = append(out, r.Replica)
	}
	slices.SortFunc(out, func(a, b Replica) int { // r2 before r10
		if c := cmp.Compare(len(a.ID), len(b.ID)); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// Scale starts or stops replicas until n are running. Surplus replicas
// are stopped not-ready first, then newest first, each given DrainTimeout
// to finish its requests.
func (s *Supervisor) Scale(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	for len(s.replicas) < n {
		s.next++
		ctx, cancel := context.WithCancel(s.ctx)
		r := &replica{Replica: Replica{ID: fmt.Sprintf("%s%d", s.opts.IDPrefix, s.next)}, cancel: cancel}
		s.replicas[r.ID] = r
		s.wg.Add(1)
		go s.run(ctx, r)
	}
	if len(s.replicas) <= n {
		return
	}
	victims := make([]*replica, 0, len(s.replicas))
	for _, r := range s.replicas {
		victims = append(victims, r)
	}
	slices.SortFunc(victims, func(a, b *replica) int {
		if a.Ready != b.Ready {
			if !a.Ready {
				return -1
			}
			return 1
		}
		return b.Started.Compare(a.Started)
	})
	for _, r := range victims[:len(s.replicas)-n] {
		delete(s.replicas, r.ID)
		r.cancel()
	}
}

// Close stops every replica and waits for them to exit.
func (s *Supervisor) Close() {
	s.mu.Lock()
	s.stop()
	s.mu.Unlock()
	s.wg.Wait()
}

// update changes a replica's state under the lock and reports readiness
// changes through OnChange.
func (s *Supervisor) update(r *replica, f func(*Replica)) {
	s.mu.Lock()
	was := r.Ready
	f(&r.Replica)
	changed := was != r.Ready
	s.mu.Unlock()
	if changed && s.opts.OnChange != nil {
		s.opts.OnChange()
	}
}

// run keeps one replica alive until its context ends.
func (s *Supervisor) run(ctx context.Context, r *replica) {
	defer s.wg.Done()
	log := s.opts.Logger.With("model", s.opts.Name, "replica", r.ID)
	backoff := s.opts.BackoffMin
	for ctx.Err() == nil {
		started := time.Now()
		err := s.runOnce(ctx, r, log)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) >= s.opts.StableAfter {
			backoff = s.opts.BackoffMin
		}
		s.update(r, func(x *Replica) { x.Ready, x.LastError = false, err.Error(); x.Restarts++ })
		log.Warn("replica exited; restarting after backoff", "err", err, "backoff", backoff, "restarts", r.Restarts)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.opts.BackoffMax)
	}
}

// runOnce starts the process and returns when it exits (with why) or,
// after stopping it gracefully, when ctx ends.
func (s *Supervisor) runOnce(ctx context.Context, r *replica, log *slog.Logger) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	args := append([]string{"serve", "--listen", addr}, s.opts.Args...)
	cmd := exec.Command(s.opts.Binary, args...)
	// The replica dies with the agent, and gets its own process group so
	// a terminal's Ctrl-C reaches the agent first, which then drains it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	tail := &lastLines{log: log}
	cmd.Stdout, cmd.Stderr = tail, tail
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.opts.Binary, err)
	}
	s.update(r, func(x *Replica) { x.Addr, x.Started = addr, time.Now() })
	log.Info("replica started", "addr", addr, "pid", cmd.Process.Pid)
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()

	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	timedOut := make(chan struct{})
	go s.probe(probeCtx, r, addr, timedOut)

	select {
	case <-exited:
		return fmt.Errorf("exited (%w): %s", waitErr, tail.last())
	case <-timedOut:
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("not ready after %s; killed: %s", s.opts.ReadyTimeout, tail.last())
	case <-ctx.Done():
	}
	s.update(r, func(x *Replica) { x.Ready = false })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(s.opts.DrainTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
	log.Info("replica stopped")
	return ctx.Err()
}

// probe polls the replica's readiness until ctx ends: first until it is
// ready (closing timedOut if ReadyTimeout passes first), then every 500ms
// so a saturated replica is taken out of rotation while its queue is full.
func (s *Supervisor) probe(ctx context.Context, r *replica, addr string, timedOut chan<- struct{}) {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(s.opts.ReadyTimeout)
	everReady := false
	interval := 50 * time.Millisecond
	for {
		ready := probeReady(ctx, client, addr)
		everReady = everReady || ready
		s.update(r, func(x *Replica) { x.Ready = ready })
		if !everReady && time.Now().After(deadline) {
			close(timedOut)
			return
		}
		if everReady {
			interval = 500 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func probeReady(ctx context.Context, client *http.Client, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/health/ready", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freeAddr asks the kernel for a free loopback port.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// lastLines forwards a replica's output to the log at debug level and
// keeps its last line, which names the error when a replica fails.
type lastLines struct {
	log     *slog.Logger
	mu      sync.Mutex
	partial string
	line    string
}

func (l *lastLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(l.partial+string(p), "\n")
	l.partial = lines[len(lines)-1]
	for _, line := range lines[:len(lines)-1] {
		if line = strings.TrimSpace(line); line != "" {
			l.line = line
			l.log.Debug("replica output", "line", line)
		}
	}
	return len(p), nil
}

func (l *lastLines) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.line == "" {
		return "no output"
	}
	return l.line
}

// errNoReplica is returned by the front when no replica is ready.
var errNoReplica = errors.New("no ready replica")
