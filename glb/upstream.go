package glb

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"

	"meridian.dev/meridian/internal/tlsx"
)

// dialFunc opens a connection, as net.Dialer.DialContext does.
type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// upstreamTransport is the transport of the front and the probes to the
// clusters' endpoints: connections opened by dial, and https:// ones
// made over it with c (mutual TLS: the balancer's client certificate,
// the clusters' CA; rotated files reach the next connection). HTTP/1.1,
// as the clusters' fronts are reached one request per connection in
// flight. c nil: https:// endpoints are verified against the system's
// roots and no client certificate is shown.
func upstreamTransport(dial dialFunc, c *tlsx.Client) *http.Transport {
	return newUpstreamTransport(dial, c, false)
}

// grpcUpstreamTransport is upstreamTransport for the front's gRPC calls:
// HTTP/2 only, h2 by ALPN to https:// endpoints and in the clear (h2c)
// to http:// ones.
func grpcUpstreamTransport(dial dialFunc, c *tlsx.Client) *http.Transport {
	return newUpstreamTransport(dial, c, true)
}

func newUpstreamTransport(dial dialFunc, c *tlsx.Client, h2 bool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext, t.MaxIdleConnsPerHost = dial, 256
	alpn := []string{"http/1.1"}
	if h2 {
		alpn = []string{"h2"}
		t.Protocols = new(http.Protocols)
		t.Protocols.SetHTTP2(true)
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	if c == nil {
		return t
	}
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("dialing %s: %w", addr, err)
		}
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := c.Config(host)
		cfg.NextProtos = alpn
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("TLS with %s: %w", addr, err)
		}
		return tc, nil
	}
	return t
}
