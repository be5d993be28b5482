package resolver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ClientOptions configure NewClient.
type ClientOptions struct {
	// Resolver is the recursive resolver to ask, such as Resolver.Addr().
	// Required.
	Resolver netip.AddrPort
	// Host is the hostname to resolve and to send as the Host header, such
	// as "sentiment.infer.meridian.local". Required.
	Host string
	// Subnet is the client's own ECS subnet, such as 193.0.0.0/24 for a
	// client near Amsterdam: every drill client lives on loopback, so it
	// says where it is the way a public resolver passes on the subnet of
	// the user behind it. Zero: no ECS (the resolver sends its own).
	Subnet netip.Prefix
	// Port is the TCP port to connect to at the answered address.
	// Required.
	Port int
	// Path is the request's path, such as "/analyze". Default "/".
	Path string
	// Method is the HTTP method. Default GET, or POST when Body is set.
	Method string
	// Body is sent with every request; nil sends none.
	Body []byte
	// Header is added to every request.
	Header http.Header
	// TLS, when set, makes the requests HTTPS, verified as this config
	// says against the Host (the name resolved), as a browser would.
	TLS *tls.Config
	// Timeout bounds one request as a whole: resolution, connection and
	// the whole answer. Default 5 s.
	Timeout time.Duration
	// ResolveTimeout bounds one question to the resolver (one try over
	// UDP, then TCP if the answer was truncated). Default 2 s, glibc's
	// stub resolver's per-try timeout of 5 s being longer than a drill's
	// requests.
	ResolveTimeout time.Duration
}

// Client is one user who reaches Host through DNS: it resolves Host
// through the recursive resolver (with its ECS subnet), keeps the answer
// for the TTL the resolver gave, and sends HTTP/1.1 requests straight to
// the answered address on Port. It is safe for concurrent use; concurrent
// requests that find the answer expired share one resolution.
//
// What it models, and why:
//
//   - The answer is cached for exactly its remaining TTL and never beyond,
//     as a browser's host cache (Chrome's, Firefox's) or an OS stub cache
//     (systemd-resolved, nscd) does. A TTL of 0 is not cached. A failed
//     resolution (SERVFAIL, timeout, no address) fails the request and is
//     not cached; the next request asks again.
//   - A connection that fails does NOT make it re-resolve before the TTL
//     ends: those caches evict on expiry (or a network change), not on a
//     failed connection. Like browsers and Go's net.Dialer, it tries the
//     answer's addresses in order and uses the first that connects; when
//     none does, the request fails, and so does every request until the
//     TTL ends. So a drill counts the failures of users whose cached
//     answer points at a dead region. (Java's default 30 s cache and
//     curl's 60 s one ignore the TTL; this client does not model them.)
//   - Connections are kept alive and reused, as HTTP libraries and
//     browsers do (a fresh TCP connection per request would add a
//     handshake to every latency), in a pool that belongs to one answer:
//     when a new answer names other addresses, the old pool's idle
//     connections are closed and new requests dial the new address;
//     requests in flight finish on theirs. Browsers keep using a live
//     keep-alive connection to the old address after the answer changes
//     (their pools are keyed by host name), so some real users stay on a
//     healthy old region longer than this; a drill measures where DNS
//     sends users, so this client follows the answer.
//
// Through Unbound (whole-second TTLs, TTL 0 during the last second) a
// client follows a changed answer no later than the TTL plus 1 s after the
// balancer changed it.
type Client struct {
	o   ClientOptions
	url string

	mu     sync.Mutex
	cur    *answer // nil before the first resolution
	flight *flight // the resolution in progress, if any
}

// answer is one resolution and the connection pool that belongs to it.
type answer struct {
	addrs     []netip.Addr
	expires   time.Time
	transport *http.Transport
}

type flight struct {
	done chan struct{}
	ans  *answer
	err  error
}

