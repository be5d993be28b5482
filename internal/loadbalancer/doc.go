// Package loadbalancer is a small implementation of Services of type
// LoadBalancer for local clusters, in the way kind's cloud provider does it:
// each such Service gets an address of its own from the region's pool, and
// a proxy on that address forwards every TCP connection on each of the
// Service's ports to one of its ready endpoints (from its EndpointSlices),
// trying the next when a dial fails. The address is written into
// status.loadBalancer.ingress with ipMode Proxy, which is where a cloud
// load balancer's address appears, so whatever reads Services in a real
// cloud (the Meridian agent among them) reads it here the same way.
//
// Pool addresses are loopback ones (127.0.0.0/8 is all local on Linux): a
// region's entry point is then reachable from this machine on the
// standard port of its own address, which is what a DNS answer alone needs,
// and from nowhere else, as with kind. Binding a port below 1024 needs root
// (or CAP_NET_BIND_SERVICE).
//
// No state is kept that a restart would lose: addresses already in
// Services' status are taken back into use at start.
package loadbalancer
