package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// cgroupMounts lists the mount points of this host's cgroup hierarchies:
// one per v1 hierarchy, or the single v2 one.
func cgroupMounts() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	var v1, v2 []string
	for _, line := range strings.Split(string(b), "\n") {
		_, after, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		fstype := strings.Fields(after)[0]
		point := unescapeMount(strings.Fields(line)[4])
		switch fstype {
		case "cgroup":
			v1 = append(v1, point)
		case "cgroup2":
			v2 = append(v2, point)
		}
	}
	if len(v1) > 0 {
		return v1, nil // a hybrid host's unified mount holds no controllers
	}
	if len(v2) > 0 {
		return v2[:1], nil
	}
	return nil, errors.New("no cgroup hierarchy is mounted (looked in /proc/self/mountinfo)")
}

// makeCgroup creates cg in every hierarchy; in cpuset it copies the CPUs and
// memory nodes of the top so that processes may join.
func makeCgroup(cg string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		dir := filepath.Join(m, cg)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			top, err := os.ReadFile(filepath.Join(m, f))
			if err != nil {
				continue // not the cpuset hierarchy
			}
			if err := os.WriteFile(filepath.Join(dir, f), top, 0o644); err != nil {
				return fmt.Errorf("setting %s of cgroup %s: %w", f, dir, err)
			}
		}
	}
	return nil
}

// joinCgroup moves pid into cg in every hierarchy.
func joinCgroup(cg string, pid int) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		f := filepath.Join(m, cg, "cgroup.procs")
		if err := os.WriteFile(f, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("moving process %d into %s: %w", pid, f, err)
		}
	}
	return nil
}

// killCgroups sends SIGKILL to every process in the cgroups (and their
// children) and returns how many it found.
func killCgroups(cgs []string) int {
	mounts, err := cgroupMounts()
	if err != nil {
		return 0
	}
	n := 0
	for _, m := range mounts {
		for _, cg := range cgs {
			_ = filepath.WalkDir(filepath.Join(m, cg), func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return nil //nolint:nilerr // a cgroup gone while walking holds no process
				}
				if d.IsDir() || d.Name() != "cgroup.procs" {
					return nil
				}
				b, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
						signalPid(pid, syscall.SIGKILL)
						n++
					}
				}
				return nil
			})
		}
	}
	return n
}

// removeCgroup removes cg and the cgroups under it in every hierarchy,
// deepest first. Its processes must be gone.
func removeCgroup(cg string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(m, cg), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				return fmt.Errorf("removing cgroup %s: %w", d, err)
			}
		}
	}
	return nil
}
