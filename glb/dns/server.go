package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Server is an authoritative DNS server for one zone, answering over UDP
// and TCP on the same port. Create it with New.
type Server struct {
	cfg     Config
	steerer Steerer
	metrics *metrics
	rrl     *rateLimiter
	signer  *signer // nil: the zone is served unsigned

	answers     *answerTable // the precomputed answers (fast.go)
	fastMetrics fastMetrics

	mu  sync.Mutex
	udp []*net.UDPConn // UDPSockets sockets sharing the port (SO_REUSEPORT)
	// udpSent counts the responses each UDP socket sent (by index), so a
	// test can see that every socket answers.
	udpSent []atomic.Uint64
	tcp     *net.TCPListener
	conns   map[net.Conn]struct{}
	closing bool
	bound   chan struct{} // closed once the sockets are bound
	stopped chan struct{} // closed when every serving goroutine has returned
}

// New validates cfg and returns a Server that asks steerer for addresses
// and registers its metrics on reg (nil: not registered).
func New(cfg Config, steerer Steerer, reg prometheus.Registerer) (*Server, error) {
	if steerer == nil {
		return nil, errors.New("dns: a Steerer is required")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	sg, err := newSigner(c.DNSSEC, c.Zone, c.NSTTL)
	if err != nil {
		return nil, err
	}
	rrl := newRateLimiter(c.RRL, time.Now)
	m, err := newMetrics(reg, func() float64 { return float64(rrl.len()) })
	if err != nil {
		return nil, fmt.Errorf("dns: registering metrics: %w", err)
	}
	return &Server{
		cfg:         c,
		steerer:     steerer,
		metrics:     m,
		rrl:         rrl,
		signer:      sg,
		answers:     &answerTable{},
		fastMetrics: newFastMetrics(m),
		conns:       map[net.Conn]struct{}{},
		bound:       make(chan struct{}),
		stopped:     make(chan struct{}),
	}, nil
}

// ListenAndServe binds UDP and TCP on addr (host:port; port 0 picks a free
// port shared by both) and serves until ctx is done or Shutdown is called.
// It returns nil after a graceful stop.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if err := s.listen(addr); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(sctx)
	})
	defer stop()

	var wg sync.WaitGroup
	for i, conn := range s.udp {
		for range s.cfg.UDPWorkers {
			wg.Go(func() { s.serveUDP(conn, &s.udpSent[i]) })
		}
	}
	wg.Go(s.serveTCP)
	wg.Wait()
	close(s.stopped)
	return nil
}

// listen binds both sockets, retrying when port 0 gave TCP a port whose
// UDP twin is taken.
func (s *Server) listen(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.tcp != nil {
		return errors.New("dns: server already started or shut down")
	}
	var lastErr error
	for range 10 {
		tcpAddr, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			return fmt.Errorf("dns: resolving %q: %w", addr, err)
		}
		tl, err := net.ListenTCP("tcp", tcpAddr)
		if err != nil {
			return fmt.Errorf("dns: listening on tcp %q: %w", addr, err)
		}
		bound := tl.Addr().(*net.TCPAddr)
		ucs, err := listenUDP(bound.AddrPort(), s.cfg.UDPSockets)
		if err != nil {
			_ = tl.Close()
			lastErr = err
			if tcpAddr.Port != 0 {
				break
			}
			continue
		}
		s.tcp, s.udp, s.udpSent = tl, ucs, make([]atomic.Uint64, len(ucs))
		close(s.bound)
		return nil
	}
	return fmt.Errorf("dns: listening on udp %q: %w", addr, lastErr)
}

// Addr is the bound address (the same port for UDP and TCP); it blocks
// until ListenAndServe has bound its sockets or ctx is done.
func (s *Server) Addr(ctx context.Context) (netip.AddrPort, error) {
	select {
	case <-s.bound:
	case <-ctx.Done():
		return netip.AddrPort{}, ctx.Err()
	}
	return s.tcp.Addr().(*net.TCPAddr).AddrPort(), nil
}

// UDPAddr and TCPAddr are the bound sockets' addresses, nil before bind.
func (s *Server) UDPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return nil
	}
	return s.udp[0].LocalAddr()
}

// TCPAddr is the bound TCP listener's address, nil before bind.
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// listenUDP binds n UDP sockets to addr with SO_REUSEPORT, so the kernel
// spreads clients (by their address and port) over them and the reads and
// writes of different clients no longer queue on one socket's locks.
// Only sockets of the same user can share the port.
func listenUDP(addr netip.AddrPort, n int) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	var out []*net.UDPConn
	for range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr.String())
		if err != nil {
			for _, c := range out {
				_ = c.Close()
			}
			return nil, err
		}
		out = append(out, pc.(*net.UDPConn))
	}
	return out, nil
}

// serveUDPPlain is one read loop on one socket, a datagram per system
// call (serveUDP where recvmmsg is not to be had). Its two buffers are its
// own: a query is read into one and, on the precomputed path, answered
// from the other, so a steady stream of steered queries allocates nothing.
func (s *Server) serveUDPPlain(conn *net.UDPConn, sent *atomic.Uint64) {
	buf := make([]byte, 65535)
	reply := make([]byte, s.cfg.MaxUDPSize)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.isClosing() {
				return
			}
			continue // transient (e.g. ICMP-induced) errors
		}
		if out := s.handleInto(buf[:n], protoUDP, from.Addr().Unmap(), reply); out != nil {
			if _, err := conn.WriteToUDPAddrPort(out, from); err == nil {
				sent.Add(1)
			}
		}
	}
}

func (s *Server) serveTCP() {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := s.tcp.AcceptTCP()
		if err != nil {
			if s.isClosing() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		wg.Go(func() { s.serveConn(c) })
	}
}

// serveConn answers length-prefixed messages on one TCP connection in
// order until the client closes it, goes idle, or the server shuts down.
func (s *Server) serveConn(c *net.TCPConn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	remote := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	var lenBuf [2]byte
	msgBuf := make([]byte, 65535)
	framed := make([]byte, 2+65535) // length prefix and any DNS message
	for {
		s.mu.Lock() // so Shutdown's deadline is not overwritten
		closing := s.closing
		if !closing {
			_ = c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		}
		s.mu.Unlock()
		if closing {
			return
		}
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		msg := msgBuf[:binary.BigEndian.Uint16(lenBuf[:])]
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		out := s.handleInto(msg, protoTCP, remote, framed[2:])
		if out == nil {
			return // nothing to say to a client sending garbage
		}
		binary.BigEndian.PutUint16(framed, uint16(len(out)))
		copy(framed[2:], out) // a no-op when the precomputed path wrote it there
		_ = c.SetWriteDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		if _, err := c.Write(framed[:2+len(out)]); err != nil {
			return
		}
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops accepting queries, closes idle TCP connections and waits
// for queries in flight to be answered, or for ctx to be done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	started := s.tcp != nil
	var errs []error
	for _, c := range s.udp {
		errs = append(errs, c.Close())
	}
	if s.tcp != nil {
		errs = append(errs, s.tcp.Close())
	}
	for c := range s.conns {
		// Wake readers; a query being answered still gets its reply.
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()

	if !started {
		return nil
	}
	select {
	case <-s.stopped:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("dns: shutdown: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}
