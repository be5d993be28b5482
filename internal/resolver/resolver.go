package resolver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"meridian.dev/meridian/internal/testbin"
)

// Options configure Start.
type Options struct {
	// Zone is the balancer's zone, such as "infer.meridian.local"; Unbound
	// sends every question in it to Upstream. Required.
	Zone string
	// Upstream is the balancer's DNS address, IP:port (UDP and TCP), such
	// as "127.0.0.1:5353". Unbound sends it ECS. Required.
	Upstream string
	// Forward makes the zone a forward zone (queries with RD set, as to
	// another resolver) instead of a stub zone (queries as to the
	// authoritative server a delegation names). Default false: stub.
	Forward bool
	// CacheMinTTL, when above zero, is Unbound's cache-min-ttl: answers
	// are cached, and handed out, for at least that long whatever their
	// TTL, as some public resolvers do with low TTLs. Whole seconds.
	// Default 0: the answers' own TTLs.
	CacheMinTTL time.Duration
	// TrustAnchors, when set, make Unbound validate DNSSEC with these
	// trust anchors: DNSKEY or DS records in presentation form, such as
	// the balancer zone's DNSKEY (validate.go). Default none: no
	// validation, as before.
	TrustAnchors []string
	// Verbosity is Unbound's verbosity, 0 to 5. Default 1 (operational
	// messages); 2 and up log queries and cache decisions.
	Verbosity int
	// Binary is the unbound executable. Default: testbin.Unbound
	// (.cache/bin/unbound from `make unbound`, else unbound on $PATH).
	Binary string
	// Log, when set, receives Unbound's log as it writes it. Start keeps
	// the last 64 KiB of it either way for its errors and Log method.
	Log io.Writer
	// StartTimeout bounds how long Start waits for Unbound to answer.
	// Default 15 s.
	StartTimeout time.Duration
}

// Resolver is a running Unbound. Stop it with Stop, or by ending the
// context given to Start.
type Resolver struct {
	addr netip.AddrPort
	dir  string
	cmd  *exec.Cmd
	log  *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, set before done is closed

	stopOnce sync.Once
}

// Start writes Unbound's configuration into a temporary directory, runs it
// on a free loopback port and returns once it answers over UDP and TCP.
// It stops when ctx ends or on Stop. A failure's error carries the end of
// Unbound's log.
func Start(ctx context.Context, o Options) (*Resolver, error) {
	if o.Zone == "" {
		return nil, errors.New("resolver: Options.Zone is required")
	}
	up, err := netip.ParseAddrPort(o.Upstream)
	if err != nil {
		return nil, fmt.Errorf("resolver: Options.Upstream must be IP:port: %w", err)
	}
	if o.Binary == "" {
		if o.Binary, err = testbin.Unbound(); err != nil {
			return nil, fmt.Errorf("resolver: %w", err)
		}
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 15 * time.Second
	}
	// Another process can take the port between freePort and Unbound's
	// bind; try a few.
	var lastErr error
	for range 5 {
		r, err := start(ctx, o, up)
		if err == nil {
			return r, nil
		}
		lastErr = err
		if !errors.Is(err, errBind) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

var errBind = errors.New("could not bind its port")

func start(ctx context.Context, o Options, up netip.AddrPort) (*Resolver, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("resolver: finding a free port: %w", err)
	}
	dir, err := os.MkdirTemp("", "meridian-unbound-")
	if err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(config(o, up, dir, port)), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("resolver: writing its configuration: %w", err)
	}
	r := &Resolver{
		addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port),
		dir:  dir,
		log:  &tailBuffer{max: 64 << 10},
		done: make(chan struct{}),
	}
	var out io.Writer = r.log
	if o.Log != nil {
		out = io.MultiWriter(r.log, o.Log)
	}
	r.cmd = exec.Command(o.Binary, "-d", "-c", conf)
	r.cmd.Dir = dir
	r.cmd.Stdout, r.cmd.Stderr = out, out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("resolver: running %s: %w", o.Binary, err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	if err := r.waitReady(ctx, o.StartTimeout); err != nil {
		r.Stop()
		if strings.Contains(r.log.String(), "could not open ports") {
			err = fmt.Errorf("%w: %w", errBind, err)
		}
		return nil, fmt.Errorf("resolver: unbound did not start on %s: %w\n%s", r.addr, err, r.log.String())
	}
	go func() {
		select {
		case <-ctx.Done():
			r.Stop()
		case <-r.done:
		}
	}()
	return r, nil
}

