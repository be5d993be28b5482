package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
)

// quiet waits long enough for memberlist to have gossiped and probed a few
// times, so that a node that slipped in, or a suspicion, would show.
func quiet(timing Timing) { time.Sleep(2 * timing.ProbeInterval) }

// TestWrongKeyCannotJoin checks that a node whose key the pool does not
// hold cannot join, by Config.Join or Node.Join, and never shows up as a
// member, while a node with the right key joins.
func TestWrongKeyCannotJoin(t *testing.T) {
	t.Parallel()
	good, bad := newKey(t), newKey(t)
	a := mustStart(t, Config{NodeName: "keys-a", KeyringFile: writeKeyring(t, keyringPath(t, "a"), good)})

	_, err := startNode(t, Config{NodeName: "keys-bad", KeyringFile: writeKeyring(t, keyringPath(t, "bad"), bad), Join: []string{a.Addr()}})
	if err == nil {
		t.Fatal("Start with a wrong key joined the pool")
	}
	t.Logf("Start with a wrong key: %v", err)

	lone := mustStart(t, Config{NodeName: "keys-lone", KeyringFile: writeKeyring(t, keyringPath(t, "lone"), bad)})
	if n, err := lone.Join(context.Background(), a.Addr()); err == nil {
		t.Fatalf("Join with a wrong key reached %d members", n)
	}
	// An unencrypted node cannot join either.
	if _, err := startNode(t, Config{NodeName: "keys-plain", Join: []string{a.Addr()}}); err == nil {
		t.Fatal("a node without encryption joined an encrypted pool")
	}

	b := mustStart(t, Config{NodeName: "keys-b", KeyringFile: writeKeyring(t, keyringPath(t, "b"), good), Join: []string{a.Addr()}})
	testbin.Eventually(t, "keys-b joins keys-a", 5*time.Second, func() bool {
		p, ok := a.Peer("keys-b")
		return ok && p.Status == StatusAlive
	})
	quiet(Local())
	for _, n := range []*testNode{a, b} {
		for _, p := range n.Peers() {
			if p.Name != "keys-a" && p.Name != "keys-b" {
				t.Errorf("%s sees %s (%s), which holds the wrong key", n.Name(), p.Name, p.Status)
			}
		}
	}
	if peers := lone.Peers(); len(peers) != 0 {
		t.Errorf("the wrong-key node sees %v", peers)
	}
}

