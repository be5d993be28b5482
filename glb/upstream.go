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
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext, t.MaxIdleConnsPerHost = dial, 256
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
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("TLS with %s: %w", addr, err)
		}
		return tc, nil
	}
	return t
}
