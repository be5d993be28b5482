// Package proc kills processes the way a machine dies: SIGKILL, with no
// warning to any of them. Drills use it to crash a region (its agent, every
// replica the agent started, its API server and etcd) instead of stopping
// it. It reads Linux's /proc.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Tree is pid and every process descended from it, parents first.
func Tree(pid int) []int {
	children := map[int][]int{}
	for _, p := range all() {
		if pp, err := parent(p); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// Matching is every process whose command line has an argument that
// contains substr.
func Matching(substr string) []int {
	var out []int
	for _, p := range all() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(b, []byte{0}) {
			if bytes.Contains(arg, []byte(substr)) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// Kill stops every process in pids first (SIGSTOP), so none of them can
// notice another's death and react — a supervisor restarting a replica, a
// parent-death signal starting a drain — and then SIGKILLs them all.
// Processes already gone are not an error.
func Kill(pids []int) error {
	var errs []error
	for _, p := range pids {
		if err := syscall.Kill(p, syscall.SIGSTOP); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("stopping %d: %w", p, err))
		}
	}
	for _, p := range pids {
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("killing %d: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func all() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parent reads the parent pid from /proc/<pid>/stat, whose second field
// (the command name, in parentheses) may itself hold spaces and ')'.
func parent(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	return strconv.Atoi(f[1])
}
