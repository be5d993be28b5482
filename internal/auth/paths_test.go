package auth

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"meridian.dev/meridian/internal/hostip"
)

// TestLoopbackPaths serves a loopback-only path to a client on loopback
// and refuses it to the same client coming from the host's own
// non-loopback address, whatever X-Forwarded-For claims.
func TestLoopbackPaths(t *testing.T) {
	t.Parallel()
	ip, err := hostip.IPv4()
	if err != nil {
		t.Fatalf("this test needs a non-loopback IPv4 address on the host: %v", err)
	}
	opts := Options{APIKeysFile: writeFile(t, t.TempDir(), "keys", keysFile), LoopbackPaths: []string{"/v2/repository"}, AdminPaths: []string{}}
	a, err := New(opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.Wrap(http.HandlerFunc(echoTenant)))
	_ = srv.Listener.Close() // the loopback one it made
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	remote := &door{url: srv.URL}
	if got := remote.do(t, "POST", "/v2/repository/index", append(bearer(acmeKey), "X-Forwarded-For", "127.0.0.1")...); got.code != 403 {
		t.Errorf("from %s: %d %q, want 403", ip, got.code, got.body)
	}
	if got := remote.do(t, "POST", "/v2/models/m/infer", bearer(acmeKey)...); got.code != 200 {
		t.Errorf("other paths from %s: %d, want 200", ip, got.code)
	}

	// The same handler on loopback.
	local := httptest.NewServer(a.Wrap(http.HandlerFunc(echoTenant)))
	t.Cleanup(local.Close)
	if got := (&door{url: local.URL}).do(t, "POST", "/v2/repository/index", bearer(acmeKey)...); got.code != 200 {
		t.Errorf("from loopback: %d %q, want 200", got.code, got.body)
	}
}

func TestCleanPathAndPrefixes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/metrics", true}, {"/metrics/", true}, {"//metrics", true}, {"/./metrics", true},
		{"/x/../metrics", true}, {"/metricsx", false}, {"/v2/repository/index", true}, {"/v2/models/m", false},
	} {
		if got := underAny(cleanPath(tc.path), DefaultAdminPaths); got != tc.want {
			t.Errorf("%q under the admin paths = %v, want %v", tc.path, got, tc.want)
		}
	}
}
