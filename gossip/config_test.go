package gossip

import (
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/testbin"
)

// TestPresetsMatchMemberlist pins the presets to memberlist's defaults.
func TestPresetsMatchMemberlist(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		got  Timing
		want *memberlist.Config
	}{
		"LAN":   {LAN(), memberlist.DefaultLANConfig()},
		"WAN":   {WAN(), memberlist.DefaultWANConfig()},
		"Local": {Local(), memberlist.DefaultLocalConfig()},
	} {
		c := config{Config: Config{Timing: tc.got}}.memberlistConfig()
		if c.ProbeInterval != tc.want.ProbeInterval || c.ProbeTimeout != tc.want.ProbeTimeout ||
			c.SuspicionMult != tc.want.SuspicionMult || c.SuspicionMaxTimeoutMult != tc.want.SuspicionMaxTimeoutMult ||
			c.IndirectChecks != tc.want.IndirectChecks || c.AwarenessMaxMultiplier != tc.want.AwarenessMaxMultiplier ||
			c.GossipInterval != tc.want.GossipInterval || c.GossipNodes != tc.want.GossipNodes ||
			c.GossipToTheDeadTime != tc.want.GossipToTheDeadTime || c.RetransmitMult != tc.want.RetransmitMult ||
			c.PushPullInterval != tc.want.PushPullInterval || c.TCPTimeout != tc.want.TCPTimeout {
			t.Errorf("%s preset differs from memberlist's: %+v", name, tc.got)
		}
	}
	if got := (Timing{}).withDefaults(); got != LAN() {
		t.Errorf("zero Timing = %+v, want LAN", got)
	}
	partial := Timing{ProbeInterval: 3 * time.Second}.withDefaults()
	if partial.ProbeInterval != 3*time.Second || partial.ProbeTimeout != LAN().ProbeTimeout {
		t.Errorf("partial Timing = %+v", partial)
	}
}

// TestDeadWithin pins the bounds quoted in the presets' documentation and
// the suspicion timeout to memberlist's formula.
func TestDeadWithin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		timing     Timing
		n          int
		suspicion  time.Duration
		deadWithin time.Duration
		max        time.Duration
	}{
		// 2×1s + 3×1×1s + 2 rounds×100ms; max: 7×1s + 1s + 6×3s + 200ms.
		{"Local", Local(), 5, 3 * time.Second, 5200 * time.Millisecond, 26200 * time.Millisecond},
		// 3 × 1.698 × 1s = 5.094s; 4 rounds × 100ms.
		{"Local", Local(), 50, 5094 * time.Millisecond, 7494 * time.Millisecond, 128964 * time.Millisecond},
		{"LAN", LAN(), 1, 4 * time.Second, 6 * time.Second, 26 * time.Second},
		{"LAN", LAN(), 5, 4 * time.Second, 6400 * time.Millisecond, 32400 * time.Millisecond},
		{"LAN", LAN(), 50, 6792 * time.Millisecond, 9592 * time.Millisecond, 139552 * time.Millisecond},
		{"WAN", WAN(), 5, 30 * time.Second, 41 * time.Second, 221 * time.Second},
		{"WAN", WAN(), 50, 50940 * time.Millisecond, 62440 * time.Millisecond, 797140 * time.Millisecond},
	} {
		if got := tc.timing.SuspicionTimeout(tc.n); got != tc.suspicion {
			t.Errorf("%s SuspicionTimeout(%d) = %s, want %s", tc.name, tc.n, got, tc.suspicion)
		}
		if got := tc.timing.DeadWithin(tc.n); got != tc.deadWithin {
			t.Errorf("%s DeadWithin(%d) = %s, want %s", tc.name, tc.n, got, tc.deadWithin)
		}
		if got := tc.timing.MaxDeadWithin(tc.n); got != tc.max {
			t.Errorf("%s MaxDeadWithin(%d) = %s, want %s", tc.name, tc.n, got, tc.max)
		}
	}
}

