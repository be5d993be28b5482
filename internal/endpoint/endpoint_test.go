package endpoint_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"meridian.dev/meridian/internal/endpoint"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		url           string
		remote, local bool // allowed in a real fleet, in a local one
	}{
		{"https://eu-west.infer.example.com/v2/models/m", true, true},
		{"http://10.20.0.7:8000", true, true},
		{"http://[2001:db8::7]:8000", true, true},
		{"http://127.0.1.2:8000", false, true},
		{"http://[::1]:8000", false, true},
		{"http://localhost:8000", false, true},
		{"http://LocalHost.:8000", false, true},
		{"http://169.254.169.254/latest/meta-data/", false, false},
		{"http://[fe80::1%25eth0]:80", false, false},
		{"http://[fe80::1]:80", false, false},
		{"http://[fd00:ec2::254]/", false, false},
		{"http://100.100.100.200/", false, false},
		{"http://[::ffff:169.254.169.254]/", false, false},
		{"http://0.0.0.0:8000", false, false},
		{"http://0.1.2.3:8000", false, false},
		{"http://[64:ff9b::a9fe:a9fe]/", false, false},
		{"http://[64:ff9b::a00:7]/", true, true},
		{"http://[::]:8000", false, false},
		{"http://224.0.0.1/", false, false},
		{"file:///etc/passwd", false, false},
		{"gopher://10.0.0.1:70/", false, false},
		{"http://user:secret@10.0.0.1/", false, false},
		{"http:///v2", false, false},
		{"://bad", false, false},
	}
	for _, tc := range cases {
		for _, p := range []struct {
			policy endpoint.Policy
			want   bool
		}{{endpoint.Policy{}, tc.remote}, {endpoint.Policy{Local: true}, tc.local}} {
			err := p.policy.Check(tc.url)
			if (err == nil) != p.want {
				t.Errorf("%+v.Check(%q) = %v, want allowed %v", p.policy, tc.url, err, p.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
		}
	}
}

// A host name is allowed by Check but refused at dial time when it
// resolves to a forbidden address; nothing reaches the server.
func TestDialerRefusesForbiddenAddressesANameResolvesTo(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	u := "http://localhost.test.:" + port + "/"
	// A resolver that answers every name with the loopback server's
	// address, as a rebinding attacker's name server would.
	resolve := func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, p, _ := net.SplitHostPort(addr)
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", p))
	}
	for _, tc := range []struct {
		name string
		dial func(ctx context.Context, network, addr string) (net.Conn, error)
	}{
		{"Control", func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, p, _ := net.SplitHostPort(addr)
			return endpoint.Policy{}.Dialer(nil).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", p))
		}},
		{"Guard", endpoint.Policy{}.Guard(resolve)},
	} {
		if err := (endpoint.Policy{}).Check(u); err != nil {
			t.Fatalf("Check(%q) = %v; a name is checked at dial time", u, err)
		}
		c := &http.Client{Transport: &http.Transport{DialContext: tc.dial}}
		resp, err := c.Get(u)
		if err == nil {
			_ = resp.Body.Close()
			t.Errorf("%s: a name resolving to loopback was reached", tc.name)
		} else if !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: error %v does not say why", tc.name, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the server got %d requests", hits.Load())
	}
	local := &http.Client{Transport: &http.Transport{DialContext: endpoint.Policy{Local: true}.Dialer(nil).DialContext}}
	resp, err := local.Get(srv.URL)
	if err != nil {
		t.Fatalf("a local fleet's dialer refused loopback: %v", err)
	}
	_ = resp.Body.Close()
	if a := netip.MustParseAddrPort(srv.Listener.Addr().String()).Addr(); !a.IsLoopback() {
		t.Fatalf("test server on %s, not loopback", a)
	}
}
