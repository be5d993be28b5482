package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"time"
)

// Config is the zone a Server answers for and how it answers. Zero values
// of the optional fields take the defaults named in their comments; New
// validates and defaults the Config once, apart from the request path.
type Config struct {
	// Zone is the apex of the served zone, e.g. "infer.example.com." (the
	// trailing dot is added if missing; the name is lower-cased). Required.
	Zone string

	// NS names the zone's name servers, in the order they are returned for
	// the NS query at the apex. At least one is required.
	NS []string

	// Glue gives addresses for name servers whose names lie inside Zone.
	// They are returned as additional records with the NS answer and
	// answer A/AAAA queries for those names. Every in-zone NS name needs
	// glue; glue for other names is an error.
	Glue map[string][]netip.Addr

	// SOA is the zone's start-of-authority record.
	SOA SOA

	// DefaultTTL is the TTL, in seconds, of steered answers whose Answer.TTL
	// is zero and of the SOA record in SOA answers. Default 30.
	DefaultTTL uint32

	// NSTTL is the TTL, in seconds, of the NS records and their glue.
	// Default 3600.
	NSTTL uint32

	// RRL limits responses per client network over UDP. It is on by
	// default (the zero value takes production defaults); RRL.Off turns it
	// off.
	RRL RRL

	// DNSSEC, when it names keys, signs the zone online (dnssec.go). The
	// zero value serves the zone unsigned.
	DNSSEC DNSSEC

	// MaxUDPSize is the largest UDP response, in bytes, the server sends
	// and advertises in its OPT record; a client's smaller EDNS buffer size
	// wins, and clients without EDNS get 512. Default 1232 (the DNS Flag
	// Day 2020 value, which avoids IP fragmentation). At least 512.
	MaxUDPSize uint16

	// TCPIdleTimeout closes a TCP connection that sends no query for this
	// long. Default 10s.
	TCPIdleTimeout time.Duration

	// UDPSockets is how many UDP sockets share the port (SO_REUSEPORT);
	// the kernel spreads clients over them by address and port. Default
	// GOMAXPROCS.
	UDPSockets int
	// UDPWorkers is how many goroutines read and answer each UDP socket
	// (for one busy client, which always lands on one socket). Default 2.
	UDPWorkers int
}

// SOA holds the fields of the zone's SOA record (RFC 1035 section 3.3.13).
type SOA struct {
	// MName is the primary name server. Default: the first NS.
	MName string
	// RName is the responsible mailbox in domain form. Default:
	// "hostmaster.<zone>".
	RName string
	// Serial is the zone serial. Default 1.
	Serial uint32
	// Refresh, Retry and Expire are the secondary timers, in seconds.
	// Defaults 3600, 600 and 604800.
	Refresh, Retry, Expire uint32
	// Minimum is the negative-caching TTL in seconds (RFC 2308): NXDOMAIN
	// and NODATA answers carry the SOA with TTL min(DefaultTTL, Minimum).
	// Default 30.
	Minimum uint32
}

// RRL configures response rate limiting, as BIND's and Knot's: each
// client network (the /24 of an IPv4 source, the /56 of an IPv6 source —
// the resolver's address, never the ECS address) gets a token bucket of
// ResponsesPerSecond holding up to Burst. A response without a token is
// dropped, except that every Slip-th one is sent truncated (TC set, no
// records) so that a real client retries over TCP, which is not rate
// limited. Limited responses still draw on the bucket, down to a debt of
// Window's worth of responses, so a network that keeps flooding stays
// limited until its rate over Window falls below ResponsesPerSecond. This
// blunts reflection and amplification attacks that spoof a victim's
// address. The zero value is on with the defaults below.
type RRL struct {
	// Off disables rate limiting (for benchmarks and debugging only: an
	// authoritative server without it is an amplifier for anyone who can
	// spoof a source address).
	Off bool
	// ResponsesPerSecond per client network. Default 100.
	ResponsesPerSecond float64
	// Burst is the bucket size. Default: one second's worth
	// (ResponsesPerSecond, at least 1).
	Burst int
	// Window is how long a flood is remembered (BIND's window): the bucket
	// goes at most ResponsesPerSecond × Window into debt. Default 15s.
	Window time.Duration
	// Slip sends every Slip-th limited response truncated instead of
	// dropping it: 1 slips every one, 2 every other. 0 means the default,
	// 2; a negative value never slips.
	Slip int
	// TableSize bounds the number of client networks tracked; the least
	// recently seen is forgotten first. Default 65536.
	TableSize int
	// IPv4PrefixLen and IPv6PrefixLen size the client network. Defaults 24
	// and 56.
	IPv4PrefixLen, IPv6PrefixLen int
	// Exempt lists networks never rate limited (monitoring, or resolvers
	// known to send more than ResponsesPerSecond). Default none.
	Exempt []netip.Prefix
}

// Defaults for Config.
const (
	DefaultTTL            = 30
	DefaultNSTTL          = 3600
	DefaultMaxUDPSize     = 1232
	DefaultTCPIdleTimeout = 10 * time.Second
	DefaultRRLTableSize   = 65536
	DefaultRRLRate        = 100
	DefaultRRLWindow      = 15 * time.Second
	DefaultRRLSlip        = 2
	minUDPSize            = 512
)

