package fleet

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"meridian.dev/meridian/glb"
	"meridian.dev/meridian/internal/auth"
	"meridian.dev/meridian/internal/tlsx"
)

// A local fleet is secured as a real one is (unless Options.Insecure):
// its own CA under <StateDir>/pki issues the balancer's certificate
// (its HTTPS front, and its client certificate for the regions) and each
// region's (its fronts and gateway, by the region's address and the
// zone's names); the regions' fronts take only the balancer's
// certificate (mutual TLS); one tenant, "demo", holds an API key that the
// front's door and the regions' check (quotas at the front only).

// balancerIdentity is the DNS name in the balancer's certificate, the one
// client identity the regions' fronts accept.
const balancerIdentity = "glb.meridian.local"

// security is a secured fleet's material.
type security struct {
	pki tlsx.LocalPKI
	// apiKeys and tenants are the auth files; apiKey is demo's key.
	apiKeys, tenants, apiKey string
	// upstream is the balancer's mutual-TLS client, which the fleet's own
	// readiness checks of the regions' fronts use too.
	upstream *http.Client
}

// secure issues the fleet's certificates (regions at hosts) and writes
// the demo tenant's key and policy.
func secure(dir, zone string, hosts map[string]string) (*security, error) {
	s := &security{pki: tlsx.LocalPKI{Dir: filepath.Join(dir, "pki")}}
	reqs := []tlsx.CertRequest{{Name: "glb", IssueOptions: tlsx.IssueOptions{
		CommonName: balancerIdentity, DNSNames: []string{balancerIdentity, "localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}}}
	for name, host := range hosts {
		reqs = append(reqs, tlsx.CertRequest{Name: name, IssueOptions: tlsx.IssueOptions{
			CommonName: name, DNSNames: []string{name + ".meridian.local", zone, "*." + zone}, IPs: []net.IP{net.ParseIP(host)}}})
	}
	if _, err := s.pki.Ensure(reqs...); err != nil {
		return nil, fmt.Errorf("the fleet's certificates: %w", err)
	}
	adir := filepath.Join(dir, "auth")
	if err := os.MkdirAll(adir, 0o700); err != nil {
		return nil, err
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	s.apiKey = hex.EncodeToString(b)
	s.apiKeys, s.tenants = filepath.Join(adir, "api-keys"), filepath.Join(adir, "tenants.yaml")
	if err := os.WriteFile(s.apiKeys, []byte("# the local fleet's tenant (meridian up writes a new key each start)\ndemo "+s.apiKey+"\n"), 0o600); err != nil {
		return nil, err
	}
	// Generous: drills offer up to a few hundred requests a second.
	policy := "tenants:\n  demo: {rate: 5000, burst: 10000, maxConcurrent: 2048, admin: true}\n"
	if err := os.WriteFile(s.tenants, []byte(policy), 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

// CAFile is the fleet CA's certificate (curl --cacert); "" when insecure.
func (f *Fleet) CAFile() string {
	if f.sec == nil {
		return ""
	}
	return filepath.Join(f.sec.pki.CAPath(), "ca.crt")
}

// APIKey is the demo tenant's key (Authorization: Bearer); "" when
// insecure.
func (f *Fleet) APIKey() string {
	if f.sec == nil {
		return ""
	}
	return f.sec.apiKey
}

// APIKeysFile is the file holding the tenants' API keys; "" when
// insecure.
func (f *Fleet) APIKeysFile() string {
	if f.sec == nil {
		return ""
	}
	return f.sec.apiKeys
}

// Scheme is "https" for a secured fleet, else "http".
func (f *Fleet) Scheme() string {
	if f.sec == nil {
		return "http"
	}
	return "https"
}

// ClientTLS is a client's TLS config trusting the fleet's CA; nil when
// insecure.
func (f *Fleet) ClientTLS() (*tls.Config, error) {
	if f.sec == nil {
		return nil, nil
	}
	pem, err := os.ReadFile(f.CAFile())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", f.CAFile())
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// secureBalancer gives the balancer its HTTPS front, its mutual-TLS
// client for the regions and its door.
func (f *Fleet) secureBalancer(o *glb.Options) error {
	if f.sec == nil {
		return nil
	}
	r, err := tlsx.NewReloader(tlsx.Dir(f.sec.pki.Path("glb")), tlsx.ReloaderOptions{Name: "glb", Logger: f.opts.Logger})
	if err != nil {
		return err
	}
	go r.Run(f.runCtx)
	if o.TLS, err = tlsx.ServerConfig(r, tlsx.ServerOptions{}); err != nil {
		return err
	}
	o.UpstreamTLS = tlsx.NewClient(r, tlsx.ClientOptions{})
	f.sec.upstream = &http.Client{Transport: tlsx.NewTransport(o.UpstreamTLS)}
	o.Auth = auth.Options{APIKeysFile: f.sec.apiKeys, TenantsFile: f.sec.tenants}
	return nil
}

// endpointClient reaches the regions' fronts as the balancer does.
func (f *Fleet) endpointClient() *http.Client {
	if f.sec == nil || f.sec.upstream == nil {
		return http.DefaultClient
	}
	return f.sec.upstream
}

// secureAgentArgs are a region's agent's flags: its certificate, the
// balancer as its fronts' only client, the tenants' keys.
func (f *Fleet) secureAgentArgs(region string) []string {
	if f.sec == nil {
		return nil
	}
	return []string{"--tls-dir", f.sec.pki.Path(region), "--tls-require-client-cert", "--tls-allowed-client", balancerIdentity,
		"--auth-api-keys-file", f.sec.apiKeys}
}
