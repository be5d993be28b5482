package gossip

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/testbin"
)

// testLogger discards logs unless GOSSIP_TEST_LOG is set, in which case
// everything, memberlist's lines included, goes to stderr.
func testLogger(name string) *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test_node", name)
}

// testNode is a started node with its own registry and observer.
type testNode struct {
	*Node
	reg *prometheus.Registry
	obs *recorder
}

// startNode starts a node on 127.0.0.1 with an ephemeral port and the
// Local preset unless cfg says otherwise, and shuts it down at cleanup.
func startNode(t *testing.T, cfg Config) (*testNode, error) {
	t.Helper()
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1"
	}
	if cfg.Timing == (Timing{}) {
		cfg.Timing = Local()
	}
	if cfg.Meta == (Meta{}) {
		cfg.Meta = Meta{Cluster: cfg.NodeName, Region: "region-" + cfg.NodeName, Endpoint: "https://" + cfg.NodeName + ".example.com"}
	}
	reg := prometheus.NewRegistry()
	obs := &recorder{}
	cfg.Registerer = reg
	cfg.Observer = obs
	cfg.Logger = testLogger(cfg.NodeName)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	return &testNode{Node: n, reg: reg, obs: obs}, nil
}

func mustStart(t *testing.T, cfg Config) *testNode {
	t.Helper()
	n, err := startNode(t, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.NodeName, err)
	}
	return n
}

// startCluster starts k nodes named prefix-0..k-1, each joining all the
// nodes before it, so that membership is complete without relying on
// gossip reaching everyone (memberlist's Local preset retransmits each
// membership change only twice per node, and leaves the rest to push/pull).
func startCluster(t *testing.T, prefix string, k int, cfg Config) []*testNode {
	t.Helper()
	nodes := make([]*testNode, 0, k)
	for i := range k {
		c := cfg
		c.NodeName = prefix + "-" + string(rune('0'+i))
		for _, prev := range nodes {
			c.Join = append(c.Join, prev.Addr())
		}
		nodes = append(nodes, mustStart(t, c))
	}
	testbin.Eventually(t, "every node sees every other alive", 10*time.Second, func() bool {
		for _, n := range nodes {
			if countStatus(n.Peers(), StatusAlive) != k-1 {
				return false
			}
		}
		return true
	})
	return nodes
}

func countStatus(peers []Peer, s Status) int {
	c := 0
	for _, p := range peers {
		if p.Status == s {
			c++
		}
	}
	return c
}

// recorder is an Observer that remembers what it was told and when.
type recorder struct {
	mu      sync.Mutex
	updated []observed
	left    []observed
}

type observed struct {
	peer Peer
	at   time.Time
}

func (r *recorder) PeerUpdated(p Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updated = append(r.updated, observed{p, time.Now()})
}

func (r *recorder) PeerLeft(p Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.left = append(r.left, observed{p, time.Now()})
}

// leftAt returns when the observer was first told that name left.
func (r *recorder) leftAt(name string) (Peer, time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.left {
		if o.peer.Name == name {
			return o.peer, o.at, true
		}
	}
	return Peer{}, time.Time{}, false
}

func (r *recorder) leftCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.left)
}

// newKey returns a random AES-256 key.
func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// writeKeyring writes keys, primary first, to a file in dir and returns
// its path.
func writeKeyring(t *testing.T, path string, keys ...[]byte) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# gossip keys, primary first\n")
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func keyringPath(t *testing.T, name string) string {
	return filepath.Join(t.TempDir(), name+".keys")
}

// digests returns k model digests for cluster c.
func digests(c string, k int) []ModelDigest {
	out := make([]ModelDigest, k)
	for i := range out {
		out[i] = ModelDigest{
			Namespace: "team-" + c, Name: "sentiment-" + string(rune('a'+i%26)) + strings.Repeat("x", i%7),
			Model: "sentiment", ReadyReplicas: int32(i + 1), DesiredReplicas: int32(i + 2),
			RequestsPerSecond: 10.5 * float64(i+1), P95Seconds: 0.01 * float64(i+1), QueueLength: int32(i), Healthy: i%2 == 0,
			ScaledToZero: i%3 == 2,
		}
	}
	return out
}