// TestKeyringFileRotation rotates a running 3-node pool's key the
// documented way: each node's own keyring file is edited in three steps
// and the nodes pick the change up by themselves, each step waiting until
// every member reports it in its metrics. The pool stays whole and keeps
// exchanging state, and a node holding only the old key is locked out.
func TestKeyringFileRotation(t *testing.T) {
	t.Parallel()
	timing := Local()
	oldKey, newKey := newKey(t), newKey(t)
	nodes := make([]*testNode, 3)
	paths := make([]string, 3)
	for i := range nodes {
		paths[i] = writeKeyring(t, keyringPath(t, "rotate"), oldKey)
		cfg := Config{NodeName: "rotate-" + string(rune('0'+i)), Timing: timing, KeyringFile: paths[i], KeyringCheckInterval: 20 * time.Millisecond}
		for _, prev := range nodes[:i] {
			cfg.Join = append(cfg.Join, prev.Addr())
		}
		nodes[i] = mustStart(t, cfg)
	}
	for i, step := range []struct {
		name string
		keys [][]byte
	}{
		{"install the new key", [][]byte{oldKey, newKey}},
		{"use the new key", [][]byte{newKey, oldKey}},
		{"remove the old key", [][]byte{newKey}},
	} {
		for _, p := range paths {
			if err := WriteKeyring(p, step.keys...); err != nil {
				t.Fatal(err)
			}
		}
		primary := map[string]string{"fingerprint": Fingerprint(step.keys[0])}
		testbin.Eventually(t, step.name+": every member reports it", 5*time.Second, func() bool {
			for _, n := range nodes {
				moved, _ := testbin.MetricIfAny(t, n.reg, "meridian_gossip_keyring_primary", primary)
				if moved != 1 || testbin.Metric(t, n.reg, "meridian_gossip_keyring_keys", nil) != float64(len(step.keys)) {
					return false
				}
			}
			return true
		})
		for _, n := range nodes {
			if got := n.Keys(); !reflect.DeepEqual(got, step.keys) {
				t.Fatalf("%s: %s holds %d keys unlike its file", step.name, n.Name(), len(got))
			}
		}
		// The pool still talks: a state set after the step reaches all.
		if err := nodes[2].SetLocalState(NodeState{Models: digests("rotate", i+1)}); err != nil {
			t.Fatal(err)
		}
		want := nodes[2].LocalState()
		testbin.Eventually(t, step.name+": state spreads", timing.PushPullInterval+5*time.Second, func() bool {
			for _, n := range nodes[:2] {
				if p, _ := n.Peer("rotate-2"); p.Status != StatusAlive || !reflect.DeepEqual(p.State, want) {
					return false
				}
			}
			return true
		})
	}
	for _, n := range nodes {
		if got := n.obs.leftCount(); got != 0 {
			t.Errorf("%s saw %d departures during the rotation", n.Name(), got)
		}
	}
	if _, err := startNode(t, Config{NodeName: "rotate-old", KeyringFile: writeKeyring(t, keyringPath(t, "old"), oldKey), Join: []string{nodes[1].Addr()}}); err == nil {
		t.Fatal("a node holding only the old key joined after rotation")
	}
	fresh := mustStart(t, Config{NodeName: "rotate-new", Timing: timing, KeyringFile: writeKeyring(t, keyringPath(t, "new"), newKey), Join: []string{nodes[1].Addr()}})
	if got := countStatus(fresh.Peers(), StatusAlive); got != 3 {
		t.Errorf("rotate-new sees %d alive members, want 3", got)
	}
}

// TestReloadKeyring rotates a 2-node pool's key by editing the keyring
// file in the three documented steps and reloading both nodes after each.
func TestReloadKeyring(t *testing.T) {
	t.Parallel()
	timing := Local()
	k1, k2 := newKey(t), newKey(t)
	paths := []string{keyringPath(t, "r0"), keyringPath(t, "r1")}
	nodes := make([]*testNode, 2)
	for i := range nodes {
		writeKeyring(t, paths[i], k1)
		cfg := Config{NodeName: "reload-" + string(rune('0'+i)), Timing: timing, KeyringFile: paths[i]}
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		nodes[i] = mustStart(t, cfg)
	}
	steps := []struct {
		name string
		keys [][]byte
	}{
		{"install k2", [][]byte{k1, k2}},
		{"use k2", [][]byte{k2, k1}},
		{"remove k1", [][]byte{k2}},
	}
	for i, step := range steps {
		for j, n := range nodes {
			writeKeyring(t, paths[j], step.keys...)
			if err := n.ReloadKeyring(); err != nil {
				t.Fatalf("%s: %s: %v", step.name, n.Name(), err)
			}
			if got := n.Keys(); !reflect.DeepEqual(got, step.keys) {
				t.Fatalf("%s: %s holds a different keyring than its file", step.name, n.Name())
			}
		}
		if err := nodes[1].SetLocalState(NodeState{Models: digests("reload", i+1)}); err != nil {
			t.Fatal(err)
		}
		want := nodes[1].LocalState()
		testbin.Eventually(t, step.name+": state spreads", timing.PushPullInterval+5*time.Second, func() bool {
			p, _ := nodes[0].Peer("reload-1")
			return p.Status == StatusAlive && reflect.DeepEqual(p.State, want)
		})
	}
	if _, err := startNode(t, Config{NodeName: "reload-old", KeyringFile: writeKeyring(t, keyringPath(t, "old"), k1), Join: []string{nodes[0].Addr()}}); err == nil {
		t.Fatal("a node holding only k1 joined after the file rotation")
	}
}