// config is Unbound's configuration; the package doc explains each choice.
func config(o Options, up netip.AddrPort, dir string, port uint16) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	verbosity := o.Verbosity
	if verbosity == 0 {
		verbosity = 1
	}
	p("server:")
	p("\tverbosity: %d", verbosity)
	p("\tinterface: 127.0.0.1")
	p("\tport: %d", port)
	p("\tdo-ip4: yes")
	p("\tdo-ip6: yes")
	p("\tdo-udp: yes")
	p("\tdo-tcp: yes")
	p("\tdo-daemonize: no")
	p("\tuse-systemd: no")
	p("\tchroot: \"\"")
	p("\tusername: \"\"")
	p("\tdirectory: %q", dir)
	p("\tpidfile: %q", filepath.Join(dir, "unbound.pid"))
	p("\tlogfile: \"\"")
	p("\tuse-syslog: no")
	p("\tlog-time-ascii: yes")
	p("\tnum-threads: 1")
	p("\tso-reuseport: no")
	p("\taccess-control: 127.0.0.0/8 allow")
	p("\taccess-control: ::1 allow")
	p("\tdo-not-query-localhost: no")
	p("\tmodule-config: %q", modules(o))
	for _, line := range validation(o) {
		p("\t%s", line)
	}
	p("\tsend-client-subnet: %s", up.Addr().Unmap())
	p("\tclient-subnet-always-forward: yes")
	p("\tmax-client-subnet-ipv4: 24")
	p("\tmax-client-subnet-ipv6: 56")
	p("\tinfra-host-ttl: 60")
	p("\tcache-min-ttl: %d", int(o.CacheMinTTL/time.Second))
	p("remote-control:")
	p("\tcontrol-enable: yes")
	p("\tcontrol-interface: %q", filepath.Join(dir, "control.sock"))
	p("\tcontrol-use-cert: no")
	kind, addr := "stub", "stub-addr"
	if o.Forward {
		kind, addr = "forward", "forward-addr"
	}
	p("%s-zone:", kind)
	p("\tname: %q", dns.Fqdn(o.Zone))
	p("\t%s: %s@%d", addr, up.Addr().Unmap(), up.Port())
	return b.String()
}

// freePort returns a loopback port free for both UDP and TCP just now.
func freePort() (uint16, error) {
	for range 20 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = u.Close()
		return uint16(port), nil
	}
	return 0, errors.New("no port free for both UDP and TCP")
}

// waitReady asks Unbound for localhost. (one of its built-in local zones,
// answered without any upstream) over UDP and TCP until both answer.
func (r *Resolver) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	q := new(dns.Msg)
	q.SetQuestion("localhost.", dns.TypeA)
	var lastErr error
	for _, proto := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: proto, Timeout: 300 * time.Millisecond}
		for {
			_, _, err := c.Exchange(q, r.addr.String())
			if err == nil {
				break
			}
			lastErr = err
			select {
			case <-r.done:
				return fmt.Errorf("it exited (%w)", r.err)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no answer over %s within %v: %w", proto, timeout, lastErr)
			}
		}
	}
	return nil
}

// Addr is where the resolver answers, the same loopback port for UDP and
// TCP.
func (r *Resolver) Addr() netip.AddrPort { return r.addr }

// Log returns the last 64 KiB of Unbound's log.
func (r *Resolver) Log() string { return r.log.String() }

// Stop ends Unbound (SIGTERM, then SIGKILL after 5 s), waits for it and
// removes its directory. It is safe to call more than once.
func (r *Resolver) Stop() {
	r.stopOnce.Do(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		_ = os.RemoveAll(r.dir)
	})
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
