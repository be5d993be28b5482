package fleet

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// firewall cuts local regions off the network the way a lost link does:
// every packet to or from the region's address is dropped without a word,
// so connections hang until their timeouts instead of being refused. It is
// an nftables table of this process's own (a set of cut addresses and two
// drop rules on the output hook, where all loopback traffic passes), so
// it needs root and touches nothing else.
type firewall struct{ table string }

// FirewallAvailable says why a fleet here cannot drop a region's packets
// (BlackholeRegion, and Partition with gossip cut), or "" when it can.
func FirewallAvailable() string {
	if os.Geteuid() != 0 {
		return "dropping packets silently needs root (nftables)"
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return "nft is missing (Debian's nftables)"
	}
	return ""
}

func newFirewall() (*firewall, error) {
	if why := FirewallAvailable(); why != "" {
		return nil, fmt.Errorf("%s", why)
	}
	fw := &firewall{table: fmt.Sprintf("meridian_fleet_%d", os.Getpid())}
	_ = fw.nft("delete", "table", "inet", fw.table) // a leftover of a killed run with this pid
	for _, cmd := range [][]string{
		{"add", "table", "inet", fw.table},
		{"add", "chain", "inet", fw.table, "out", "{ type filter hook output priority 0; policy accept; }"},
		{"add", "set", "inet", fw.table, "cut", "{ type ipv4_addr; }"},
		{"add", "rule", "inet", fw.table, "out", "ip", "saddr", "@cut", "drop"},
		{"add", "rule", "inet", fw.table, "out", "ip", "daddr", "@cut", "drop"},
	} {
		if err := fw.nft(cmd...); err != nil {
			_ = fw.close()
			return nil, err
		}
	}
	return fw, nil
}

// cut drops every packet to and from addr from now on; heal ends that.
func (fw *firewall) cut(addr string) error {
	return fw.nft("add", "element", "inet", fw.table, "cut", "{ "+addr+" }")
}

func (fw *firewall) heal(addr string) error {
	return fw.nft("delete", "element", "inet", fw.table, "cut", "{ "+addr+" }")
}

func (fw *firewall) close() error { return fw.nft("delete", "table", "inet", fw.table) }

func (fw *firewall) nft(args ...string) error {
	out, err := exec.Command("nft", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