// TestKeyringErrors covers keyring files that must be refused, at start,
// on ReloadKeyring and when the watched file changes: the node keeps the
// keys it had and counts the failure.
func TestKeyringErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short := base64.StdEncoding.EncodeToString([]byte("too short"))
	bad := map[string]string{
		"empty":     "\n# nothing\n\n",
		"notbase64": "!!!!\n",
		"shortkey":  short + "\n",
	}
	for name, body := range bad {
		if _, err := parseKeyring(name, []byte(body)); err == nil {
			t.Errorf("%s keyring accepted", name)
		} else if strings.Contains(err.Error(), short) {
			t.Errorf("%s: error reveals key material: %v", name, err)
		}
		if _, err := startNode(t, Config{NodeName: "bad-" + name, KeyringFile: write(name, body)}); err == nil {
			t.Errorf("Start with the %s keyring succeeded", name)
		}
	}
	k := newKey(t)
	keys, err := parseKeyring("dups", []byte("  "+base64.StdEncoding.EncodeToString(k)+"  \n"+base64.StdEncoding.EncodeToString(k)+"\n"))
	if err != nil || len(keys) != 1 || !bytes.Equal(keys[0], k) {
		t.Errorf("keyring with a duplicate key = %d keys, %v", len(keys), err)
	}
	if err := WriteKeyring(dir+"/x", []byte("short")); err == nil {
		t.Error("WriteKeyring accepted a 5-byte key")
	}

	plain := mustStart(t, Config{NodeName: "plain"})
	if err := plain.ReloadKeyring(); !errors.Is(err, ErrEncryptionDisabled) {
		t.Errorf("ReloadKeyring without encryption = %v", err)
	}

	path := writeKeyring(t, dir+"/enc", k)
	enc := mustStart(t, Config{NodeName: "enc", KeyringFile: path, KeyringCheckInterval: 10 * time.Millisecond})
	loads := func(result string) float64 {
		return testbin.Metric(t, enc.reg, "meridian_gossip_keyring_loads_total", map[string]string{"result": result})
	}
	// Replace the file in one step, as WriteKeyring and Kubernetes do, so
	// that the watcher never reads it half written.
	if err := os.Rename(write("enc.new", bad["shortkey"]), path); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the watcher reports the broken file", 5*time.Second, func() bool { return loads("error") == 1 })
	if err := enc.ReloadKeyring(); err == nil {
		t.Error("ReloadKeyring accepted a keyring with a short key")
	}
	if got := enc.Keys(); !reflect.DeepEqual(got, [][]byte{k}) {
		t.Errorf("a broken keyring file changed the keys: %d keys", len(got))
	}
	if loads("error") != 2 || loads("ok") != 1 {
		t.Errorf("loads: %v failed, %v ok; want 2 (watcher once, ReloadKeyring once) and 1 (start)", loads("error"), loads("ok"))
	}
	k2 := newKey(t)
	if err := WriteKeyring(path, k2, k); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the repaired file is applied", 5*time.Second, func() bool { return loads("ok") == 2 })
	if got := enc.Keys(); !reflect.DeepEqual(got, [][]byte{k2, k}) {
		t.Errorf("after the repair the node holds %d keys, want the file's 2", len(got))
	}
}

// TestGenerateAndWriteKeyring checks the helpers a fleet uses to make its
// keyring: a fresh AES-256 key each time, written owner-only, that a node
// starts with and encrypts under.
func TestGenerateAndWriteKeyring(t *testing.T) {
	t.Parallel()
	k1, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := GenerateKey()
	if len(k1) != KeySize || bytes.Equal(k1, k2) {
		t.Fatalf("GenerateKey: %d bytes, distinct %v", len(k1), !bytes.Equal(k1, k2))
	}
	path := keyringPath(t, "fleet")
	if err := WriteKeyring(path, k1, k2); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring file mode %v, want 0600", fi.Mode().Perm())
	}
	n := mustStart(t, Config{NodeName: "generated", KeyringFile: path})
	if got := n.Keys(); !reflect.DeepEqual(got, [][]byte{k1, k2}) {
		t.Errorf("node holds %d keys, want the 2 written, primary first", len(got))
	}
	if testbin.Metric(t, n.reg, "meridian_gossip_keyring_primary", map[string]string{"fingerprint": Fingerprint(k1)}) != 1 {
		t.Error("the primary key's fingerprint is not reported")
	}
}
