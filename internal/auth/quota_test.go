package auth

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
)

const keysFile = "acme " + acmeKey + "\nbeta " + betaKey + "\nops ops-0123456789abcdef\nnolimit nolimit-0123456789abcdef\n"

func quotaOptions(t *testing.T, tenants string) Options {
	dir := t.TempDir()
	return Options{
		APIKeysFile: writeFile(t, dir, "keys", keysFile),
		TenantsFile: writeFile(t, dir, "tenants.yaml", tenants),
		ModelOf:     ModelFromPath(map[string]string{"/analyze": "sentiment"}),
	}
}

// TestRateLimit drains a tenant's bucket: it gets 429 with a Retry-After
// that is the time its next token takes, is served again once that time
// has passed, and another tenant is served all along.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	opts := quotaOptions(t, "tenants:\n  acme: {rate: 0.5, burst: 2}\n  beta: {rate: 100}\n")
	opts.Now = clock.Now
	d := newDoor(t, opts)
	acme, beta := bearer(acmeKey), bearer(betaKey)
	for i := range 2 {
		if a := d.infer(t, "m", acme...); a.code != 200 {
			t.Fatalf("request %d within the burst: %d", i, a.code)
		}
	}
	a := d.infer(t, "m", acme...)
	if a.code != http.StatusTooManyRequests || a.h.Get("Retry-After") != "2" {
		t.Fatalf("over the rate: %d Retry-After %q, want 429 and 2 (one token at 0.5/s)", a.code, a.h.Get("Retry-After"))
	}
	for range 5 {
		if a := d.infer(t, "m", beta...); a.code != 200 {
			t.Fatalf("other tenant while acme is limited: %d", a.code)
		}
	}
	clock.Advance(1500 * time.Millisecond)
	if a := d.infer(t, "m", acme...); a.code != 429 || a.h.Get("Retry-After") != "1" {
		t.Fatalf("0.75 token in the bucket: %d Retry-After %q, want 429 and 1", a.code, a.h.Get("Retry-After"))
	}
	clock.Advance(500 * time.Millisecond)
	if a := d.infer(t, "m", acme...); a.code != 200 {
		t.Fatalf("after Retry-After: %d, want 200", a.code)
	}
	if n := testbin.Metric(t, d.reg, "meridian_auth_requests_total", map[string]string{"result": "rate_limited", "tenant": "acme"}); n != 2 {
		t.Errorf("rate_limited{acme} = %v, want 2", n)
	}
	if n := testbin.Metric(t, d.reg, "meridian_auth_requests_total", map[string]string{"result": "allowed", "tenant": "beta"}); n != 5 {
		t.Errorf("allowed{beta} = %v, want 5", n)
	}
}

// TestConcurrencyCap holds a tenant's requests in the handler: the one
// over its cap gets 429 while another tenant is served, and once one
// finishes the tenant is served again.
func TestConcurrencyCap(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hold") != "" {
			entered <- struct{}{}
			<-release
		}
		echoTenant(w, r)
	})
	d := newDoorWith(t, quotaOptions(t, "tenants:\n  acme: {maxConcurrent: 2}\n  beta: {maxConcurrent: 1}\n"), h)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if a := d.infer(t, "m", append(bearer(acmeKey), "X-Hold", "1")...); a.code != 200 {
				t.Errorf("held request: %d", a.code)
			}
		})
		<-entered
	}
	if a := d.infer(t, "m", bearer(acmeKey)...); a.code != 429 || a.h.Get("Retry-After") == "" || !strings.Contains(a.body, "concurrent") {
		t.Errorf("third concurrent request: %d %q Retry-After %q, want 429 with Retry-After", a.code, a.body, a.h.Get("Retry-After"))
	}
	if a := d.infer(t, "m", bearer(betaKey)...); a.code != 200 {
		t.Errorf("other tenant: %d", a.code)
	}
	release <- struct{}{}
	testbin.Eventually(t, "a slot to free up", 5*time.Second, func() bool {
		return d.infer(t, "m", bearer(acmeKey)...).code == 200
	})
	release <- struct{}{}
	wg.Wait()
	if n := testbin.Metric(t, d.reg, "meridian_auth_requests_total", map[string]string{"result": "concurrency_limited", "tenant": "acme"}); n < 1 {
		t.Errorf("concurrency_limited{acme} = %v", n)
	}
}

