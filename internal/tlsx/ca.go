package tlsx

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// Lifetimes when options name none.
const (
	// DefaultCATTL is a new CA's lifetime: ten years, as kubeadm's.
	DefaultCATTL = 10 * 365 * 24 * time.Hour
	// DefaultCertTTL is an issued certificate's lifetime: 90 days, as
	// cert-manager's default.
	DefaultCertTTL = 90 * 24 * time.Hour
	// backdate is how far before now a certificate's validity starts, so
	// that a peer whose clock runs a little behind accepts it at once.
	backdate = 5 * time.Minute
)

// CA issues certificates: the Meridian CA made by NewCA, or any CA
// certificate and key on disk (LoadCA), the operator's included.
type CA struct {
	// Cert is the CA's certificate.
	Cert *x509.Certificate
	key  crypto.Signer
	// bundle is the CA as files: tls.crt (its chain), tls.key, ca.crt
	// (the trust anchor its certificates chain to).
	bundle Bundle
}

// CAOptions configure NewCA.
type CAOptions struct {
	// CommonName names the CA. Empty: "Meridian CA".
	CommonName string
	// TTL is its lifetime. Zero: DefaultCATTL.
	TTL time.Duration
}

// NewCA creates a self-signed ECDSA P-256 root that signs end-entity
// certificates only (path length 0).
func NewCA(o CAOptions) (*CA, error) {
	if o.CommonName == "" {
		o.CommonName = "Meridian CA"
	}
	if o.TTL <= 0 {
		o.TTL = DefaultCATTL
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.CommonName, Organization: []string{"Meridian"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(o.TTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signing the CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return ParseCA(Bundle{Cert: certPEM, Key: keyPEM, CA: certPEM})
}

// LoadCA reads a CA from files: Cert holds the CA certificate (followed
// by its own chain when it is an intermediate), Key its private key, and
// CA the trust anchor peers are given (empty: the CA certificate itself).
// Dir(dir) reads a directory written by CA.Bundle().WriteDir or
// `meridian ca init`.
func LoadCA(f Files) (*CA, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("loading a CA: give its certificate and key")
	}
	b, err := f.Read()
	if err != nil {
		return nil, fmt.Errorf("loading a CA: %w", err)
	}
	return ParseCA(b)
}

// ParseCA parses a CA from a Bundle (see LoadCA), checking that its
// certificate is a CA that may sign certificates and matches its key.
func ParseCA(b Bundle) (*CA, error) {
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return nil, fmt.Errorf("loading a CA: %w", err)
	}
	cert := pair.Leaf
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("loading a CA: %q is not a CA certificate (it needs basic constraints CA:TRUE and the keyCertSign usage)", cert.Subject.String())
	}
	if time.Now().After(cert.NotAfter) {
		return nil, fmt.Errorf("loading a CA: %q expired at %s: create a new CA", cert.Subject.String(), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("loading a CA: its key (%T) cannot sign", pair.PrivateKey)
	}
	if len(b.CA) == 0 {
		b.CA = encodeCerts(cert)
	} else if _, err := parseCerts(b.CA, "the CA's ca.crt"); err != nil {
		return nil, fmt.Errorf("loading a CA: %w", err)
	}
	return &CA{Cert: cert, key: signer, bundle: b}, nil
}

// Bundle is the CA as files (tls.crt, tls.key, ca.crt): write it with
// WriteDir, keep tls.key secret.
func (ca *CA) Bundle() Bundle { return ca.bundle }

// Usage is what an issued certificate authenticates.
type Usage string

// Usages.
const (
	UsageServer Usage = "server" // a server to its clients
	UsageClient Usage = "client" // a client to servers (mutual TLS)
	UsageBoth   Usage = "both"   // either, for a process that is both
)

// ParseUsage parses server, client or both.
func ParseUsage(s string) (Usage, error) {
	switch u := Usage(s); u {
	case UsageServer, UsageClient, UsageBoth:
		return u, nil
	}
	return "", fmt.Errorf("certificate usage %q: use server, client or both", s)
}

func (u Usage) extKeyUsage() ([]x509.ExtKeyUsage, error) {
	switch u {
	case UsageServer:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil
	case UsageClient:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil
	case UsageBoth:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil
	}
	_, err := ParseUsage(string(u))
	return nil, err
}

// IssueOptions describe a certificate to issue.
type IssueOptions struct {
	// CommonName is the subject's CN, for people reading the certificate;
	// peers check the SANs below. Empty: the first DNS name or IP, else
	// the first URI when it fits the CN's 64 characters, else none.
	CommonName string
	// DNSNames, IPs and URIs are the subject alternative names: the names
	// a server is dialed by, and the identities ServerOptions.AllowedClients
	// matches. At least one is required.
	DNSNames []string
	IPs      []net.IP
	URIs     []*url.URL
	// Usage is what the certificate authenticates. Required.
	Usage Usage
	// TTL is its lifetime, cut to the CA's own. Zero: DefaultCertTTL.
	TTL time.Duration
}

// Issue creates a key and a certificate for it signed by ca, returned as
// files: tls.crt (the certificate, then the CA's chain when the CA is an
// intermediate), tls.key and ca.crt (the CA's trust anchor).
func (ca *CA) Issue(o IssueOptions) (Bundle, error) {
	eku, err := o.Usage.extKeyUsage()
	if err != nil {
		return Bundle{}, err
	}
	if len(o.DNSNames)+len(o.IPs)+len(o.URIs) == 0 {
		return Bundle{}, errors.New("issuing a certificate: give at least one DNS name, IP address or URI")
	}
	if o.CommonName == "" {
		o.CommonName = firstName(o)
	}
	if o.TTL <= 0 {
		o.TTL = DefaultCertTTL
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Bundle{}, fmt.Errorf("generating a key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return Bundle{}, err
	}
	now := time.Now()
	notAfter := now.Add(o.TTL)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.CommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		DNSNames:              o.DNSNames,
		IPAddresses:           o.IPs,
		URIs:                  o.URIs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return Bundle{}, fmt.Errorf("signing a certificate for %q: %w", o.CommonName, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return Bundle{}, err
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if !selfSigned(ca.Cert) {
		chain = append(chain, ca.bundle.Cert...)
	}
	return Bundle{Cert: chain, Key: keyPEM, CA: bytes.Clone(ca.bundle.CA)}, nil
}

func firstName(o IssueOptions) string {
	switch {
	case len(o.DNSNames) > 0:
		return o.DNSNames[0]
	case len(o.IPs) > 0:
		return o.IPs[0].String()
	case len(o.URIs[0].String()) <= 64: // RFC 5280's ub-common-name
		return o.URIs[0].String()
	}
	return ""
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("drawing a serial number: %w", err)
	}
	return s, nil
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding a private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
