package tlsx_test

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/testbin"
	"meridian.dev/meridian/internal/tlsx"
)

// fleetDir writes b into a fresh directory and returns a Reloader of it.
func fleetDir(t *testing.T, b tlsx.Bundle, name string) (string, *tlsx.Reloader) {
	t.Helper()
	dir := t.TempDir()
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir, reloader(t, tlsx.Dir(dir), nil, name)
}

// client is an mTLS client transport reading dir.
func client(t *testing.T, r *tlsx.Reloader, o tlsx.ClientOptions) *http.Transport {
	t.Helper()
	tr := tlsx.NewTransport(tlsx.NewClient(r, o))
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// A server requiring client certificates accepts those the fleet's CA
// issued for client use to an allowed identity, over HTTP/2, and refuses
// every other client in the handshake, saying why in its log.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	ca, other := newCA(t), newCA(t)
	prober, err := ca.Issue(tlsx.IssueOptions{URIs: []*url.URL{{Scheme: "spiffe", Host: "meridian.local", Path: "/prober"}}, Usage: tlsx.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	caOnly := func(t *testing.T) *tlsx.Reloader {
		dir, _ := fleetDir(t, issue(t, ca, tlsx.UsageClient, "unused"), "ca-only")
		return reloader(t, tlsx.Files{CA: tlsx.Dir(dir).CA}, nil, "client")
	}
	withCert := func(b tlsx.Bundle) func(t *testing.T) *tlsx.Reloader {
		return func(t *testing.T) *tlsx.Reloader {
			b.CA = ca.Bundle().CA // trust the fleet's server whatever signed the client
			_, r := fleetDir(t, b, "client")
			return r
		}
	}
	for _, c := range []struct {
		name   string
		client func(t *testing.T) *tlsx.Reloader
		reason string // in the server's log; "" accepted
		metric string // the reason label counted
	}{
		{"no certificate", caOnly, "presented no certificate", "no_certificate"},
		{"signed by another CA", withCert(issue(t, other, tlsx.UsageClient, "glb")), "not trusted", "untrusted"},
		{"server-only certificate", withCert(issue(t, ca, tlsx.UsageServer, "glb")), "incompatible key usage", "untrusted"},
		{"identity not allowed", withCert(issue(t, ca, tlsx.UsageClient, "intruder")), "not among the allowed", "identity"},
		{"allowed DNS name", withCert(issue(t, ca, tlsx.UsageClient, "GLB")), "", ""},
		{"allowed URI", withCert(prober), "", ""},
		{"allowed, for both usages", withCert(issue(t, ca, tlsx.UsageBoth, "glb")), "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir, _ := fleetDir(t, issue(t, ca, tlsx.UsageServer, "region"), "unused")
			reg := prometheus.NewRegistry()
			m, err := tlsx.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			sr := reloader(t, tlsx.Dir(dir), m, "server")
			cfg, err := tlsx.ServerConfig(sr, tlsx.ServerOptions{RequireClientCert: true, AllowedClients: []string{"glb", "spiffe://meridian.local/prober"}})
			if err != nil {
				t.Fatal(err)
			}
			url, errs := serveTLS(t, cfg)
			cr := c.client(t)
			_, body, cs, err := get(t, client(t, cr, tlsx.ClientOptions{}), url)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if want := cr.Certificate().Leaf.SerialNumber.Text(16); body != want {
					t.Errorf("the server saw client certificate %s, want %s", body, want)
				}
				if cs.NegotiatedProtocol != "h2" {
					t.Errorf("negotiated %q, want HTTP/2", cs.NegotiatedProtocol)
				}
				if n, _ := testbin.MetricIfAny(t, reg, "meridian_tls_client_rejected_total", nil); n != 0 {
					t.Errorf("%v rejections counted for an accepted client", n)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			testbin.Eventually(t, "the server to log why", 5*time.Second, func() (bool, string) {
				return errs.count(c.reason) > 0, errs.String()
			})
			if n := testbin.Metric(t, reg, "meridian_tls_client_rejected_total", map[string]string{"name": "server", "reason": c.metric}); n != 1 {
				t.Errorf("rejections counted with reason %s: %v, want 1", c.metric, n)
			}
		})
	}
}

// Clients are verified against the CA bundle current at each handshake,
// resumed sessions included: once ca.crt no longer holds a CA, a client it
// signed cannot resume a session it opened before.
func TestServerFollowsCARotationOnResumedSessions(t *testing.T) {
	t.Parallel()
	oldCA, newCA := newCA(t), newCA(t)
	server := issue(t, oldCA, tlsx.UsageServer, "region")
	dir, sr := fleetDir(t, server, "server")
	cfg, err := tlsx.ServerConfig(sr, tlsx.ServerOptions{RequireClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	url, errs := serveTLS(t, cfg)
	_, cr := fleetDir(t, issue(t, oldCA, tlsx.UsageClient, "glb"), "client")
	tr := client(t, cr, tlsx.ClientOptions{})
	for i, wantResumed := range []bool{false, true} {
		_, _, cs, err := get(t, tr, url)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if cs.DidResume != wantResumed {
			t.Fatalf("connection %d resumed: %v, want %v", i, cs.DidResume, wantResumed)
		}
		tr.CloseIdleConnections()
	}

	rotated := server
	rotated.CA = newCA.Bundle().CA
	if err := rotated.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := sr.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := get(t, tr, url); err == nil {
		t.Fatal("a client of the removed CA resumed its session")
	}
	testbin.Eventually(t, "the server to log why", 5*time.Second, func() (bool, string) {
		return errs.count("not trusted") > 0, errs.String()
	})
	fresh := issue(t, newCA, tlsx.UsageClient, "glb")
	fresh.CA = oldCA.Bundle().CA // the server's own certificate is still the old CA's
	_, nr := fleetDir(t, fresh, "client")
	if _, _, _, err := get(t, client(t, nr, tlsx.ClientOptions{}), url); err != nil {
		t.Fatalf("a client of the new CA: %v", err)
	}
}

// A rotated client certificate is presented on the client's next
// connection, not resumed as the old one.
func TestClientCertificateRotates(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	_, sr := fleetDir(t, issue(t, ca, tlsx.UsageServer, "region"), "server")
	cfg, err := tlsx.ServerConfig(sr, tlsx.ServerOptions{RequireClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := serveTLS(t, cfg)
	first, second := issue(t, ca, tlsx.UsageClient, "glb"), issue(t, ca, tlsx.UsageClient, "glb")
	dir, cr := fleetDir(t, first, "client")
	tr := client(t, cr, tlsx.ClientOptions{})
	for i, b := range []tlsx.Bundle{first, second} {
		if i > 0 {
			if err := b.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			if err := cr.Reload(); err != nil {
				t.Fatal(err)
			}
			tr.CloseIdleConnections()
		}
		_, body, cs, err := get(t, tr, url)
		if err != nil {
			t.Fatal(err)
		}
		if want := serial(t, b).Text(16); body != want || cs.DidResume {
			t.Errorf("certificate %d: the server saw %s (resumed: %v), want %s", i, body, cs.DidResume, want)
		}
	}
	// A tls.Config of the caller's own presents the current one too.
	own := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cr.Pool(), GetClientCertificate: cr.GetClientCertificate}}
	t.Cleanup(own.CloseIdleConnections)
	if _, body, _, err := get(t, own, url); err != nil || body != serial(t, second).Text(16) {
		t.Errorf("Reloader.GetClientCertificate: the server saw %q (%v), want %s", body, err, serial(t, second).Text(16))
	}
}

// A client verifies the name it dials, or the ServerName it is given.
func TestClientServerName(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	b, err := ca.Issue(tlsx.IssueOptions{DNSNames: []string{"us-east.meridian.local"}, Usage: tlsx.UsageServer})
	if err != nil {
		t.Fatal(err)
	}
	_, sr := fleetDir(t, b, "server")
	cfg, err := tlsx.ServerConfig(sr, tlsx.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := serveTLS(t, cfg)
	caDir, _ := fleetDir(t, b, "unused")
	cr := reloader(t, tlsx.Files{CA: tlsx.Dir(caDir).CA}, nil, "client")
	if _, _, _, err := get(t, client(t, cr, tlsx.ClientOptions{}), url); err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("dialing 127.0.0.1 for a certificate of us-east.meridian.local: %v, want a name mismatch", err)
	}
	if _, _, _, err := get(t, client(t, cr, tlsx.ClientOptions{ServerName: "us-east.meridian.local"}), url); err != nil {
		t.Errorf("with ServerName: %v", err)
	}
	if _, _, _, err := get(t, client(t, cr, tlsx.ClientOptions{ServerName: "eu-west.meridian.local"}), url); err == nil {
		t.Error("a ServerName the certificate does not name was accepted")
	}
}

func TestServerConfigRefuses(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dir, _ := fleetDir(t, issue(t, ca, tlsx.UsageServer, "s"), "x")
	for _, c := range []struct {
		files tlsx.Files
		o     tlsx.ServerOptions
		want  string
	}{
		{tlsx.Files{CA: tlsx.Dir(dir).CA}, tlsx.ServerOptions{}, "needs a certificate"},
		{tlsx.Files{Cert: tlsx.Dir(dir).Cert, Key: tlsx.Dir(dir).Key}, tlsx.ServerOptions{RequireClientCert: true}, "needs a CA bundle"},
		{tlsx.Dir(dir), tlsx.ServerOptions{AllowedClients: []string{"glb"}}, "RequireClientCert"},
	} {
		if _, err := tlsx.ServerConfig(reloader(t, c.files, nil, "x"), c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v %+v: %v, want %q", c.files, c.o, err, c.want)
		}
	}
}

// A client trusts the CA bundle current at each new connection: a server
// moved to a new CA is refused until the client's ca.crt names it.
func TestClientFollowsCARotation(t *testing.T) {
	t.Parallel()
	oldCA, newCA := newCA(t), newCA(t)
	serverDir, sr := fleetDir(t, issue(t, oldCA, tlsx.UsageServer, "region"), "server")
	cfg, err := tlsx.ServerConfig(sr, tlsx.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := serveTLS(t, cfg)
	clientDir, cr := fleetDir(t, issue(t, oldCA, tlsx.UsageClient, "glb"), "client")
	tr := client(t, cr, tlsx.ClientOptions{})
	if _, _, _, err := get(t, tr, url); err != nil {
		t.Fatal(err)
	}
	moved := issue(t, newCA, tlsx.UsageServer, "region")
	if err := moved.WriteDir(serverDir); err != nil {
		t.Fatal(err)
	}
	if err := sr.Reload(); err != nil {
		t.Fatal(err)
	}
	// (A client that resumes the session it opened before the move still
	// reaches the server: the session's key proves the server it trusted.)
	if _, _, _, err := get(t, client(t, cr, tlsx.ClientOptions{}), url); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("a new session with a server of a CA the client does not trust yet: %v, want unknown authority", err)
	}
	both := issue(t, oldCA, tlsx.UsageClient, "glb")
	both.CA = slices.Concat(oldCA.Bundle().CA, newCA.Bundle().CA)
	if err := both.WriteDir(clientDir); err != nil {
		t.Fatal(err)
	}
	if err := cr.Reload(); err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	if got, _, _, err := get(t, tr, url); err != nil || got.Cmp(serial(t, moved)) != 0 {
		t.Fatalf("after the client's ca.crt names the new CA: %v %v", got, err)
	}
}