// TestPolicies checks the allow-list of models, the admin and public
// paths, the default policy and the anonymous one.
func TestPolicies(t *testing.T) {
	t.Parallel()
	d := newDoor(t, quotaOptions(t, `tenants:
  acme: {models: [sentiment]}
  beta: {models: []}
  ops: {admin: true}
default: {models: [textdir]}
anonymous: {models: [sentiment], rate: 1000}
`))
	ops := bearer("ops-0123456789abcdef")
	for _, tc := range []struct {
		name, method, path string
		header             []string
		code               int
		body               string
	}{
		{"allowed model", "POST", "/v2/models/sentiment/infer", bearer(acmeKey), 200, "api-key:acme"},
		{"allowed model, version path", "POST", "/v2/models/sentiment/versions/1/infer", bearer(acmeKey), 200, "api-key:acme"},
		{"model not allowed", "POST", "/v2/models/textdir/infer", bearer(acmeKey), 403, "may not use model textdir"},
		{"model by exact path", "POST", "/analyze", bearer(betaKey), 403, "may not use model sentiment"},
		{"no model addressed", "GET", "/v2", bearer(betaKey), 200, "api-key:beta"},
		{"unlisted tenant gets the default", "POST", "/v2/models/textdir/infer", bearer("nolimit-0123456789abcdef"), 200, "api-key:nolimit"},
		{"default allow-list", "POST", "/v2/models/sentiment/infer", bearer("nolimit-0123456789abcdef"), 403, "may not use model"},
		{"anonymous", "POST", "/v2/models/sentiment/infer", nil, 200, "anonymous:anonymous"},
		{"anonymous allow-list", "POST", "/v2/models/textdir/infer", nil, 403, "may not use model"},
		{"bad credentials are not anonymous", "POST", "/v2/models/sentiment/infer", bearer("wrong-0123456789abcdef"), 401, "unknown credentials"},
		{"metrics need admin", "GET", "/metrics", bearer(acmeKey), 403, "admin"},
		{"metrics, path cleaned", "GET", "//./metrics", bearer(acmeKey), 403, "admin"},
		{"metrics for anonymous", "GET", "/metrics", nil, 403, "admin"},
		{"metrics for admin", "GET", "/metrics", ops, 200, "api-key:ops"},
		{"repository index", "POST", "/v2/repository/index", bearer(acmeKey), 403, "admin"},
		{"health is public", "GET", "/v2/health/ready", bearer("wrong-0123456789abcdef"), 200, "no tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := d.do(t, tc.method, tc.path, tc.header...)
			if a.code != tc.code || !strings.Contains(a.body, tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", a.code, a.body, tc.code, tc.body)
			}
			if a.code == 403 && !strings.Contains(a.h.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
				t.Errorf("403 without insufficient_scope: %q", a.h.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestTenantWithoutPolicy refuses a tenant the tenants file neither lists
// nor covers with a default.
func TestTenantWithoutPolicy(t *testing.T) {
	t.Parallel()
	d := newDoor(t, quotaOptions(t, "tenants:\n  acme: {}\n"))
	if a := d.infer(t, "m", bearer(betaKey)...); a.code != 403 || !strings.Contains(a.body, "no policy") {
		t.Fatalf("got %d %q, want 403", a.code, a.body)
	}
	if a := d.infer(t, "m", bearer(acmeKey)...); a.code != 200 {
		t.Fatalf("listed tenant with an empty policy: %d, want 200", a.code)
	}
}

// TestTenantsFileErrors refuses tenants files with mistakes, naming them.
func TestTenantsFileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, content, want string }{
		{"typo", "tenants:\n  acme: {rte: 5}\n", "rte"},
		{"negative rate", "tenants:\n  acme: {rate: -1}\n", "rate -1"},
		{"anonymous admin", "anonymous: {admin: true}\n", "admin"},
		{"reserved name", "tenants:\n  anonymous: {}\n", "reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(quotaOptions(t, tc.content), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
