package glbfixture

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Proc is a child process the benchmark started: a peer (pdns_server,
// coredns, haproxy), a balancer or a backend. Its output goes to a log
// file, quoted when it fails.
type Proc struct {
	Name string
	Log  string

	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	meant atomic.Bool // stopped or killed on purpose
}

// Start runs bin with args; its output goes to <dir>/<name>.log. The
// child is killed if the benchmark dies without stopping it (Pdeathsig),
// so no peer outlives a crashed run holding its ports.
func Start(dir, name string, env []string, bin string, args ...string) (*Proc, error) {
	log := filepath.Join(dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: log, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited says whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop asks the process to end (SIGTERM) and kills it after 5 s.
func (p *Proc) Stop() {
	if p == nil || p.Exited() {
		return
	}
	p.meant.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.Kill()
	}
}

// Kill ends the process at once (SIGKILL), as a crash would, and waits.
func (p *Proc) Kill() {
	if p == nil || p.Exited() {
		return
	}
	p.meant.Store(true)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Failure describes a process that ended early, with its log's tail.
func (p *Proc) Failure() error {
	b, _ := os.ReadFile(p.Log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	err := p.err
	if err == nil {
		err = errors.New("exit status 0")
	}
	return fmt.Errorf("%s exited (%w); end of %s:\n%s", p.Name, err, p.Log, bytes.TrimSpace(b))
}

// Stack stops what was started, last first; Stop is safe to call twice.
type Stack struct {
	mu    sync.Mutex
	procs []*Proc
	funcs []func()
}

// Add registers a process to stop.
func (s *Stack) Add(p *Proc) *Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.funcs = append(s.funcs, p.Stop)
	s.procs = append(s.procs, p)
	return p
}

// Defer registers a function to call at Stop.
func (s *Stack) Defer(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.funcs = append(s.funcs, f)
}

// Check returns the Failure of the first registered process that has
// ended without being stopped or killed on purpose, if any: a peer that
// died mid-run makes its figures meaningless.
func (s *Stack) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		if p.Exited() && !p.meant.Load() {
			return p.Failure()
		}
	}
	return nil
}

// Stop runs the registered stops in reverse order.
func (s *Stack) Stop() {
	s.mu.Lock()
	funcs := s.funcs
	s.funcs, s.procs = nil, nil
	s.mu.Unlock()
	for i := len(funcs) - 1; i >= 0; i-- {
		funcs[i]()
	}
}

// FreePort finds a port that is free for both TCP and UDP on every one of
// addrs (DNS servers take both; ifportup needs one port on all cluster
// addresses). It is released before returning, so a process started right
// after can bind it.
func FreePort(addrs ...netip.Addr) (int, error) {
	for range 50 {
		first, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(addrs[0], 0)))
		if err != nil {
			return 0, err
		}
		port := first.Addr().(*net.TCPAddr).Port
		ok := true
		var held []interface{ Close() error }
		held = append(held, first)
		for i, a := range addrs {
			ap := netip.AddrPortFrom(a, uint16(port))
			if i > 0 {
				t, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
				if err != nil {
					ok = false
					break
				}
				held = append(held, t)
			}
			u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
			if err != nil {
				ok = false
				break
			}
			held = append(held, u)
		}
		for _, h := range held {
			_ = h.Close()
		}
		if ok {
			return port, nil
		}
	}
	return 0, errors.New("no port free on every address")
}

// WaitFor polls cond every 100 ms until it is true, a process of s dies,
// or timeout passes.
func (s *Stack) WaitFor(what string, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if perr := s.Check(); perr != nil {
			return fmt.Errorf("waiting for %s: %w", what, perr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %w", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