// withDefaults validates c and returns it with defaults filled in and
// names canonicalised (lower-case, fully qualified).
func (c Config) withDefaults() (Config, error) {
	var errs []error
	c.Zone = canonical(c.Zone)
	if c.Zone == "" || c.Zone == "." {
		errs = append(errs, errors.New("zone is required"))
	} else if !isDomainName(c.Zone) {
		errs = append(errs, fmt.Errorf("zone %q is not a domain name", c.Zone))
	}
	if len(c.NS) == 0 {
		errs = append(errs, errors.New("at least one NS is required"))
	}
	ns := make([]string, 0, len(c.NS))
	for _, n := range c.NS {
		n = canonical(n)
		if !isDomainName(n) || n == "." {
			errs = append(errs, fmt.Errorf("NS %q is not a domain name", n))
			continue
		}
		ns = append(ns, n)
	}
	c.NS = ns
	glue := make(map[string][]netip.Addr, len(c.Glue))
	for n, addrs := range c.Glue {
		n = canonical(n)
		if !contains(c.NS, n) || !isSubDomain(c.Zone, n) {
			errs = append(errs, fmt.Errorf("glue for %q, which is not an in-zone NS", n))
			continue
		}
		for _, a := range addrs {
			if !a.IsValid() {
				errs = append(errs, fmt.Errorf("glue for %q: invalid address", n))
			}
		}
		glue[n] = append(glue[n], addrs...)
	}
	for _, n := range c.NS {
		if c.Zone != "" && isSubDomain(c.Zone, n) && len(glue[n]) == 0 {
			errs = append(errs, fmt.Errorf("NS %q is inside the zone and needs glue", n))
		}
	}
	c.Glue = glue

	if c.SOA.MName == "" && len(c.NS) > 0 {
		c.SOA.MName = c.NS[0]
	}
	c.SOA.MName = canonical(c.SOA.MName)
	if c.SOA.RName == "" {
		c.SOA.RName = "hostmaster." + c.Zone
	}
	c.SOA.RName = canonical(c.SOA.RName)
	for _, n := range []string{c.SOA.MName, c.SOA.RName} {
		if !isDomainName(n) {
			errs = append(errs, fmt.Errorf("SOA name %q is not a domain name", n))
		}
	}
	setDefault(&c.SOA.Serial, 1)
	setDefault(&c.SOA.Refresh, 3600)
	setDefault(&c.SOA.Retry, 600)
	setDefault(&c.SOA.Expire, 604800)
	setDefault(&c.SOA.Minimum, 30)
	setDefault(&c.DefaultTTL, DefaultTTL)
	setDefault(&c.NSTTL, DefaultNSTTL)
	setDefault(&c.MaxUDPSize, DefaultMaxUDPSize)
	if c.MaxUDPSize < minUDPSize {
		errs = append(errs, fmt.Errorf("MaxUDPSize %d is below %d", c.MaxUDPSize, minUDPSize))
	}
	setDefault(&c.TCPIdleTimeout, DefaultTCPIdleTimeout)
	setDefault(&c.UDPSockets, runtime.GOMAXPROCS(0))
	setDefault(&c.UDPWorkers, 2)
	if c.UDPSockets < 0 || c.UDPWorkers < 0 {
		errs = append(errs, fmt.Errorf("UDPSockets %d and UDPWorkers %d must be positive", c.UDPSockets, c.UDPWorkers))
	}

	errs = append(errs, c.RRL.withDefaults()...)
	var err error
	if c.DNSSEC, err = c.DNSSEC.withDefaults(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("dns config: %w", err)
	}
	return c, nil
}

// withDefaults fills in r's defaults and returns what is out of range.
func (r *RRL) withDefaults() []error {
	if r.Off {
		return nil
	}
	var errs []error
	if r.ResponsesPerSecond < 0 {
		errs = append(errs, errors.New("RRL.ResponsesPerSecond is negative (set RRL.Off to turn rate limiting off)"))
	}
	setDefault(&r.ResponsesPerSecond, DefaultRRLRate)
	setDefault(&r.Burst, max(1, int(r.ResponsesPerSecond)))
	setDefault(&r.Window, DefaultRRLWindow)
	setDefault(&r.Slip, DefaultRRLSlip)
	setDefault(&r.TableSize, DefaultRRLTableSize)
	setDefault(&r.IPv4PrefixLen, 24)
	setDefault(&r.IPv6PrefixLen, 56)
	if r.Burst < 0 || r.Window < 0 || r.TableSize < 0 || r.IPv4PrefixLen < 0 || r.IPv4PrefixLen > 32 ||
		r.IPv6PrefixLen < 0 || r.IPv6PrefixLen > 128 {
		errs = append(errs, errors.New("RRL: burst, window, table size and prefix lengths must be in range (prefixes 0-32 and 0-128)"))
	}
	for _, p := range r.Exempt {
		if !p.IsValid() {
			errs = append(errs, errors.New("RRL.Exempt holds an invalid prefix"))
		}
	}
	return errs
}

func canonical(name string) string {
	if name == "" {
		return ""
	}
	return strings.ToLower(fqdn(name))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
