package auth

import (
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"meridian.dev/meridian/internal/testbin"
)

// TestConcurrentLoad sends requests from many goroutines as several
// tenants, by API key and JWT, while the tenants file is rewritten and
// idle tenants are swept: the concurrency cap holds at every instant, and
// every request is counted once, under its outcome.
func TestConcurrentLoad(t *testing.T) {
	t.Parallel()
	key := newKey(t, "k", jose.ES256)
	dir := t.TempDir()
	tenants := "tenants:\n  acme: {maxConcurrent: 3}\n  beta: {rate: 50, burst: 5}\ndefault: {maxConcurrent: 2}\n"
	opts := Options{
		APIKeysFile:    writeFile(t, dir, "keys", keysFile),
		JWKSFile:       writeFile(t, dir, "jwks.json", string(jwks(t, key))),
		Issuer:         testIssuer,
		Audiences:      []string{testAudience},
		TenantsFile:    writeFile(t, dir, "tenants.yaml", tenants),
		ReloadInterval: 2 * time.Millisecond,
	}
	var inFlight, peak atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tn, _ := TenantFrom(r.Context()); tn.Name == "acme" {
			n := inFlight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Millisecond) // hold the slot, so requests overlap
			inFlight.Add(-1)
		}
		echoTenant(w, r)
	})
	d := newDoorWith(t, opts, h)
	creds := [][]string{
		bearer(acmeKey), {"X-API-Key", acmeKey}, bearer(betaKey),
		bearer(key.sign(t, claims(time.Now(), "jwt-user"))), bearer("wrong-0123456789abcdef"),
	}
	stop := make(chan struct{})
	var rewrites sync.WaitGroup
	rewrites.Go(func() { // rewrite the tenants file under load
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tmp := writeFile(t, dir, "tenants.new", tenants+"# "+string(rune('a'+i%26))+"\n")
			if err := os.Rename(tmp, opts.TenantsFile); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(3 * time.Millisecond)
		}
	})
	const workers, each = 16, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				d.infer(t, "m", creds[(w+i)%len(creds)]...)
			}
		})
	}
	wg.Wait()
	close(stop)
	rewrites.Wait()

	if p := peak.Load(); p > 3 || p == 0 {
		t.Errorf("acme's peak in flight = %d, want 1..3", p)
	}
	total := testbin.Metric(t, d.reg, "meridian_auth_requests_total", nil)
	if total != workers*each {
		t.Errorf("counted %v requests, sent %d", total, workers*each)
	}
	if n := testbin.Metric(t, d.reg, "meridian_auth_requests_total", map[string]string{"result": "allowed", "tenant": "_unlisted"}); n == 0 {
		t.Errorf("no request of the JWT tenant counted under _unlisted")
	}
	if n := testbin.Metric(t, d.reg, "meridian_auth_file_reloads_total", map[string]string{"file": "tenants", "result": "ok"}); n == 0 {
		t.Errorf("the tenants file was never reloaded")
	}
}
