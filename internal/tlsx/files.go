package tlsx

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The file names of cert-manager's Secret layout (and of kubernetes.io/tls
// Secrets, plus ca.crt).
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
	CAFile   = "ca.crt"
)

// Files names where a certificate, its key and a CA bundle are read from.
// Each path may be a symlink (a mounted Secret's files are links into
// ..data); the Reloader reads through them.
type Files struct {
	// Cert is a PEM certificate chain, leaf first. Empty together with
	// Key: no certificate of our own (a client that presents none).
	Cert string
	// Key is the PEM private key of Cert's leaf (PKCS#8, SEC 1 or PKCS#1).
	Key string
	// CA is a PEM bundle of the CAs trusted to sign peers. Empty: none
	// (a server that asks for no client certificate, or a client that
	// trusts the system's roots).
	CA string
}

// Dir is the Files of a directory in cert-manager's layout: dir/tls.crt,
// dir/tls.key and dir/ca.crt.
func Dir(dir string) Files {
	return Files{Cert: filepath.Join(dir, CertFile), Key: filepath.Join(dir, KeyFile), CA: filepath.Join(dir, CAFile)}
}

// Override is f with each path that o sets in place of f's: a directory's
// Files with some files named explicitly.
func (f Files) Override(o Files) Files {
	for _, x := range []struct{ v, dst *string }{{&o.Cert, &f.Cert}, {&o.Key, &f.Key}, {&o.CA, &f.CA}} {
		if *x.v != "" {
			*x.dst = *x.v
		}
	}
	return f
}

// Bundle is a certificate set in memory, PEM-encoded, as the three files
// of cert-manager's layout hold it.
type Bundle struct {
	Cert, Key, CA []byte
}

// Read reads the files that f names (those that are set).
func (f Files) Read() (Bundle, error) {
	var b Bundle
	for _, x := range []struct {
		path string
		dst  *[]byte
	}{{f.Cert, &b.Cert}, {f.Key, &b.Key}, {f.CA, &b.CA}} {
		if x.path == "" {
			continue
		}
		data, err := os.ReadFile(x.path)
		if err != nil {
			return Bundle{}, fmt.Errorf("reading %s: %w", x.path, err)
		}
		*x.dst = data
	}
	return b, nil
}

// WriteDir writes b into dir in cert-manager's layout the way kubelet
// updates a mounted Secret: the files go into a new hidden directory, the
// ..data symlink is swapped to it in one rename, and tls.crt, tls.key and
// ca.crt are links through ..data. A reader (a Reloader, a pod's volume
// consumer) therefore never sees a new certificate beside an old key.
// The key is written 0600, the certificates 0644; the previous version's
// directory is removed.
func (b Bundle) WriteDir(dir string) error {
	if len(b.Cert) == 0 || len(b.Key) == 0 || len(b.CA) == 0 {
		return errors.New("writing a certificate set: tls.crt, tls.key and ca.crt are all required")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing a certificate set: %w", err)
	}
	version, err := os.MkdirTemp(dir, "..meridian_")
	if err != nil {
		return fmt.Errorf("writing a certificate set in %s: %w", dir, err)
	}
	if err := os.Chmod(version, 0o755); err != nil {
		return fmt.Errorf("writing a certificate set in %s: %w", dir, err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{CertFile, b.Cert, 0o644}, {KeyFile, b.Key, 0o600}, {CAFile, b.CA, 0o644}} {
		if err := writeSynced(filepath.Join(version, f.name), f.data, f.mode); err != nil {
			_ = os.RemoveAll(version)
			return fmt.Errorf("writing a certificate set in %s: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "..data")
	previous, _ := os.Readlink(data)
	if err := swapLink(filepath.Base(version), data); err != nil {
		_ = os.RemoveAll(version)
		return fmt.Errorf("writing a certificate set in %s: %w", dir, err)
	}
	for _, name := range []string{CertFile, KeyFile, CAFile} {
		target := filepath.Join("..data", name)
		if cur, err := os.Readlink(filepath.Join(dir, name)); err == nil && cur == target {
			continue
		}
		if err := swapLink(target, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("writing a certificate set in %s: %w", dir, err)
		}
	}
	if previous != "" && previous != filepath.Base(version) && filepath.Base(previous) == previous {
		_ = os.RemoveAll(filepath.Join(dir, previous))
	}
	return nil
}

// swapLink points path at target atomically: a new link beside it, renamed
// over it (a link or a regular file alike).
func swapLink(target, path string) error {
	tmp := path + "_tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// parseCerts parses every block of a PEM bundle, which must all be
// certificates, and at least one.
func parseCerts(data []byte, what string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: a %q PEM block where only certificates belong", what, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate in it", what)
	}
	return certs, nil
}

func encodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
