// Package steer decides which cluster a user is sent to.
//
// Steering is data: a [Policy] (geo, latency, weighted or failover — the
// GlobalEndpoint API's SteeringPolicy values), the clusters behind a name as
// [Target]s with their health, ready replicas, headroom, weights and
// measured round-trip times, and the [Client] as the balancer sees it (where
// its subnet is, and a hash of that subnet). [Choose] answers one target for
// a DNS answer; [Rank] orders every usable target, best first, for the HTTP
// front's retries. Both are pure functions: the same inputs give the same
// answer on every balancer, so clients of one subnet land on one cluster
// wherever they ask.
//
// Every policy skips targets that are unhealthy, have no headroom, or have
// no ready replica and no activator to hold requests until one starts. A
// target of the latter kind that has one ([Target].Cold: a model scaled to
// zero) is usable but ranks after every warm one, whatever the policy: the
// policy orders the warm targets, then the cold ones, so a cold target is
// answered only when no warm one is usable, and spill never moves a client
// to it. Geo ranks by great-circle distance, latency by the round-trip
// time measured from this balancer's site, weighted by a weighted
// rendezvous hash of the client key (stable canary splits that move only the
// users they must when a target comes or goes), failover by the order of
// regions. A client without a location follows the failover order, then any
// usable target. When the best target's headroom falls below the policy's
// SpillThreshold, a growing share of clients — chosen by key, so the same
// ones — spill to the next best.
//
// [Health] turns a stream of probe and gossip observations into a verdict
// that does not flap: down after a few consecutive failures, up again only
// after a hold-down period without one.
package steer
