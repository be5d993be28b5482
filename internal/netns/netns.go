// Package netns gives tests separate network hosts on one machine: Linux
// network namespaces joined to this one by veth pairs (Debian's iproute2).
// It needs root; Available says whether it can run here. Only the
// namespaces and links a test makes are ever touched, and Close removes
// them. (tc netem would add delay on the links, but this machine's kernel
// has no netem qdisc — "Specified qdisc kind is unknown" — so tests delay
// in the endpoints instead.)
package netns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Available reports why separate hosts cannot be made here, or "" when
// they can: root and the ip command are needed.
func Available() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "ip is missing (Debian's iproute2)"
	}
	return ""
}

// Host is a network namespace reachable from this one over a veth pair:
// HostAddr inside it, PeerAddr on this side, each a /30 of 10.231.<n>.0.
type Host struct {
	Name               string
	HostAddr, PeerAddr string
	link               string // the veth end on this side
}

// New makes host n (1 to 250) with a name unique to this process.
func New(n int) (*Host, error) {
	h := &Host{
		Name:     fmt.Sprintf("mrd-%d-%d", os.Getpid(), n),
		HostAddr: fmt.Sprintf("10.231.%d.2", n),
		PeerAddr: fmt.Sprintf("10.231.%d.1", n),
		link:     fmt.Sprintf("mrd%d_%d", os.Getpid()%100000, n),
	}
	inner := h.link + "i"
	steps := [][]string{
		{"ip", "netns", "add", h.Name},
		{"ip", "link", "add", h.link, "type", "veth", "peer", "name", inner},
		{"ip", "link", "set", inner, "netns", h.Name},
		{"ip", "addr", "add", h.PeerAddr + "/30", "dev", h.link},
		{"ip", "link", "set", h.link, "up"},
		{"ip", "-n", h.Name, "addr", "add", h.HostAddr + "/30", "dev", inner},
		{"ip", "-n", h.Name, "link", "set", inner, "up"},
		{"ip", "-n", h.Name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			h.Close()
			return nil, err
		}
	}
	return h, nil
}

// Cut takes the link down (a partition); Heal brings it back.
func (h *Host) Cut() error  { return run("ip", "link", "set", h.link, "down") }
func (h *Host) Heal() error { return run("ip", "link", "set", h.link, "up") }

// Listen opens a TCP listener inside the host on its address. The socket
// belongs to the namespace for its whole life, whichever goroutine serves
// it.
func (h *Host) Listen() (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		// This thread enters the namespace and is never given back to the
		// scheduler: the goroutine ends locked, so the runtime retires it.
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + h.Name)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer func() { _ = f.Close() }()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("entering %s: %w", h.Name, err)}
			return
		}
		ln, err := net.Listen("tcp", h.HostAddr+":0")
		done <- result{ln, err}
	}()
	r := <-done
	return r.ln, r.err
}

// Close deletes the namespace, and with it the veth pair.
func (h *Host) Close() {
	_ = run("ip", "netns", "del", h.Name)
	_ = run("ip", "link", "del", h.link) // gone with the namespace, unless that failed
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
