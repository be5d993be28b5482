// Package endpoint decides which model endpoints Meridian may send
// requests to. Members publish the URLs of their models (ClusterReport
// status), and the hub and the balancer's HTTP front act on them: an
// endpoint that named the cloud's metadata service or the balancer's own
// loopback would let whoever controls a member aim client requests, and
// their credentials, at it (server-side request forgery).
//
// Check validates a URL as published; Control refuses, at dial time, an
// address a host name resolved to, so a name that resolves somewhere
// forbidden (DNS rebinding) is refused too.
//
// Always refused: schemes other than http and https, user info,
// unspecified addresses (0.0.0.0/8, ::), link-local addresses (169.254/16,
// fe80::/10, which hold most clouds' metadata services), the other
// metadata addresses (fd00:ec2::254, 100.100.100.200), multicast, and
// NAT64 addresses (64:ff9b::/96) embedding any of these.
// Loopback (127/8, ::1, "localhost") is refused unless Local is set: only a
// fleet on one machine (`meridian up`) publishes loopback endpoints.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// Policy says which endpoints are allowed.
type Policy struct {
	// Local allows loopback endpoints, for a fleet on one machine.
	Local bool
}

// metadata are cloud metadata services outside the link-local ranges
// (those inside them are refused with them).
var metadata = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// thisNetwork (0/8) and nat64 (the well-known NAT64 prefix, which embeds
// an IPv4 address) are checked by what they stand for.
var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
)

// CheckAddr returns why requests may not be sent to a, or nil.
func (p Policy) CheckAddr(a netip.Addr) error {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		if err := p.CheckAddr(netip.AddrFrom4([4]byte(b[12:]))); err != nil {
			return fmt.Errorf("%s embeds an IPv4 address (NAT64): %w", a, err)
		}
	}
	switch {
	case !a.IsValid():
		return errors.New("no address")
	case a.IsUnspecified() || thisNetwork.Contains(a):
		return fmt.Errorf("%s is unspecified (0.0.0.0/8, ::): it reaches the host itself", a)
	case a.IsLinkLocalUnicast():
		return fmt.Errorf("%s is link-local (where cloud metadata services live)", a)
	case a.IsMulticast():
		return fmt.Errorf("%s is multicast", a)
	case a.IsLoopback() && !p.Local:
		return fmt.Errorf("%s is loopback; only a fleet on one machine may publish loopback endpoints (--allow-local-endpoints)", a)
	}
	for _, m := range metadata {
		if a == m {
			return fmt.Errorf("%s is a cloud metadata service", a)
		}
	}
	return nil
}

// Check returns why a published endpoint URL may not be used, or nil. A
// host name is accepted here ("localhost" aside) and checked again at
// dial time by Control, where its addresses are known.
func (p Policy) Check(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("endpoint %q does not parse: %w", raw, err)
	}
	return p.CheckURL(u)
}

// CheckURL is Check for a parsed URL.
func (p Policy) CheckURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("endpoint %q: scheme %q is not http or https", u.Redacted(), u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("endpoint %q: user info is not allowed in an endpoint", u.Redacted())
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("endpoint %q has no host", u.Redacted())
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("endpoint %q: an address with a zone is link-local", u.Redacted())
		}
		if err := p.CheckAddr(a); err != nil {
			return fmt.Errorf("endpoint %q: %w", u.Redacted(), err)
		}
		return nil
	}
	if h := strings.TrimSuffix(strings.ToLower(host), "."); (h == "localhost" || strings.HasSuffix(h, ".localhost")) && !p.Local {
		return fmt.Errorf("endpoint %q: localhost is loopback; only a fleet on one machine may publish loopback endpoints (--allow-local-endpoints)", u.Redacted())
	}
	return nil
}

// Control is a net.Dialer Control function that refuses to connect to an
// address the policy forbids, whatever name resolved to it.
func (p Policy) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("endpoint address %q: %w", address, err)
	}
	if err := p.CheckAddr(ap.Addr()); err != nil {
		return fmt.Errorf("refusing to connect to an endpoint: %w", err)
	}
	return nil
}

// Dialer returns d (a zero net.Dialer when nil) with Control set to the
// policy's, refusing forbidden addresses before any packet is sent.
func (p Policy) Dialer(d *net.Dialer) *net.Dialer {
	out := &net.Dialer{}
	if d != nil {
		*out = *d
	}
	out.Control = p.Control
	return out
}

// Guard wraps a dial function whose sockets the policy cannot reach (a
// custom dialer): it checks the address connected to and closes the
// connection, before anything is written, when the policy forbids it.
func (p Policy) Guard(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		if perr == nil {
			perr = p.CheckAddr(ap.Addr())
		}
		if perr != nil {
			_ = c.Close()
			return nil, fmt.Errorf("refusing to send to %s: %w", addr, perr)
		}
		return c, nil
	}
}
