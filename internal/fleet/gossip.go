package fleet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"meridian.dev/meridian/gossip"
)

// gossipConfig joins the balancer, on host, to the fleet's gossip pool
// (the agents' health and load; the balancer listens), with the timing
// preset's gossip timing.
func (f *Fleet) gossipConfig(host, name string) (*gossip.Config, error) {
	t, err := gossip.PresetTiming(f.timing.Gossip)
	if err != nil {
		return nil, err
	}
	c := &gossip.Config{NodeName: name, BindAddr: host, BindPort: f.gossipPort, Timing: t,
		Join: slices.Clone(f.gossipPeers), KeyringFile: f.gossipKeys, Logger: f.opts.Logger.With("component", "gossip")}
	f.gossipPeers = append(f.gossipPeers, net.JoinHostPort(host, strconv.Itoa(f.gossipPort)))
	return c, nil
}

// gossipArgs are the `meridian agent` flags that join an agent on host
// to the pool the same way.
func (f *Fleet) gossipArgs(host string) []string {
	args := []string{"--gossip-bind", net.JoinHostPort(host, strconv.Itoa(f.gossipPort)), "--gossip-preset", f.timing.Gossip,
		"--gossip-keyring", f.gossipKeys}
	if len(f.gossipPeers) > 0 {
		args = append(args, "--gossip-join", strings.Join(f.gossipPeers, ","))
	}
	f.gossipPeers = append(f.gossipPeers, net.JoinHostPort(host, strconv.Itoa(f.gossipPort)))
	return args
}

// writeGossipKeyring gives the fleet a fresh pool key in dir/gossip.keys
// (0600), so its gossip is encrypted like a real fleet's even on loopback.
func writeGossipKeyring(dir string) (string, error) {
	k, err := gossip.GenerateKey()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "gossip.keys")
	if err := gossip.WriteKeyring(path, k); err != nil {
		return "", fmt.Errorf("the fleet's gossip keyring: %w", err)
	}
	return path, nil
}

// freeGossipPort finds a port free for UDP and TCP on the balancer's and
// every region's loopback address. It is drawn below the kernel's
// ephemeral range (32768 and up by default), where no outgoing connection
// or port-0 listener can take it between this check and memberlist's bind,
// and at random, so fleets started side by side (tests) do not collide.
func freeGossipPort(regions int) (int, error) {
	hosts := []string{"127.0.0.1"}
	for i := range regions {
		hosts = append(hosts, regionAddr(i))
	}
	for range 50 {
		port := 20000 + rand.IntN(12000)
		free := true
		for _, h := range hosts {
			addr := net.JoinHostPort(h, strconv.Itoa(port))
			if t, err := net.Listen("tcp", addr); err == nil {
				_ = t.Close()
			} else {
				free = false
			}
			if u, err := net.ListenPacket("udp", addr); err == nil {
				_ = u.Close()
			} else {
				free = false
			}
		}
		if free {
			return port, nil
		}
	}
	return 0, errors.New("no port between 20000 and 32000 is free for gossip on every loopback address of the fleet")
}
