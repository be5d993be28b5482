package auth

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
)

// authzService is a team's own authorization service on loopback: it
// allows "Bearer team-token", naming tenant team-a, answers
// "Bearer slow" only when the check is abandoned, and refuses the rest.
type authzService struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newAuthzService(t *testing.T) *authzService {
	s := &authzService{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Clone(r.Context()))
		s.mu.Unlock()
		switch r.Header.Get("Authorization") {
		case "Bearer team-token":
			w.Header().Set("X-Meridian-Tenant", "team-a")
			w.Header().Set("X-Meridian-Plan", "gold")
			w.Header().Set("X-Internal", "not forwarded")
			w.WriteHeader(http.StatusOK)
		case "Bearer slow":
			<-r.Context().Done()
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="team", error="invalid_token"`)
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, "team says no")
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *authzService) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[len(s.seen)-1]
}

// headersSeen is a handler that answers with the headers the request
// passed on carries.
func headersSeen(w http.ResponseWriter, r *http.Request) {
	t, _ := TenantFrom(r.Context())
	_, _ = io.WriteString(w, string(t.Method)+":"+t.Name+" plan="+r.Header.Get("X-Meridian-Plan")+" internal="+r.Header.Get("X-Internal")+" tier="+r.Header.Get("X-Meridian-Tier"))
}

// TestExtAuthz checks the hook's shape: the service gets the method, path,
// query and selected headers; its 2xx lets the request through with its
// x-meridian- headers and tenant; anything else is relayed as it is.
func TestExtAuthz(t *testing.T) {
	t.Parallel()
	svc := newAuthzService(t)
	d := newDoorWith(t, Options{ExtAuthz: ExtAuthzOptions{URL: svc.URL + "/check"}}, http.HandlerFunc(headersSeen))

	a := d.do(t, http.MethodPost, "/v2/models/sentiment/infer?x=1", "Authorization", "Bearer team-token", "Cookie", "secret", "X-Meridian-Plan", "forged", "X-Meridian-Tier", "forged")
	if a.code != 200 || a.body != "ext-authz:team-a plan=gold internal= tier=" {
		t.Fatalf("allowed: %d %q", a.code, a.body)
	}
	got := svc.last()
	if got.Method != http.MethodPost || got.URL.Path != "/check/v2/models/sentiment/infer" || got.URL.RawQuery != "x=1" {
		t.Errorf("check request %s %s, want POST /check/v2/models/sentiment/infer?x=1", got.Method, got.URL)
	}
	if got.Header.Get("Cookie") != "" || got.ContentLength > 0 {
		t.Errorf("check request carried a header not selected or a body: %v", got.Header)
	}

	a = d.infer(t, "sentiment", "Authorization", "Bearer stolen")
	if a.code != 401 || a.body != "team says no" || !strings.Contains(a.h.Get("WWW-Authenticate"), `realm="team"`) {
		t.Fatalf("denied: %d %q %q, want the service's answer relayed", a.code, a.body, a.h.Get("WWW-Authenticate"))
	}
	if n := testbin.Metric(t, d.reg, "meridian_auth_requests_total", map[string]string{"result": "ext_denied"}); n != 1 {
		t.Errorf("ext_denied = %v, want 1", n)
	}
}

// TestExtAuthzWithLocalCredentials sends the tenant the API key named to
// the service, which may still refuse.
func TestExtAuthzWithLocalCredentials(t *testing.T) {
	t.Parallel()
	svc := newAuthzService(t)
	d := newDoorWith(t, Options{APIKeysFile: writeFile(t, t.TempDir(), "keys", keysFile), ExtAuthz: ExtAuthzOptions{URL: svc.URL}}, http.HandlerFunc(headersSeen))
	if a := d.infer(t, "m", "X-API-Key", acmeKey); a.code != 401 || a.body != "team says no" {
		t.Fatalf("valid key the service refuses: %d %q", a.code, a.body)
	}
	if got := svc.last().Header.Get("X-Meridian-Tenant"); got != "acme" {
		t.Errorf("tenant sent to the service = %q, want acme", got)
	}
}

// TestExtAuthzTimeout abandons a check at the timeout: refused with 403
// (fail closed), or let through when the hook fails open.
func TestExtAuthzTimeout(t *testing.T) {
	t.Parallel()
	svc := newAuthzService(t)
	for _, open := range []bool{false, true} {
		d := newDoor(t, Options{ExtAuthz: ExtAuthzOptions{URL: svc.URL, Timeout: 50 * time.Millisecond, FailOpen: open}})
		a := d.infer(t, "m", bearer("slow")...)
		switch {
		case !open && a.code != 403:
			t.Errorf("fail closed: %d %q, want 403", a.code, a.body)
		case open && a.code != 200:
			t.Errorf("fail open: %d %q, want 200", a.code, a.body)
		}
		if n := testbin.Metric(t, d.reg, "meridian_auth_ext_authz_checks_total", map[string]string{"result": "error"}); n != 1 {
			t.Errorf("checks{error} = %v, want 1", n)
		}
	}
}

// TestExtAuthzUnreachable fails closed when nothing listens.
func TestExtAuthzUnreachable(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.NotFoundHandler())
	url := gone.URL
	gone.Close()
	d := newDoor(t, Options{ExtAuthz: ExtAuthzOptions{URL: url}})
	if a := d.infer(t, "m", bearer("team-token")...); a.code != 403 {
		t.Fatalf("unreachable service: %d, want 403", a.code)
	}
	if n := testbin.Metric(t, d.reg, "meridian_auth_requests_total", map[string]string{"result": "ext_error"}); n != 1 {
		t.Errorf("ext_error = %v, want 1", n)
	}
}

// TestExtAuthzTenantPolicy applies the tenants file to the tenant the
// service names.
func TestExtAuthzTenantPolicy(t *testing.T) {
	t.Parallel()
	svc := newAuthzService(t)
	d := newDoor(t, Options{
		ExtAuthz:    ExtAuthzOptions{URL: svc.URL},
		TenantsFile: writeFile(t, t.TempDir(), "tenants.yaml", "tenants:\n  team-a: {models: [sentiment]}\n"),
	})
	if a := d.infer(t, "sentiment", bearer("team-token")...); a.code != 200 || a.body != "ext-authz:team-a" {
		t.Fatalf("allowed model: %d %q", a.code, a.body)
	}
	if a := d.infer(t, "textdir", bearer("team-token")...); a.code != 403 {
		t.Fatalf("model outside the allow-list: %d %q, want 403", a.code, a.body)
	}
	if n := testbin.Metric(t, d.reg, "meridian_auth_requests_total", map[string]string{"result": "forbidden", "tenant": "team-a"}); n != 1 {
		t.Errorf("forbidden{team-a} = %v, want 1", n)
	}
}
