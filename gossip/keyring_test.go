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

// TestRotateKey rotates the key of a running 3-node pool with RotateKey,
// checks that the pool stays whole and keeps exchanging state on the new
// key, and that a node holding only the old key can no longer join.
func TestRotateKey(t *testing.T) {
	t.Parallel()
	timing := Local()
	oldKey, newKey := newKey(t), newKey(t)
	keys := writeKeyring(t, keyringPath(t, "pool"), oldKey)
	nodes := startCluster(t, "rotate", 3, Config{Timing: timing, KeyringFile: keys})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := nodes[0].RotateKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if got := n.Keys(); !reflect.DeepEqual(got, [][]byte{newKey}) {
			t.Errorf("%s holds %d keys after rotation, want only the new one (has new: %v)", n.Name(), len(got), len(got) > 0 && bytes.Equal(got[0], newKey))
		}
	}

	// The pool still talks: a state set after the rotation reaches all.
	if err := nodes[2].SetLocalState(NodeState{Models: digests("rotate", 2)}); err != nil {
		t.Fatal(err)
	}
	want := nodes[2].LocalState()
	testbin.Eventually(t, "the post-rotation state spreads", timing.PushPullInterval+5*time.Second, func() bool {
		for _, n := range nodes[:2] {
			if p, _ := n.Peer("rotate-2"); !reflect.DeepEqual(p.State, want) {
				return false
			}
		}
		return true
	})
	quiet(timing)
	for _, n := range nodes {
		if got := countStatus(n.Peers(), StatusAlive); got != 2 || n.obs.leftCount() != 0 {
			t.Errorf("%s after rotation: %d alive peers, %d departures; want 2 and 0", n.Name(), got, n.obs.leftCount())
		}
	}

	// Old key only: locked out. New key: welcome.
	if _, err := startNode(t, Config{NodeName: "rotate-old", KeyringFile: writeKeyring(t, keyringPath(t, "old"), oldKey), Join: []string{nodes[1].Addr()}}); err == nil {
		t.Fatal("a node holding only the old key joined after rotation")
	}
	fresh := mustStart(t, Config{NodeName: "rotate-new", Timing: timing, KeyringFile: writeKeyring(t, keyringPath(t, "new"), newKey), Join: []string{nodes[1].Addr()}})
	// The join's push/pull tells both sides everything at once; the other
	// members hear by gossip or a later push/pull, which memberlist's
	// Local preset does not bound tightly.
	if got := countStatus(fresh.Peers(), StatusAlive); got != 3 {
		t.Errorf("rotate-new sees %d alive members, want 3", got)
	}
	// The joined member answers before it merges, so give it a moment.
	testbin.Eventually(t, "rotate-1 sees rotate-new", 5*time.Second, func() bool {
		p, ok := nodes[1].Peer("rotate-new")
		return ok && p.Status == StatusAlive
	})
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

// TestKeyringErrors covers keyring files and key operations that must be
// refused.
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
	for name, body := range map[string]string{
		"empty":     "\n# nothing\n\n",
		"notbase64": "!!!!\n",
		"shortkey":  short + "\n",
	} {
		if _, err := readKeyringFile(write(name, body)); err == nil {
			t.Errorf("%s keyring accepted", name)
		} else if strings.Contains(err.Error(), short) {
			t.Errorf("%s: error reveals key material: %v", name, err)
		}
	}
	if _, err := readKeyringFile(dir + "/missing"); err == nil {
		t.Error("missing keyring accepted")
	}
	k := newKey(t)
	keys, err := readKeyringFile(write("dups", "  "+base64.StdEncoding.EncodeToString(k)+"  \n"+base64.StdEncoding.EncodeToString(k)+"\n"))
	if err != nil || len(keys) != 1 || !bytes.Equal(keys[0], k) {
		t.Errorf("keyring with a duplicate key = %d keys, %v", len(keys), err)
	}

	plain := mustStart(t, Config{NodeName: "plain"})
	ctx := context.Background()
	if err := plain.RotateKey(ctx, k); !errors.Is(err, ErrEncryptionDisabled) {
		t.Errorf("RotateKey without encryption = %v", err)
	}
	if err := plain.ReloadKeyring(); !errors.Is(err, ErrEncryptionDisabled) {
		t.Errorf("ReloadKeyring without encryption = %v", err)
	}

	enc := mustStart(t, Config{NodeName: "enc", KeyringFile: writeKeyring(t, dir+"/enc", k)})
	if err := enc.InstallKey(ctx, []byte("short")); err == nil {
		t.Error("InstallKey accepted a 5-byte key")
	}
	if err := enc.UseKey(ctx, newKey(t)); err == nil {
		t.Error("UseKey accepted a key that is not installed")
	}
	if err := enc.RemoveKey(ctx, k); err == nil {
		t.Error("RemoveKey removed the primary key")
	}
}
