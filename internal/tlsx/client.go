package tlsx

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// ServerName is the name (or IP address) verified in every server's
	// certificate and sent as SNI, whatever address is dialed — for a
	// client that dials an address its server's certificate does not
	// name. Empty: the host dialed.
	ServerName string
}

// Client makes the tls.Config of each connection a client opens: the
// server verified against the Reloader's current CA bundle (the system's
// roots when it has none) and its name, and the Reloader's current
// certificate presented when the server asks for one.
type Client struct {
	r        *Reloader
	o        ClientOptions
	sessions atomic.Pointer[sessions]
}

// sessions is the session cache of the certificate set it was made for:
// a new set starts a new cache, so that the next connection presents the
// new certificate instead of resuming as the old one.
type sessions struct {
	set   *material
	cache tls.ClientSessionCache
}

// NewClient returns a Client reading r.
func NewClient(r *Reloader, o ClientOptions) *Client { return &Client{r: r, o: o} }

func (c *Client) cache(set *material) tls.ClientSessionCache {
	if s := c.sessions.Load(); s != nil && s.set == set {
		return s.cache
	}
	s := &sessions{set: set, cache: tls.NewLRUClientSessionCache(0)}
	c.sessions.Store(s)
	return s.cache
}

// Config is the tls.Config for one connection to host (the host part of
// the address dialed: a DNS name or an IP address). Make one per
// connection: it carries the CA bundle current when it was made, so
// rotations reach the next connection. Connections resume TLS sessions
// (a cheaper handshake) until the Reloader's set changes.
func (c *Client) Config(host string) *tls.Config {
	name := c.o.ServerName
	if name == "" {
		name = host
	}
	set := c.r.cur.Load()
	return &tls.Config{
		MinVersion: MinVersion,
		ServerName: name,
		RootCAs:    set.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if set.cert == nil {
				return &tls.Certificate{}, nil // none to present
			}
			return set.cert, nil
		},
		ClientSessionCache: c.cache(set),
	}
}

// NewTransport is an http.Transport (http.DefaultTransport's settings)
// whose HTTPS connections use c, negotiating HTTP/2 when the server
// offers it and HTTP/1.1 otherwise. It does not use proxies from the
// environment: the fleet's mutual-TLS peers are reached directly. Set
// TLSNextProto to an empty map for HTTP/1.1 only (one connection per
// request in flight, as a load test against a front may want).
func NewTransport(c *Client) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.ForceAttemptHTTP2 = true
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("dialing %s: %w", addr, err)
		}
		cfg := c.Config(host)
		cfg.NextProtos = []string{"h2", "http/1.1"}
		if t.TLSNextProto != nil && t.TLSNextProto["h2"] == nil {
			cfg.NextProtos = []string{"http/1.1"}
		}
		d := &tls.Dialer{NetDialer: dialer, Config: cfg}
		return d.DialContext(ctx, network, addr)
	}
	return t
}
