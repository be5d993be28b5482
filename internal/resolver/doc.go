// Package resolver puts a real recursive resolver between drill clients
// and the global balancer, and offers a client that follows DNS through it
// the way users' browsers and HTTP libraries do.
//
// Failover drills count the users who reach a cluster through DNS. Those
// users never ask the balancer themselves: a recursive resolver (their
// ISP's, or a public one) asks it, passes their subnet on as EDNS Client
// Subnet (ECS), caches each answer per subnet for its TTL, and their
// machine caches the answer again and connects straight to the address.
// Start runs that resolver; Client is that user.
//
// # The resolver
//
// Start runs Unbound 1.17.1 as Debian 12 ships it (package unbound
// 1.17.1-2+deb12u4, built with --enable-subnet; `make unbound` fetches it
// and the libraries it links against, pinned in scripts/unbound.lock, into
// .cache/bin/unbound, where internal/testbin.Unbound finds it). It runs
// unprivileged and in the foreground (-d), with its configuration, pid
// file, control socket and cache in a temporary directory of its own, on a
// free loopback port for UDP and TCP. The configuration Start writes:
//
//	server:
//	  interface: 127.0.0.1, port: the free port, do-udp, do-tcp: yes
//	  do-daemonize: no, use-systemd: no, chroot: "", username: ""
//	  directory, pidfile: the temporary directory; logfile: "" (stderr), use-syslog: no
//	  num-threads: 1, so-reuseport: no
//	  access-control: 127.0.0.0/8 allow, ::1 allow
//	  do-not-query-localhost: no          the balancer listens on loopback
//	  module-config: "subnetcache iterator"
//	  send-client-subnet: the balancer's IP
//	  client-subnet-always-forward: yes   a client's own ECS is forwarded
//	  max-client-subnet-ipv4: 24, max-client-subnet-ipv6: 56 (the defaults)
//	  infra-host-ttl: 60
//	  cache-min-ttl: Options.CacheMinTTL (0: answers' own TTLs)
//	remote-control:
//	  control-enable: yes, control-interface: a Unix socket in the directory, control-use-cert: no
//	stub-zone (forward-zone with Options.Forward):
//	  name: Options.Zone, stub-addr (forward-addr): Options.Upstream as IP@port
//
// The balancer's zone is a stub zone: Unbound asks the balancer as it
// would the authoritative server a delegation names (RD clear), without
// walking down from the root. Unbound adds ECS only for upstreams listed
// in send-client-subnet, truncated to /24 (IPv4) or /56 (IPv6); with
// client-subnet-always-forward a query that already carries ECS keeps the
// client's subnet, which is how drill clients, all on loopback, say where
// they are (a client near Amsterdam sends 193.0.0.0/24), the way a public
// resolver passes on the subnet of the user behind it. A query without
// ECS gets the querier's own subnet (127.0.0.0/24). The subnet cache
// keeps each answer for the scope the balancer echoed, so two subnets get
// their own answers, and a repeated question within the TTL is answered
// from the cache with the remaining TTL. Without the validator module
// nothing is DNSSEC-validated (the balancer's zone is unsigned), and no
// root hints or trust anchor are needed. A short infra-host-ttl keeps
// Unbound from remembering a restarted balancer's timeouts for its default
// 15 minutes.
//
// Unbound counts TTLs in whole seconds and hands out a TTL of 0 during the
// last one, so an answer leaves its cache no later than TTL + 1 s after
// the balancer gave it.
//
// When the balancer does not answer, Unbound 1.17 keeps retrying it with
// a growing timeout (it has no discard-timeout yet) and answers nothing
// for well over 40 s (measured: nothing within 40 s, three times over).
// Clients see their own timeout as an error (or a SERVFAIL, where Unbound
// gives one); their cached answers live on until their TTL ends.
//
// # The client
//
// Client resolves one hostname through the resolver, caches the answer
// for its TTL, and sends HTTP requests straight to the answered address;
// see its doc comment for which client behaviour it models.
package resolver
