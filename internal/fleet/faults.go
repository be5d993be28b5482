package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"

	"meridian.dev/meridian/hub"
)

// This file is how drills and tests hurt a running fleet: a region dies,
// the hub dies, a region is partitioned from the rest. Nothing is told;
// every component must notice by itself.

// KillRegion crashes a local region as a lost data centre does, with no
// warning to anything in it: its agent and every replica (one SIGKILL of
// the whole process tree), its etcd and its API server (SIGKILL). Nothing
// drains; open connections are reset by the kernel and new ones refused.
func (f *Fleet) KillRegion(name string) error {
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	a, cp := f.agents[name], f.Members[name]
	if a == nil || cp == nil {
		return fmt.Errorf("no local region %q", name)
	}
	errs := []error{a.kill(), cp.Kill()}
	f.memberLinks[name].Cut()
	delete(f.agents, name)
	delete(f.Members, name)
	// Stop only cleans up now: the processes are gone.
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		<-a.done
		_ = cp.Stop()
	}()
	return errors.Join(errs...)
}

// BlackholeRegion loses a local region the other way a data centre is
// lost: its network goes silent. Every packet to or from its address is
// dropped (the region's processes run on, unreachable), so the hub's
// probes, the balancer's probes and front, gossip and clients all hang
// until their own timeouts. It needs root (nftables); Heal ends it.
func (f *Fleet) BlackholeRegion(name string) error {
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	host := f.regionHosts[name]
	if host == "" || f.Members[name] == nil {
		return fmt.Errorf("no local region %q", name)
	}
	if f.firewall == nil {
		return fmt.Errorf("blackholing region %s: %s", name, FirewallAvailable())
	}
	return f.firewall.cut(host)
}

// CutsGossip says whether Partition and BlackholeRegion drop every packet
// (gossip included), which needs root; without it a partition cuts the
// TCP links to the region only.
func (f *Fleet) CutsGossip() bool { return f.firewall != nil }

// KillHub takes the hub down: its controllers stop and its API server
// becomes unreachable to the balancer. The regions, their agents and
// replicas, and the balancer keep running; the hub's etcd keeps its state,
// as a hub restarted on the same storage would.
func (f *Fleet) KillHub() error {
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	if f.stopHub == nil {
		return errors.New("the hub is already down")
	}
	f.stopHub()
	f.stopHub = nil
	f.hubLink.Cut()
	<-f.hubDone // one hub at a time: RestoreHub starts the next
	return nil
}

// RestoreHub brings the hub back after KillHub.
func (f *Fleet) RestoreHub() error {
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	if f.stopHub != nil {
		return errors.New("the hub is up")
	}
	if err := f.hubLink.Heal(); err != nil {
		return err
	}
	f.startHubLocked()
	return nil
}

func (f *Fleet) startHub() {
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	f.startHubLocked()
}

func (f *Fleet) startHubLocked() {
	ctx, cancel := context.WithCancel(f.runCtx)
	done := make(chan struct{})
	f.stopHub, f.hubDone = cancel, done
	opts := f.opts.Hub
	opts.Logger = f.opts.Logger.With("component", "hub")
	f.goRun(func() error {
		defer close(done)
		return hub.Run(ctx, f.Hub.Config, hub.NewProvider(f.Hub.Config, hub.MembersNamespace, opts.Logger), opts)
	})
}

// Partition cuts a local region off from the hub, the balancer and the
// other regions while it keeps running: as root every packet to or from
// its address is dropped (gossip, probes, the front, the hub's link), as a
// cut link does; without root the hub's link and the balancer's
// connections to it are closed and refused instead, and gossip goes on.
// Heal ends it.
func (f *Fleet) Partition(name string) error {
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	link, ok := f.memberLinks[name]
	host := f.regionHosts[name]
	if !ok || host == "" || f.Members[name] == nil {
		return fmt.Errorf("no local region %q", name)
	}
	if f.firewall != nil {
		return f.firewall.cut(host)
	}
	link.Cut()
	f.conns.cut(host)
	return nil
}

// Heal ends a partition or a blackhole.
func (f *Fleet) Heal(name string) error {
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	link, ok := f.memberLinks[name]
	if !ok {
		return fmt.Errorf("no local region %q", name)
	}
	if f.firewall != nil {
		return f.firewall.heal(f.regionHosts[name])
	}
	f.conns.heal(f.regionHosts[name])
	return link.Heal()
}

// dial is the balancer's dialer: the network as the balancer's site sees
// it, where a partitioned region cannot be reached and its open
// connections break.
func (f *Fleet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	unreachable := &net.OpError{Op: "dial", Net: network, Err: errors.New("network is unreachable (partitioned by a drill)")}
	if f.conns.isCut(host) {
		return nil, unreachable
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc, ok := f.conns.track(host, c)
	if !ok { // partitioned while dialling
		return nil, unreachable
	}
	return tc, nil
}

// connSet keeps the balancer's open connections by remote host, and the
// hosts cut off, so a partition breaks the first and refuses the second.
type connSet struct {
	mu     sync.Mutex
	m      map[string]map[*trackedConn]struct{}
	cutOff map[string]bool
}

type trackedConn struct {
	net.Conn
	set  *connSet
	host string
}

func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.m[c.host], c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}

// track registers c, or closes it and reports false when its host was
// cut off while it was being dialled.
func (s *connSet) track(host string, c net.Conn) (net.Conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cutOff[host] {
		_ = c.Close()
		return nil, false
	}
	if s.m == nil {
		s.m = map[string]map[*trackedConn]struct{}{}
	}
	if s.m[host] == nil {
		s.m[host] = map[*trackedConn]struct{}{}
	}
	tc := &trackedConn{Conn: c, set: s, host: host}
	s.m[host][tc] = struct{}{}
	return tc, true
}

func (s *connSet) isCut(host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cutOff[host]
}

// cut refuses host from now on and breaks its open connections.
func (s *connSet) cut(host string) {
	s.mu.Lock()
	if s.cutOff == nil {
		s.cutOff = map[string]bool{}
	}
	s.cutOff[host] = true
	conns := s.m[host]
	delete(s.m, host)
	s.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

func (s *connSet) heal(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cutOff, host)
}

// hostPort is the host:port of an API server URL.
func hostPort(server string) string {
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		return u.Host
	}
	return server
}
