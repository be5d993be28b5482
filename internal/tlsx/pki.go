package tlsx

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// LocalPKI keeps the certificates of a fleet on one machine: a Meridian
// CA in Dir/ca and one certificate per component in Dir/<name>, each in
// cert-manager's layout, so a component reads Dir(pki.Path(name)) as it
// would a mounted Secret.
type LocalPKI struct {
	// Dir holds the CA and the certificates (created 0755; keys 0600).
	Dir string
	// TTL is the lifetime of the certificates issued. Zero: DefaultCertTTL.
	TTL time.Duration
	// RenewBefore is how long before expiry a certificate is re-issued.
	// Zero: a third of its lifetime, as cert-manager renews.
	RenewBefore time.Duration
}

// CertRequest is one certificate LocalPKI keeps.
type CertRequest struct {
	// Name is the certificate's directory under Dir ("glb", "us-east"):
	// letters, digits, '-', '_' and '.'; "ca" is the CA's.
	Name string
	// IssueOptions say what it certifies. With no SAN at all it names
	// Name as a DNS name; with no Usage it is both a server and a client
	// certificate, since a fleet's processes are both.
	IssueOptions
}

// Path is the directory of the certificate called name.
func (p LocalPKI) Path(name string) string { return filepath.Join(p.Dir, name) }

// CAPath is the CA's directory; its ca.crt is what clients of the fleet
// trust (curl --cacert).
func (p LocalPKI) CAPath() string { return p.Path("ca") }

// Ensure makes sure the CA and every requested certificate exist, chain
// to the CA, certify what their request says and are not due for
// renewal, issuing those that are not. It is idempotent: run it at every
// start. It returns the names it issued, for the caller to log.
func (p LocalPKI) Ensure(reqs ...CertRequest) (issued []string, err error) {
	ca, err := p.ensureCA()
	if err != nil {
		return nil, err
	}
	for _, req := range reqs {
		if err := validName(req.Name); err != nil {
			return issued, err
		}
		if len(req.DNSNames)+len(req.IPs)+len(req.URIs) == 0 {
			req.DNSNames = []string{req.Name}
		}
		if req.Usage == "" {
			req.Usage = UsageBoth
		}
		if req.TTL <= 0 {
			req.TTL = p.TTL
		}
		dir := p.Path(req.Name)
		if p.current(dir, ca, req.IssueOptions) {
			continue
		}
		b, err := ca.Issue(req.IssueOptions)
		if err != nil {
			return issued, fmt.Errorf("certificate %s: %w", req.Name, err)
		}
		if err := b.WriteDir(dir); err != nil {
			return issued, fmt.Errorf("certificate %s: %w", req.Name, err)
		}
		issued = append(issued, req.Name)
	}
	return issued, nil
}

func (p LocalPKI) ensureCA() (*CA, error) {
	ca, err := LoadCA(Dir(p.CAPath()))
	if err == nil {
		return ca, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the local CA in %s: %w (remove the directory to start a new CA; every certificate is then re-issued)", p.CAPath(), err)
	}
	if ca, err = NewCA(CAOptions{CommonName: "Meridian local CA"}); err != nil {
		return nil, err
	}
	if err := ca.Bundle().WriteDir(p.CAPath()); err != nil {
		return nil, err
	}
	return ca, nil
}

// current reports whether dir holds a certificate that ca signed for
// exactly what o asks, far enough from expiry.
func (p LocalPKI) current(dir string, ca *CA, o IssueOptions) bool {
	b, err := Dir(dir).Read()
	if err != nil || string(b.CA) != string(ca.Bundle().CA) {
		return false
	}
	m, err := load(b, time.Now())
	if err != nil {
		return false
	}
	leaf := m.cert.Leaf
	eku, _ := o.Usage.extKeyUsage()
	renew := p.RenewBefore
	if renew <= 0 {
		renew = leaf.NotAfter.Sub(leaf.NotBefore) / 3
	}
	return leaf.CheckSignatureFrom(ca.Cert) == nil &&
		time.Until(leaf.NotAfter) > renew &&
		slices.Equal(leaf.ExtKeyUsage, eku) &&
		slices.Equal(leaf.DNSNames, o.DNSNames) &&
		slices.EqualFunc(leaf.IPAddresses, o.IPs, net.IP.Equal) &&
		slices.EqualFunc(leaf.URIs, o.URIs, func(a, b *url.URL) bool { return a.String() == b.String() })
}

func validName(name string) error {
	if name == "" || name == "ca" || strings.HasPrefix(name, ".") ||
		strings.ContainsFunc(name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
		}) {
		return fmt.Errorf("certificate name %q: use letters, digits, '-', '_' and '.', not starting with '.', and not \"ca\"", name)
	}
	return nil
}
