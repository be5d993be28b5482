package gossip

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrEncryptionDisabled is returned by ReloadKeyring on a node started
// without Config.KeyringFile. Encryption cannot be switched on in a running
// pool: every member would have to start encrypting at the same instant.
var ErrEncryptionDisabled = errors.New("gossip: encryption is not enabled on this node (no keyring file)")

// KeySize is the size of the keys GenerateKey makes: AES-256.
const KeySize = 32

// GenerateKey returns a new random AES-256 gossip key.
func GenerateKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("gossip: generate key: %w", err)
	}
	return k, nil
}

// WriteKeyring writes keys, primary first, to path as a keyring file that
// Config.KeyringFile reads: one standard-base64 key per line, readable by
// its owner only. It replaces the file atomically, so a node re-reading it
// never sees half a keyring. For a new pool:
//
//	k, err := gossip.GenerateKey()
//	...
//	err = gossip.WriteKeyring("gossip.keys", k)
func WriteKeyring(path string, keys ...[]byte) error {
	if len(keys) == 0 {
		return errors.New("gossip: write keyring: no keys")
	}
	var b bytes.Buffer
	b.WriteString("# Meridian gossip keys (base64 AES), primary first. Keep secret.\n")
	for i, k := range keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("gossip: write keyring: key %d: %w", i+1, err)
		}
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("gossip: write keyring: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // after a successful rename, nothing is there
	if _, err := tmp.Write(b.Bytes()); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("gossip: write keyring: %w", err)
	}
	if err := tmp.Close(); err != nil { // CreateTemp made it 0600
		return fmt.Errorf("gossip: write keyring: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("gossip: write keyring: %w", err)
	}
	return nil
}

// parseKeyring parses the keyring file at path, whose contents are b: one
// standard-base64 AES key of 16, 24 or 32 bytes per line, the first being
// the primary; blank lines and lines starting with '#' are skipped. Errors
// name the line, never the key.
func parseKeyring(path string, b []byte) ([][]byte, error) {
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
		return nil, fmt.Errorf("keyring %s holds no keys; make one with `head -c32 /dev/urandom | base64 > %s`", path, path)
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

// Fingerprint identifies a key without revealing it: the first 16 hex
// digits of its SHA-256. The meridian_gossip_keyring_primary metric
// carries the primary key's, so that an operator rotating keys can see
// which members have moved to the new one.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
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
// lists. It changes this node only; the node also does this by itself
// whenever the file changes (Config.KeyringCheckInterval). To rotate the
// pool's key, edit every member's file in three steps, waiting after each
// until every member shows it (meridian_gossip_keyring_keys and
// meridian_gossip_keyring_primary): add the new key as a second line; move
// it to the first line; delete the old line. Skipping the wait can split
// the pool: a member that encrypts with a key another does not hold yet
// cannot reach it.
func (n *Node) ReloadKeyring() error {
	if n.closed.Load() {
		return ErrShutdown
	}
	if n.keyring == nil {
		return ErrEncryptionDisabled
	}
	b, err := os.ReadFile(n.cfg.KeyringFile)
	if err == nil {
		err = n.applyKeyring(b)
	}
	if err != nil {
		n.metrics.keyringLoads.WithLabelValues(loadError).Inc()
		return fmt.Errorf("gossip: reload keyring: %w", err)
	}
	return nil
}

// applyKeyring makes the keyring match the file contents b.
func (n *Node) applyKeyring(b []byte) error {
	keys, err := parseKeyring(n.cfg.KeyringFile, b)
	if err != nil {
		return err
	}
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	for _, k := range keys {
		if err := n.keyring.AddKey(k); err != nil {
			return fmt.Errorf("install key: %w", err)
		}
	}
	if err := n.keyring.UseKey(keys[0]); err != nil {
		return fmt.Errorf("use primary key: %w", err)
	}
	for _, k := range n.keysLocked() {
		if !containsKey(keys, k) {
			if err := n.keyring.RemoveKey(k); err != nil {
				return fmt.Errorf("remove key: %w", err)
			}
		}
	}
	n.keyringSum = sha256.Sum256(b)
	n.metrics.keyringLoaded(keys)
	n.log.Info("gossip keyring loaded", "keys", len(keys), "primary", Fingerprint(keys[0]))
	return nil
}

// watchKeyring re-reads the keyring file every KeyringCheckInterval and
// applies it when its contents change. A file that fails to load is
// reported once per change and leaves the keyring as it was.
func (n *Node) watchKeyring() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.KeyringCheckInterval)
	defer t.Stop()
	var failed [sha256.Size]byte
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		b, err := os.ReadFile(n.cfg.KeyringFile)
		sum := sha256.Sum256(b)
		n.keyMu.Lock()
		applied := sum == n.keyringSum
		n.keyMu.Unlock()
		switch {
		case err == nil && applied:
			failed = [sha256.Size]byte{}
			continue
		case sum == failed:
			continue // reported already
		}
		if err == nil {
			err = n.applyKeyring(b)
		}
		if err != nil {
			failed = sum
			n.metrics.keyringLoads.WithLabelValues(loadError).Inc()
			n.log.Error("gossip keyring file changed but cannot be used; keeping the keys in use", "file", n.cfg.KeyringFile, "err", err)
		}
	}
}
