package node

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Host-wide locations of the nodes' slots.
const (
	// LockDir holds one lock file per slot; a slot is held while its file
	// is locked (flock), so a killed holder frees it at once.
	LockDir = "/run/meridian/nodes"
	// StateRoot holds each slot's runtime state (sockets, pids, configs).
	StateRoot = "/run/meridian/nodes"
	// DataRoot holds each slot's containerd content and snapshots and the
	// kubelet's directory (on disk, not in memory).
	DataRoot = "/var/lib/meridian/nodes"
	// maxSlot bounds the slot numbers (the third octet of 10.213.N.0/24).
	maxSlot = 250
)

// slot is one claimed slot: its number and its held lock.
type slot struct {
	n    int
	lock *os.File
}

func (s slot) bridge() string     { return fmt.Sprintf("mrdn%d", s.n) }
func (s slot) subnet() string     { return fmt.Sprintf("10.213.%d.0/24", s.n) }
func (s slot) ip() string         { return fmt.Sprintf("10.213.%d.1", s.n) }
func (s slot) podCgroup() string  { return fmt.Sprintf("/meridian-node-%d", s.n) }
func (s slot) sysCgroup() string  { return fmt.Sprintf("/meridian-node-%d-sys", s.n) }
func (s slot) network() string    { return fmt.Sprintf("meridian-node-%d", s.n) }
func (s slot) stateDir() string   { return filepath.Join(StateRoot, strconv.Itoa(s.n)) }
func (s slot) dataDir() string    { return filepath.Join(DataRoot, strconv.Itoa(s.n)) }
func (s slot) containerd() string { return filepath.Join(s.stateDir(), "containerd.sock") }

// claimSlot takes the lowest free slot and sweeps what a dead holder left
// in it.
func claimSlot() (slot, error) {
	if err := os.MkdirAll(LockDir, 0o755); err != nil {
		return slot{}, fmt.Errorf("creating %s for node slots: %w", LockDir, err)
	}
	for n := 1; n <= maxSlot; n++ {
		f, err := os.OpenFile(filepath.Join(LockDir, strconv.Itoa(n)+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return slot{}, fmt.Errorf("opening node slot lock: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			_ = f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				continue
			}
			return slot{}, fmt.Errorf("locking node slot %d: %w", n, err)
		}
		s := slot{n: n, lock: f}
		if err := s.sweep(); err != nil {
			s.release()
			return slot{}, fmt.Errorf("sweeping what an earlier node left in slot %d: %w", n, err)
		}
		return s, nil
	}
	return slot{}, fmt.Errorf("all %d node slots are in use (see %s)", maxSlot, LockDir)
}

func (s slot) release() {
	if s.lock != nil {
		_ = unix.Flock(int(s.lock.Fd()), unix.LOCK_UN)
		_ = s.lock.Close()
	}
}

// sweep removes everything of the slot: its processes (containers, shims,
// containerd, kubelet — all live in its cgroups), mounts, links, cgroups
// and directories. It is safe on a clean slot.
func (s slot) sweep() error {
	cgs := []string{s.sysCgroup(), s.podCgroup()}
	for attempt := 0; ; attempt++ {
		if killCgroups(cgs) == 0 {
			break
		}
		if attempt == 50 {
			return fmt.Errorf("processes in cgroups %v survive SIGKILL", cgs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, dir := range []string{s.stateDir(), s.dataDir()} {
		if err := unmountUnder(dir); err != nil {
			return err
		}
	}
	// Pods' veths hang on the slot's bridge; deleting one end deletes the
	// pair. Then the bridge itself.
	if out, err := exec.Command("ip", "-o", "link", "show", "master", s.bridge()).Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
				_ = exec.Command("ip", "link", "del", name).Run()
			}
		}
	}
	if exec.Command("ip", "link", "show", s.bridge()).Run() == nil {
		if out, err := exec.Command("ip", "link", "del", s.bridge()).CombinedOutput(); err != nil {
			return fmt.Errorf("deleting bridge %s: %w: %s", s.bridge(), err, out)
		}
	}
	for _, cg := range cgs {
		if err := removeCgroup(cg); err != nil {
			return err
		}
	}
	for _, dir := range []string{s.stateDir(), s.dataDir()} {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("removing %s: %w", dir, err)
		}
	}
	return nil
}

// unmountUnder lazily unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("reading mounts: %w", err)
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, unescapeMount(f[4]))
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmounting %s: %w", p, err)
		}
	}
	return nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(p string) string {
	if !strings.Contains(p, `\`) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+3 < len(p) {
			if v, err := strconv.ParseUint(p[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// signalPid sends sig to pid, ignoring a process already gone.
func signalPid(pid int, sig syscall.Signal) {
	if pid > 0 {
		_ = syscall.Kill(pid, sig)
	}
}
