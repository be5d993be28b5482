package gossip

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
)

func TestLogBridge(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	var suspects []string
	b := &logBridge{
		log:       slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})),
		onSuspect: func(name string) { suspects = append(suspects, name) },
	}
	l := newMemberlistLogger(b)
	l.Printf("[INFO] memberlist: Suspect %s has failed, no acks received", "eu-1")
	l.Printf("[WARN] memberlist: Refuting a suspect message (from: %s)", "us-1")
	l.Printf("no level at all")
	if len(suspects) != 1 || suspects[0] != "eu-1" {
		t.Errorf("suspects = %q, want [eu-1]", suspects)
	}
	logs := out.String()
	for _, want := range []string{
		`level=DEBUG msg="Suspect eu-1 has failed, no acks received" component=memberlist memberlist_level=INFO`,
		`msg="Refuting a suspect message (from: us-1)" component=memberlist memberlist_level=WARN`,
		`msg="no level at all"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

// TestSuspectClearsOnProbe raises a suspicion as the log bridge would and
// checks that the next successful probe of the member clears it.
func TestSuspectClearsOnProbe(t *testing.T) {
	t.Parallel()
	timing := Local()
	nodes := startCluster(t, "clear", 2, Config{Timing: timing})
	a := nodes[0]
	a.markSuspect("clear-1")
	if p, _ := a.Peer("clear-1"); p.Status != StatusSuspect {
		t.Fatalf("after markSuspect, clear-1 is %s", p.Status)
	}
	if got := testbin.Metric(t, a.reg, "meridian_gossip_members", map[string]string{"state": "suspect"}); got != 1 {
		t.Errorf("members{suspect} = %v, want 1", got)
	}
	if got := testbin.Metric(t, a.reg, "meridian_gossip_events_total", map[string]string{"event": "suspect"}); got != 1 {
		t.Errorf("events{suspect} = %v, want 1", got)
	}
	// With one peer, every probe interval probes it.
	testbin.Eventually(t, "a probe clears the suspicion", 3*timing.ProbeInterval+time.Second, func() bool {
		p, _ := a.Peer("clear-1")
		return p.Status == StatusAlive && p.RTT > 0
	})
	if got := testbin.Metric(t, a.reg, "meridian_gossip_probe_rtt_seconds", nil); got == 0 {
		t.Error("no probe round trip was observed")
	}
}
