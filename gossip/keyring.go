package gossip

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrEncryptionDisabled is returned by the key operations of a node started
// without Config.KeyringFile. Encryption cannot be switched on in a running
// pool: every member would have to start encrypting at the same instant.
var ErrEncryptionDisabled = errors.New("gossip: encryption is not enabled on this node (no keyring file)")

// readKeyringFile parses a keyring file: one standard-base64 AES key of 16,
// 24 or 32 bytes per line, the first being the primary; blank lines and
// lines starting with '#' are skipped. Errors name the line, never the key.
func readKeyringFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return nil, fmt.Errorf("keyring %s line %d: not standard base64", path, line)
		}
		if err := memberlist.ValidateKey(key); err != nil {
			return nil, fmt.Errorf("keyring %s line %d: %d-byte key: %w", path, line, len(key), err)
		}
		if !containsKey(keys, key) {
			keys = append(keys, key)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("keyring %s holds no keys", path)
	}
	return keys, nil
}

func containsKey(keys [][]byte, key []byte) bool {
	for _, k := range keys {
		if bytes.Equal(k, key) {
			return true
		}
	}
	return false
}

// Keys returns a copy of this node's keyring, primary first, or nil if
// gossip is not encrypted.
func (n *Node) Keys() [][]byte {
	if n.keyring == nil {
		return nil
	}
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	return n.keysLocked()
}

func (n *Node) keysLocked() [][]byte {
	var out [][]byte
	for _, k := range n.keyring.GetKeys() {
		out = append(out, bytes.Clone(k))
	}
	return out
}

// ReloadKeyring re-reads Config.KeyringFile and makes this node's keyring
// match it, in memberlist's safe order: install the keys that are new, make
// the file's first key primary, then remove the keys the file no longer
// lists. It changes this node only. To rotate the pool's key by file, edit
// every member's file and reload every member after each of three steps:
// add the new key as a second line; move it to the first line; delete the
// old line. Node.RotateKey does the same over the network.
func (n *Node) ReloadKeyring() error {
	if n.closed.Load() {
		return ErrShutdown
	}
	if n.keyring == nil {
		return ErrEncryptionDisabled
	}
	keys, err := readKeyringFile(n.cfg.KeyringFile)
	if err != nil {
		return fmt.Errorf("gossip: reload: %w", err)
	}
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	for _, k := range keys {
		if err := n.keyring.AddKey(k); err != nil {
			return fmt.Errorf("gossip: reload: install key: %w", err)
		}
	}
	if err := n.keyring.UseKey(keys[0]); err != nil {
		return fmt.Errorf("gossip: reload: use primary key: %w", err)
	}
	for _, k := range n.keysLocked() {
		if !containsKey(keys, k) {
			if err := n.keyring.RemoveKey(k); err != nil {
				return fmt.Errorf("gossip: reload: remove key: %w", err)
			}
		}
	}
	n.log.Info("gossip keyring reloaded", "keys", len(keys))
	return nil
}

