package dns

import "net/netip"

// Query is what the balancer asks a Steerer for one DNS question.
type Query struct {
	// Name is the queried name: lower-case, fully qualified (with the
	// trailing dot), always inside the served zone.
	Name string
	// Type is the query type: TypeA (1) or TypeAAAA (28).
	Type uint16
	// Client is the address to steer by: the EDNS Client Subnet address
	// when the query carries one with a non-zero source prefix, otherwise
	// the address of the resolver that sent the query.
	Client netip.Addr
	// ClientPrefix is how many leading bits of Client are meaningful: the
	// ECS source prefix, or 32 (IPv4) / 128 (IPv6) for a resolver address.
	ClientPrefix int
	// Resolver is the query's source address: the resolver that sent it
	// (over UDP spoofable, over TCP not). Client is the ECS address the
	// resolver vouches for, or Resolver itself; anything that trusts ECS
	// beyond steering one answer (counting demand, say) should check
	// Resolver first.
	Resolver netip.Addr
}

// Answer is a Steerer's reply for one Query.
type Answer struct {
	// Addrs are the addresses to answer with. Addresses of the wrong family
	// for the query type are ignored. An empty list means the name exists
	// but has no records of this type (NODATA).
	Addrs []netip.Addr
	// TTL of the answer in seconds; 0 means Config.DefaultTTL.
	TTL uint32
	// Scope is the ECS scope prefix length the answer depended on (RFC 7871
	// section 7.2.1): 0 when the answer is the same for every client.
	Scope int
}

// Query types a Steerer is asked about.
const (
	// TypeA is the IPv4 address record type.
	TypeA uint16 = 1
	// TypeAAAA is the IPv6 address record type.
	TypeAAAA uint16 = 28
)

// Steerer chooses the addresses a name resolves to for a client.
//
// Steer returns false when the name does not exist (the server answers
// NXDOMAIN unless the name exists for the other address type). It must be
// safe for concurrent use and should not block: it runs on the request path.
type Steerer interface {
	Steer(q Query) (Answer, bool)
}

// SteererFunc adapts a function to the Steerer interface.
type SteererFunc func(q Query) (Answer, bool)

// Steer calls f(q).
func (f SteererFunc) Steer(q Query) (Answer, bool) { return f(q) }