// Result is what one request saw.
type Result struct {
	// OK is true when a 2xx answer arrived in full.
	OK bool
	// Status is the HTTP status, 0 when none arrived.
	Status int
	// Cluster is the answer's X-Meridian-Cluster header, if any.
	Cluster string
	// Latency is from the start of Do to the end of the answer or the
	// failure, resolution included.
	Latency time.Duration
	// Addr is the address the request was sent to, or the last one tried
	// when no connection was made; zero when resolution failed.
	Addr netip.AddrPort
	// Resolved is true when this request waited for a resolution (the
	// cached answer had expired).
	Resolved bool
	// TTL is what was left of the answer's TTL when the request was sent
	// (0 for an answer with TTL 0, which is not cached).
	TTL time.Duration
	// Err says what failed; nil when OK, and for non-2xx answers too.
	Err error
}

// NewClient checks the options and returns a Client; it resolves nothing
// until the first request.
func NewClient(o ClientOptions) (*Client, error) {
	if !o.Resolver.IsValid() {
		return nil, errors.New("resolver client: ClientOptions.Resolver is required")
	}
	if o.Host == "" || o.Port <= 0 || o.Port > 65535 {
		return nil, errors.New("resolver client: ClientOptions.Host and Port are required")
	}
	if o.Subnet.IsValid() && !o.Subnet.Addr().Is4() {
		return nil, fmt.Errorf("resolver client: subnet %v: only IPv4 clients are modelled (A questions)", o.Subnet)
	}
	o.Subnet = o.Subnet.Masked()
	if o.Path == "" {
		o.Path = "/"
	}
	if o.Method == "" {
		o.Method = http.MethodGet
		if o.Body != nil {
			o.Method = http.MethodPost
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.ResolveTimeout <= 0 {
		o.ResolveTimeout = 2 * time.Second
	}
	host := strings.TrimSuffix(o.Host, ".")
	scheme := "http://"
	if o.TLS != nil {
		scheme = "https://"
	}
	return &Client{o: o, url: scheme + net.JoinHostPort(host, strconv.Itoa(o.Port)) + o.Path}, nil
}

// Do sends one request the way the package doc describes and reports it.
func (c *Client) Do(ctx context.Context) Result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	ans, resolved, err := c.lookup(ctx)
	res := Result{Resolved: resolved}
	if err != nil {
		res.Err = err
		res.Latency = time.Since(start)
		return res
	}
	res.TTL = max(0, time.Until(ans.expires))
	res.Status, res.Cluster, res.Addr, res.Err = c.send(ctx, ans)
	res.Latency = time.Since(start)
	res.OK = res.Err == nil && res.Status >= 200 && res.Status < 300
	if !res.Addr.IsValid() {
		res.Addr = netip.AddrPortFrom(ans.addrs[0], uint16(c.o.Port))
	}
	return res
}

// Close closes the idle connections of the current answer's pool.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		c.cur.transport.CloseIdleConnections()
	}
}

// send makes the request over ans's pool and returns the status, the
// answering cluster and the address connected to (or last tried).
func (c *Client) send(ctx context.Context, ans *answer) (int, string, netip.AddrPort, error) {
	var (
		mu   sync.Mutex
		addr netip.AddrPort
	)
	setAddr := func(a net.Addr) {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			mu.Lock()
			addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			mu.Unlock()
		}
	}
	trace := &httptrace.ClientTrace{
		ConnectDone: func(network, a string, _ error) {
			if ap, err := netip.ParseAddrPort(a); err == nil {
				setAddr(net.TCPAddrFromAddrPort(ap))
			}
		},
		GotConn: func(info httptrace.GotConnInfo) { setAddr(info.Conn.RemoteAddr()) },
	}
	var body io.Reader
	if c.o.Body != nil {
		body = bytes.NewReader(c.o.Body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), c.o.Method, c.url, body)
	if err != nil {
		return 0, "", netip.AddrPort{}, err
	}
	for k, vs := range c.o.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := ans.transport.RoundTrip(req)
	result := func() netip.AddrPort { mu.Lock(); defer mu.Unlock(); return addr }
	if err != nil {
		return 0, "", result(), err
	}
	defer func() { _ = resp.Body.Close() }()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, resp.Header.Get("X-Meridian-Cluster"), result(), fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, resp.Header.Get("X-Meridian-Cluster"), result(), nil
}