// RotateKey makes newPrimary the only key of every live member: it
// installs newPrimary everywhere, makes it the primary everywhere, then
// removes every other key this node holds, everywhere — memberlist's
// install, use, remove sequence, with each step acknowledged by every live
// member before the next begins, so no two members ever lack a common key.
// The key travels encrypted with the pool's current key. If a step fails,
// RotateKey stops and returns which members failed; the pool is left in a
// consistent state (all steps before the failed one complete everywhere),
// and RotateKey may be called again. Members down during the rotation need
// the new key in their keyring file before they start; update the files
// anyway, as a restarted member reads its file. Do not add members while a
// rotation runs.
func (n *Node) RotateKey(ctx context.Context, newPrimary []byte) error {
	if err := n.InstallKey(ctx, newPrimary); err != nil {
		return err
	}
	if err := n.UseKey(ctx, newPrimary); err != nil {
		return err
	}
	for _, k := range n.Keys() {
		if !bytes.Equal(k, newPrimary) {
			if err := n.RemoveKey(ctx, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// InstallKey adds key to the keyring of this node and every live member,
// for decryption only. It is the first step of a rotation.
func (n *Node) InstallKey(ctx context.Context, key []byte) error {
	return n.keyOperation(ctx, keyInstall, key)
}

// UseKey makes key, already installed everywhere, the primary key of every
// live member and then of this node. It is the second step of a rotation.
func (n *Node) UseKey(ctx context.Context, key []byte) error {
	return n.keyOperation(ctx, keyUse, key)
}

// RemoveKey removes key from every live member and then from this node.
// Removing a member's primary key fails on that member. It is the last step
// of a rotation.
func (n *Node) RemoveKey(ctx context.Context, key []byte) error {
	return n.keyOperation(ctx, keyRemove, key)
}

// keyOperation applies op across the pool. Install runs on this node first
// (a bad key fails before anything is sent); use and remove run on the
// other members first, so that this node keeps speaking a key they hold
// until they have all moved.
func (n *Node) keyOperation(ctx context.Context, op keyOpKind, key []byte) error {
	if n.closed.Load() {
		return ErrShutdown
	}
	if n.keyring == nil {
		return ErrEncryptionDisabled
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return fmt.Errorf("gossip: %s key: %w", op, err)
	}
	switch op {
	case keyInstall:
		if err := n.applyKeyOp(op, key); err != nil {
			return fmt.Errorf("gossip: install key on %s: %w", n.name, err)
		}
	case keyUse:
		if !containsKey(n.Keys(), key) {
			return fmt.Errorf("gossip: use key: not installed on %s; install it first", n.name)
		}
	case keyRemove:
		if keys := n.Keys(); len(keys) > 0 && bytes.Equal(keys[0], key) {
			return fmt.Errorf("gossip: remove key: it is the primary key of %s; use another key first", n.name)
		}
	}

	if err := n.keyOpRemote(ctx, op, key); err != nil {
		return err
	}
	if op != keyInstall {
		if err := n.applyKeyOp(op, key); err != nil {
			return fmt.Errorf("gossip: %s key on %s: %w", op, n.name, err)
		}
	}
	n.log.Info("gossip key operation done", "op", op.String())
	return nil
}

// keyOpRemote asks every live member to apply op and waits for all their
// acknowledgements, until ctx ends or, if ctx has no deadline, three
// TCPTimeouts pass.
func (n *Node) keyOpRemote(ctx context.Context, op keyOpKind, key []byte) error {
	n.mu.Lock()
	targets := n.liveNodesLocked()
	n.mu.Unlock()
	if len(targets) == 0 {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 3*n.cfg.Timing.TCPTimeout)
		defer cancel()
	}

	id := randomID()
	acks := n.keyWait.register(id, len(targets))
	defer n.keyWait.unregister(id)

	failures := make(map[string]string)
	var fmu sync.Mutex
	n.sendAll(targets, encodeKeyOp(keyOp{id: id, from: n.name, op: op, key: key}), func(name string, err error) {
		fmu.Lock()
		failures[name] = "send: " + err.Error()
		fmu.Unlock()
	})

	waiting := make(map[string]bool, len(targets))
	for _, t := range targets {
		if _, failed := failures[t.Name]; !failed {
			waiting[t.Name] = true
		}
	}
	for len(waiting) > 0 {
		select {
		case a := <-acks:
			if !waiting[a.from] {
				continue
			}
			delete(waiting, a.from)
			if a.err != "" {
				failures[a.from] = a.err
			}
		case <-ctx.Done():
			for name := range waiting {
				failures[name] = "no acknowledgement: " + ctx.Err().Error()
			}
			waiting = nil
		}
	}
	if len(failures) == 0 {
		return nil
	}
	names := make([]string, 0, len(failures))
	for name := range failures {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		errs = append(errs, fmt.Errorf("%s: %s", name, failures[name]))
	}
	return fmt.Errorf("gossip: %s key on %d of %d members failed: %w", op, len(failures), len(targets), errors.Join(errs...))
}

func (n *Node) applyKeyOp(op keyOpKind, key []byte) error {
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	switch op {
	case keyInstall:
		return n.keyring.AddKey(bytes.Clone(key))
	case keyUse:
		return n.keyring.UseKey(key)
	case keyRemove:
		return n.keyring.RemoveKey(key)
	}
	return fmt.Errorf("unknown key operation %d", op)
}

// handleKeyOp applies a key operation another member asked for and answers
// it. Only a member holding one of this node's keys can ask: memberlist
// drops traffic it cannot decrypt.
func (n *Node) handleKeyOp(o keyOp) {
	var ack keyAck
	ack.id, ack.from = o.id, n.name
	switch {
	case n.keyring == nil:
		ack.err = ErrEncryptionDisabled.Error()
	default:
		if err := n.applyKeyOp(o.op, o.key); err != nil {
			ack.err = err.Error()
		}
	}
	n.log.Info("gossip key operation requested", "op", o.op.String(), "from", o.from, "err", ack.err)

	n.mu.Lock()
	r, ok := n.peers[o.from]
	var to memberlist.Node
	if ok && r.known {
		to = r.node
	}
	n.mu.Unlock()
	if to.Name == "" {
		n.log.Warn("cannot acknowledge key operation: sender unknown", "from", o.from)
		return
	}
	// Answer off memberlist's receive path: a TCP send may take TCPTimeout.
	go func() {
		if n.closed.Load() {
			return
		}
		if err := n.ml.Load().SendReliable(&to, encodeKeyAck(ack)); err != nil {
			n.log.Warn("cannot acknowledge key operation", "to", o.from, "err", err)
		}
	}()
}

// keyWaiters routes key acknowledgements to the operation waiting for them.
type keyWaiters struct {
	mu sync.Mutex
	m  map[uint64]chan keyAck
}

func (w *keyWaiters) register(id uint64, n int) <-chan keyAck {
	ch := make(chan keyAck, n)
	w.mu.Lock()
	w.m[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *keyWaiters) unregister(id uint64) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

func (w *keyWaiters) deliver(a keyAck) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.m[a.id]; ok {
		select {
		case ch <- a:
		default: // more acks than members asked: ignore
		}
	}
}

func randomID() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return uint64(time.Now().UnixNano())
	}
	return binary.LittleEndian.Uint64(b[:])
}