func TestTimingValidation(t *testing.T) {
	t.Parallel()
	for name, timing := range map[string]Timing{
		"timeout not below interval": {ProbeInterval: time.Second, ProbeTimeout: time.Second},
		"negative duration":          {GossipInterval: -time.Second},
		"negative count":             {GossipNodes: -1},
	} {
		if _, err := (Config{NodeName: "x", Timing: timing}).complete(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestMetaLimit checks that Meta up to memberlist's 512 bytes is accepted
// and one byte more is refused with ErrMetaTooLarge before anything
// starts.
func TestMetaLimit(t *testing.T) {
	t.Parallel()
	// version byte + (1+1) + (1+1) + (2+504) + flags byte = 512 bytes.
	fits := Meta{Cluster: "c", Region: "r", Endpoint: strings.Repeat("e", 504)}
	if got := len(encodeMeta(nodeMeta{Meta: fits})); got != MaxMetaBytes {
		t.Fatalf("test meta encodes to %d bytes", got)
	}
	reg := prometheus.NewRegistry()
	n := mustStart(t, Config{NodeName: "meta-fits", Meta: fits, Registerer: reg})
	if err := n.SetLocalState(NodeState{}); err != nil || n.LocalState().Endpoint != fits.Endpoint {
		t.Errorf("local state endpoint not filled from Meta: %v", err)
	}

	tooBig := fits
	tooBig.Endpoint += "e"
	_, err := startNode(t, Config{NodeName: "meta-big", Meta: tooBig})
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("Start with 513-byte meta = %v, want ErrMetaTooLarge", err)
	}
	if !strings.Contains(err.Error(), "513 bytes") || !strings.Contains(err.Error(), "512") {
		t.Errorf("error does not say how large the meta is and what fits: %v", err)
	}
	t.Logf("%v", err)
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"bad bind address": {NodeName: "x", BindAddr: "not-an-ip"},
		"bad port":         {NodeName: "x", BindPort: 70000},
		"missing keyring":  {NodeName: "x", KeyringFile: "/nonexistent/keys"},
		"nobody to join":   {NodeName: "x", Join: []string{"127.0.0.1:1"}},
	} {
		if _, err := startNode(t, cfg); err == nil {
			t.Errorf("%s: Start succeeded", name)
		}
	}
	// A failed Start releases the metrics, so a retry can register them.
	reg := prometheus.NewRegistry()
	if _, err := Start(t.Context(), Config{NodeName: "x", BindAddr: "127.0.0.1", Registerer: reg, Join: []string{"127.0.0.1:1"}}); err == nil {
		t.Fatal("join of nobody succeeded")
	}
	n, err := Start(t.Context(), Config{NodeName: "x", BindAddr: "127.0.0.1", Registerer: reg})
	if err != nil {
		t.Fatalf("Start after a failed Start: %v", err)
	}
	if _, err := Start(t.Context(), Config{NodeName: "y", BindAddr: "127.0.0.1", Registerer: reg}); err == nil {
		t.Error("a second node registered on the same registry")
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
}

func TestSetLocalStateValidates(t *testing.T) {
	t.Parallel()
	n := mustStart(t, Config{NodeName: "validate"})
	for name, s := range map[string]NodeState{
		"too many models": {Models: make([]ModelDigest, MaxModels+1)},
		"NaN":             {Models: []ModelDigest{{P95Seconds: math.NaN()}}},
		"long name":       {Models: []ModelDigest{{Name: strings.Repeat("n", maxString+1)}}},
		"negative queue":  {Models: []ModelDigest{{QueueLength: -1}}},
	} {
		if err := n.SetLocalState(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	models := digests("v", 2)
	if err := n.SetLocalState(NodeState{Models: models}); err != nil {
		t.Fatal(err)
	}
	models[0].Name = "changed by the caller"
	if n.LocalState().Models[0].Name == models[0].Name {
		t.Error("SetLocalState kept the caller's slice")
	}
}

// TestPlaintextOnlyOnLoopback checks that a node refuses to gossip in
// plaintext where anything off the machine could reach it, says how to
// make a keyring, and starts there with a keyring or when told Insecure.
func TestPlaintextOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"all interfaces":         {NodeName: "x", BindAddr: "0.0.0.0"},
		"bind address unset":     {NodeName: "x"},
		"advertised off machine": {NodeName: "x", BindAddr: "127.0.0.1", AdvertiseAddr: "192.0.2.10"},
	} {
		_, err := Start(t.Context(), cfg)
		if !errors.Is(err, ErrNoKeyring) {
			t.Errorf("%s: Start without a keyring = %v, want ErrNoKeyring", name, err)
			continue
		}
		if !strings.Contains(err.Error(), "head -c32 /dev/urandom | base64") || !strings.Contains(err.Error(), "Insecure") {
			t.Errorf("%s: the error does not say how to make a keyring or opt out: %v", name, err)
		}
	}
	keys := writeKeyring(t, keyringPath(t, "public"), newKey(t))
	if _, err := Start(t.Context(), Config{NodeName: "x", BindAddr: "0.0.0.0", KeyringFile: keys, Insecure: true}); err == nil {
		t.Error("Insecure with a keyring accepted")
	}
	c, err := Config{NodeName: "x", KeyringFile: keys}.complete()
	if mc := c.memberlistConfig(); err != nil || !mc.GossipVerifyIncoming || !mc.GossipVerifyOutgoing {
		t.Errorf("memberlist would accept or send plaintext beside a keyring (%v)", err)
	}
	var logs testbin.Buffer
	for name, cfg := range map[string]Config{
		// An advertise address spares memberlist looking for a private
		// address, which a bare container may lack.
		"keyring":  {NodeName: "enc", BindAddr: "0.0.0.0", AdvertiseAddr: "192.0.2.10", KeyringFile: keys},
		"insecure": {NodeName: "plain", BindAddr: "0.0.0.0", AdvertiseAddr: "192.0.2.10", Insecure: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		"loopback": {NodeName: "local", BindAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1"},
	} {
		n, err := Start(t.Context(), cfg)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := len(n.Keys()); (name == "keyring") != (got == 1) {
			t.Errorf("%s: %d keys", name, got)
		}
		_ = n.Shutdown()
	}
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "NOT ENCRYPTED") {
		t.Errorf("an insecure node off loopback did not warn: %q", got)
	}
}
