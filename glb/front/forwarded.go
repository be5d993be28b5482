package front

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ForwardedFor says which X-Forwarded-For entries the front believes.
// The zero value believes none: the client is the connection's peer, and
// whatever X-Forwarded-For a client sends is dropped, never forwarded.
//
// The header is read from the right, the end the trusted proxies wrote;
// its left end is whatever the client chose to send and is never
// believed on its own. The client address is the entry just left of the
// trusted hops.
type ForwardedFor struct {
	// TrustedHops is how many proxies in front of this one are trusted,
	// the immediate peer included, as Envoy's xff_num_trusted_hops: with
	// 1, the client is the rightmost entry (what the peer saw); with 2,
	// the one left of it. When the header has fewer entries the leftmost
	// is taken: the outermost trusted proxy wrote it. Without
	// TrustedProxies, every peer counts as a trusted proxy: set that only
	// when clients cannot reach the front but through those proxies.
	TrustedHops int
	// TrustedProxies are the networks of the trusted proxies. A request
	// from a peer outside them has its X-Forwarded-For ignored. From a
	// trusted peer the header is walked from the right past every entry
	// inside them (at most TrustedHops-1 entries when TrustedHops is set)
	// and the first entry outside them is the client.
	TrustedProxies []netip.Prefix
}

// Enabled reports whether any X-Forwarded-For entry can be believed.
func (ff ForwardedFor) Enabled() bool { return ff.TrustedHops > 0 || len(ff.TrustedProxies) > 0 }

// trusts reports whether a is one of the trusted proxies.
func (ff ForwardedFor) trusts(a netip.Addr) bool {
	if len(ff.TrustedProxies) == 0 {
		return ff.TrustedHops > 0
	}
	for _, p := range ff.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// chain returns the addresses of the request's trusted forwarding chain,
// client first and the connection's peer last: only the entries the
// policy believes, so a spoofed left end is dropped. A peer that is not a
// trusted proxy, or an entry at the client's place that is not an
// address, leaves the peer alone. It returns nil when the peer's address
// is unknown.
func (ff ForwardedFor) chain(r *http.Request) []netip.Addr {
	peer, ok := peerAddr(r.RemoteAddr)
	if !ok {
		return nil
	}
	if !ff.Enabled() || !ff.trusts(peer) {
		return []netip.Addr{peer}
	}
	entries := forwardedEntries(r.Header)
	if len(entries) == 0 {
		return []netip.Addr{peer}
	}
	// Trusted entries beyond the peer: the ones the inner trusted
	// proxies appended for the outer ones.
	limit := len(entries) - 1
	if ff.TrustedHops > 0 {
		limit = min(limit, ff.TrustedHops-1)
	}
	i := len(entries) - 1 // the client's index
	hops := []netip.Addr{peer}
	for n := 0; n < limit; n++ {
		a, ok := parseForwarded(entries[i])
		if !ok || (len(ff.TrustedProxies) > 0 && !ff.trusts(a)) {
			break
		}
		hops = append(hops, a)
		i--
	}
	client, ok := parseForwarded(entries[i])
	if !ok {
		return []netip.Addr{peer}
	}
	out := []netip.Addr{client}
	for j := len(hops) - 1; j >= 0; j-- {
		out = append(out, hops[j])
	}
	return out
}

// forwardedEntries are the comma-separated entries of every
// X-Forwarded-For field, in order.
func forwardedEntries(h http.Header) []string {
	var out []string
	for _, v := range h.Values("X-Forwarded-For") {
		for e := range strings.SplitSeq(v, ",") {
			out = append(out, strings.TrimSpace(e))
		}
	}
	return out
}

// parseForwarded reads one X-Forwarded-For entry: an address, with or
// without a port ("203.0.113.7", "203.0.113.7:4711", "[2001:db8::1]:80").
func parseForwarded(e string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(e); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(e); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// peerAddr is the address of a connection's remote end.
func peerAddr(remote string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

// setForwarded replaces every client-sent forwarding header of out
// (X-Forwarded-*, Forwarded, X-Real-Ip) with the front's own: the
// trusted chain as X-Forwarded-For, and the host and scheme the client
// asked for.
func setForwarded(out http.Header, r *http.Request, chain []netip.Addr) {
	for k := range out {
		if strings.HasPrefix(k, "X-Forwarded-") || k == "Forwarded" || k == "X-Real-Ip" {
			delete(out, k)
		}
	}
	if len(chain) > 0 {
		s := make([]string, len(chain))
		for i, a := range chain {
			s[i] = a.String()
		}
		out.Set("X-Forwarded-For", strings.Join(s, ", "))
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		out.Set("X-Forwarded-For", host)
	}
	out.Set("X-Forwarded-Host", r.Host)
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	out.Set("X-Forwarded-Proto", proto)
}
