package proc

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// A shell with two children, one of which traps SIGTERM (it would drain):
// Kill takes the whole tree at once, and nothing outside it.
func TestKillTakesTheWholeTreeWithoutWarning(t *testing.T) {
	marker := "proc-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	sh := exec.Command("sh", "-c", `
		sh -c 'trap "echo drained >&2" TERM; while :; do sleep 0.05; done' "$0" &
		sleep 300 &
		wait`, marker)
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sh.Wait() }()
	var tree []int
	for deadline := time.Now().Add(10 * time.Second); len(tree) < 4; {
		tree = Tree(sh.Process.Pid)
		if time.Now().After(deadline) {
			t.Fatalf("tree of %d: %v, want the shell, its two children and the sleep below the trap", sh.Process.Pid, tree)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tree[0] != sh.Process.Pid {
		t.Fatalf("tree %v does not start at its root %d", tree, sh.Process.Pid)
	}
	if m := Matching(marker); len(m) == 0 || !slices.Contains(tree, m[0]) {
		t.Fatalf("Matching(%q) = %v, want a process of the tree %v", marker, m, tree)
	}
	if err := Kill(tree); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("the root ended with %v, want signal: killed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the root outlived SIGKILL")
	}
	for deadline := time.Now().Add(5 * time.Second); len(Matching(marker)) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("processes of the tree survive: %v", Matching(marker))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := Kill(tree); err != nil {
		t.Errorf("killing processes already gone: %v, want no error", err)
	}
}
