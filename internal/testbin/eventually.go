package testbin

import (
	"testing"
	"time"
)

// Cond is what Eventually polls: a func() bool, or a func() (bool, string)
// whose string says what it saw, for the failure message.
type Cond interface {
	func() bool | func() (bool, string)
}

// Eventually polls cond until it holds, failing the test when timeout
// passes first with what it waited for (and cond's last word, when it
// gives one). It polls every 5ms at first and backs off to every 100ms,
// so a quick condition costs little and a slow one (a control plane, a
// whole fleet) is not hammered. Call it from the test's goroutine.
func Eventually[C Cond](t testing.TB, what string, timeout time.Duration, cond C) {
	t.Helper()
	check := func() (bool, string) {
		switch c := any(cond).(type) {
		case func() bool:
			return c(), ""
		case func() (bool, string):
			return c()
		}
		panic("unreachable")
	}
	deadline := time.Now().Add(timeout)
	pause := 5 * time.Millisecond
	for {
		ok, last := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if last != "" {
				t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
}
