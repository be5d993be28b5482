package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// MinVersion is the oldest TLS version either side accepts. TLS 1.3 is
// negotiated whenever the peer speaks it.
const MinVersion = tls.VersionTLS12

// ServerOptions configure ServerConfig.
type ServerOptions struct {
	// RequireClientCert turns on mutual TLS: a client must present a
	// certificate for client authentication that chains to the
	// Reloader's current CA bundle, or its handshake fails (and is
	// counted in meridian_tls_client_rejected_total).
	RequireClientCert bool
	// AllowedClients narrows RequireClientCert to certificates naming one
	// of these identities as a SAN: a URI (spiffe://meridian/glb) or a DNS
	// name (glb.meridian.internal), matched exactly (DNS names without
	// regard to case). Empty: any certificate the CA bundle trusts.
	AllowedClients []string
}

// ServerConfig is a server's tls.Config serving r's current certificate
// (tls.Config.GetCertificate) and, with RequireClientCert, verifying
// clients against r's current CA bundle. Clients are verified in
// VerifyConnection rather than by crypto/tls's ClientCAs, so that a
// rotated ca.crt applies to the next handshake — resumed sessions
// included, which VerifyConnection also sees — without a new tls.Config.
//
// It offers HTTP/2 and HTTP/1.1 by ALPN (NextProtos), so that an
// http.Server given it as TLSConfig speaks both whether it runs
// ServeTLS(ln, "", "") or Serve(tls.NewListener(ln, cfg)) (as
// httpserve.Serve does); a server that must not speak HTTP/2 sets
// NextProtos to []string{"http/1.1"}, and one that is not HTTP to nil.
func ServerConfig(r *Reloader, o ServerOptions) (*tls.Config, error) {
	if r.Certificate() == nil {
		return nil, fmt.Errorf("tls %s: a server needs a certificate and key (tls.crt and tls.key)", r.o.Name)
	}
	cfg := &tls.Config{
		MinVersion:     MinVersion,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if len(o.AllowedClients) > 0 && !o.RequireClientCert {
		return nil, fmt.Errorf("tls %s: allowed client identities need client certificates (RequireClientCert)", r.o.Name)
	}
	if o.RequireClientCert {
		if r.Pool() == nil {
			return nil, fmt.Errorf("tls %s: verifying client certificates needs a CA bundle (ca.crt)", r.o.Name)
		}
		allowed := slices.Clone(o.AllowedClients)
		// RequestClientCert, not RequireAnyClientCert: VerifyConnection
		// refuses a client without one itself, so that it is counted.
		cfg.ClientAuth = tls.RequestClientCert
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			reason, err := verifyClient(r.Pool(), cs.PeerCertificates, allowed)
			if err != nil {
				r.o.Metrics.reject(r.o.Name, reason)
			}
			return err
		}
	}
	return cfg, nil
}

// verifyClient verifies a client's chain against pool for client use,
// then its identity against allowed when set; on failure it says why, as
// a reason label.
func verifyClient(pool *x509.CertPool, chain []*x509.Certificate, allowed []string) (reason string, err error) {
	if len(chain) == 0 {
		return rejectNoCertificate, errors.New("tls: the client presented no certificate, and this server requires one")
	}
	opts := x509.VerifyOptions{
		Roots:         pool,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		CurrentTime:   time.Now(),
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := chain[0].Verify(opts); err != nil {
		return rejectUntrusted, fmt.Errorf("tls: client certificate %q is not trusted: %w", chain[0].Subject.String(), err)
	}
	if len(allowed) > 0 {
		if err := AllowedIdentity(chain[0], allowed); err != nil {
			return rejectIdentity, err
		}
	}
	return "", nil
}

// Identities are the identities a certificate names, as AllowedClients
// matches them: its URI SANs, then its DNS SANs.
func Identities(cert *x509.Certificate) []string {
	ids := make([]string, 0, len(cert.URIs)+len(cert.DNSNames))
	for _, u := range cert.URIs {
		ids = append(ids, u.String())
	}
	return append(ids, cert.DNSNames...)
}

// AllowedIdentity returns nil when cert names one of allowed as a URI or
// DNS SAN (DNS names compared without regard to case), and otherwise an
// error naming what it does name. Handlers that authorize per route can
// call it with r.TLS.PeerCertificates[0].
func AllowedIdentity(cert *x509.Certificate, allowed []string) error {
	for _, u := range cert.URIs {
		if slices.Contains(allowed, u.String()) {
			return nil
		}
	}
	for _, d := range cert.DNSNames {
		if slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, d) }) {
			return nil
		}
	}
	return fmt.Errorf("tls: peer identity %v is not among the allowed %v", Identities(cert), allowed)
}
