package loadbalancer

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// dialTimeout bounds one attempt to reach an endpoint; a dead pod whose
// address drops packets costs this much before the next is tried.
const dialTimeout = 2 * time.Second

// proxy forwards the connections of one address and port to the ready
// endpoints, round robin, trying each in turn until one answers.
type proxy struct {
	ln      net.Listener
	log     *slog.Logger
	targets atomic.Pointer[[]string]
	next    atomic.Uint64
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
}

func listen(at netip.AddrPort, log *slog.Logger) (*proxy, error) {
	ln, err := net.Listen("tcp", at.String())
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, log: log.With("address", at.String()), conns: map[net.Conn]struct{}{}}
	p.targets.Store(&[]string{})
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *proxy) setTargets(t []string) { p.targets.Store(&t) }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.log.Warn("load balancer accept", "err", err)
			}
			return
		}
		p.track(c, true)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.track(c, false)
			p.forward(c)
		}()
	}
}

func (p *proxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

// forward relays c to the first endpoint that accepts a connection; with
// none ready, or none answering, c is closed.
func (p *proxy) forward(c net.Conn) {
	defer func() { _ = c.Close() }()
	targets := *p.targets.Load()
	start := p.next.Add(1)
	for i := range targets {
		t := targets[(int(start)+i)%len(targets)]
		up, err := net.DialTimeout("tcp", t, dialTimeout)
		if err != nil {
			p.log.Debug("endpoint did not answer; trying the next", "endpoint", t, "err", err)
			continue
		}
		p.track(up, true)
		defer p.track(up, false)
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(up, c)
			if tc, ok := up.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			close(done)
		}()
		_, _ = io.Copy(c, up)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		<-done
		_ = up.Close()
		return
	}
}

// close stops accepting and ends the connections in flight.
func (p *proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