// lookup returns the cached answer while its TTL lasts, else resolves,
// sharing one resolution among concurrent callers.
func (c *Client) lookup(ctx context.Context) (*answer, bool, error) {
	c.mu.Lock()
	if c.cur != nil && time.Now().Before(c.cur.expires) {
		ans := c.cur
		c.mu.Unlock()
		return ans, false, nil
	}
	f := c.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		c.flight = f
		go c.resolveFor(context.WithoutCancel(ctx), f)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.ans, true, f.err
	case <-ctx.Done():
		return nil, true, fmt.Errorf("resolving %s: %w", c.o.Host, ctx.Err())
	}
}

// resolveFor resolves, installs the answer and its pool, and ends f.
func (c *Client) resolveFor(ctx context.Context, f *flight) {
	addrs, ttl, err := c.resolve(ctx)
	c.mu.Lock()
	if err == nil {
		ans := &answer{addrs: addrs, expires: time.Now().Add(ttl)}
		switch {
		case c.cur != nil && slices.Equal(c.cur.addrs, addrs):
			ans.transport = c.cur.transport // same addresses: keep the connections
		default:
			if c.cur != nil {
				c.cur.transport.CloseIdleConnections()
			}
			ans.transport = c.newTransport(addrs)
		}
		c.cur = ans
		f.ans = ans
	}
	f.err = err
	c.flight = nil
	c.mu.Unlock()
	close(f.done)
}

// resolve asks the resolver for Host's A records with the client's ECS
// and returns the addresses in the answer's order and the smallest TTL.
func (c *Client) resolve(ctx context.Context) ([]netip.Addr, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.ResolveTimeout)
	defer cancel()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(c.o.Host), dns.TypeA)
	q.SetEdns0(1232, false)
	if c.o.Subnet.IsValid() {
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{
			Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(c.o.Subnet.Bits()), Address: c.o.Subnet.Addr().AsSlice(),
		})
	}
	m, _, err := (&dns.Client{Net: "udp"}).ExchangeContext(ctx, q, c.o.Resolver.String())
	if err == nil && m.Truncated {
		m, _, err = (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, q, c.o.Resolver.String())
	}
	if err != nil {
		return nil, 0, fmt.Errorf("resolving %s: %w", c.o.Host, err)
	}
	if m.Rcode != dns.RcodeSuccess {
		return nil, 0, fmt.Errorf("resolving %s: %s", c.o.Host, dns.RcodeToString[m.Rcode])
	}
	var (
		addrs []netip.Addr
		ttl   = ^uint32(0)
	)
	for _, rr := range m.Answer {
		ttl = min(ttl, rr.Header().Ttl)
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A); ok {
				addrs = append(addrs, ip.Unmap())
			}
		}
	}
	if len(addrs) == 0 {
		return nil, 0, fmt.Errorf("resolving %s: no address in the answer", c.o.Host)
	}
	return addrs, time.Duration(ttl) * time.Second, nil
}

// newTransport is a keep-alive pool whose connections go to addrs, tried
// in order, whatever host the request names.
func (c *Client) newTransport(addrs []netip.Addr) *http.Transport {
	var d net.Dialer
	port := uint16(c.o.Port)
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var errs []error
			for _, a := range addrs {
				conn, err := d.DialContext(ctx, network, netip.AddrPortFrom(a, port).String())
				if err == nil {
					return conn, nil
				}
				errs = append(errs, err)
				if ctx.Err() != nil {
					break
				}
			}
			return nil, errors.Join(errs...)
		},
		TLSClientConfig:     c.o.TLS.Clone(),
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}
