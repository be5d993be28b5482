package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"
)

// Authenticator checks requests at the door; see the package doc for the
// order of the checks.
type Authenticator struct {
	opts    Options
	enabled bool
	log     *slog.Logger
	m       *metrics

	keys    *apiKeys     // nil: no API keys
	jwt     *jwtVerifier // nil: no JWTs
	ext     *extAuthz    // nil: no external authorization
	tenants atomic.Pointer[tenantPolicies]
	limits  *limiter

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New builds an Authenticator from opts, loads its files (an unreadable or
// invalid one fails), registers its metrics on reg (nil: none) and starts
// watching the files and refreshing the JWKS until Close. With
// authentication off (opts.Enabled() false) it logs a warning and its
// Wrap changes nothing.
func New(opts Options, reg prometheus.Registerer, log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		log = slog.Default()
	}
	m := newMetrics()
	a := &Authenticator{opts: opts.withDefaults(), enabled: opts.Enabled(), log: log, m: m, stop: func() {}}
	a.tenants.Store(&tenantPolicies{})
	a.limits = newLimiter(a.opts.Now)
	if !a.enabled {
		log.Warn("authentication is off: anyone who reaches this server may call every model and read /metrics; set --auth-api-keys-file, --auth-jwks-file/--auth-jwks-url or --auth-ext-authz-url to turn it on")
		return a, m.register(reg)
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	files, err := a.credentialFiles()
	if err != nil {
		return nil, err
	}
	if p := a.opts.TenantsFile; p != "" {
		files = append(files, &watchedFile{path: p, label: "tenants", load: func(d []byte) error {
			t, err := parseTenants(p, d)
			if err == nil {
				a.tenants.Store(t)
			}
			return err
		}})
	}
	for _, f := range files {
		if err := f.initial(); err != nil {
			return nil, err
		}
	}
	if a.keys == nil && a.jwt == nil && a.opts.ExtAuthz.URL == "" && a.tenants.Load().anonymous() == nil {
		return nil, errors.New("--auth-tenants-file without credentials: set --auth-api-keys-file, --auth-jwks-file/--auth-jwks-url or --auth-ext-authz-url, or give the tenants file an anonymous policy")
	}
	if u := a.opts.ExtAuthz.URL; u != "" {
		if a.ext, err = newExtAuthz(a.opts.ExtAuthz, a.opts.Client, m); err != nil {
			return nil, err
		}
	}
	if err := m.register(reg); err != nil {
		return nil, err
	}
	a.start(files)
	return a, nil
}

func (a *Authenticator) validate() error {
	o := a.opts
	switch {
	case o.JWKSFile != "" && o.JWKSURL != "":
		return errors.New("--auth-jwks-file and --auth-jwks-url: give one key source")
	case (o.JWKSFile != "" || o.JWKSURL != "") && (o.Issuer == "" || len(o.Audiences) == 0):
		return errors.New("a JWKS needs --auth-issuer and --auth-audience: without them a token minted for another service would be accepted")
	}
	if o.JWKSURL != "" {
		u, err := url.Parse(o.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("--auth-jwks-url %q: want an http(s) URL", o.JWKSURL)
		}
	}
	return nil
}

// credentialFiles sets up the API keys and the JWT verifier, and returns
// the files they load from.
func (a *Authenticator) credentialFiles() ([]*watchedFile, error) {
	var files []*watchedFile
	if p := a.opts.APIKeysFile; p != "" {
		keys, err := newAPIKeys()
		if err != nil {
			return nil, err
		}
		a.keys = keys
		files = append(files, &watchedFile{path: p, label: "api_keys", load: func(d []byte) error { return keys.load(p, d) }})
	}
	if a.opts.JWKSFile == "" && a.opts.JWKSURL == "" {
		return files, nil
	}
	src := &jwksSource{url: a.opts.JWKSURL, client: a.opts.Client, minRefresh: a.opts.JWKSMinRefresh, log: a.log, m: a.m}
	a.jwt = &jwtVerifier{keys: src, issuer: a.opts.Issuer, audiences: jwt.Audience(a.opts.Audiences),
		skew: a.opts.ClockSkew, claims: a.opts.TenantClaims, now: a.opts.Now, cache: newJWTCache()}
	if p := a.opts.JWKSFile; p != "" {
		files = append(files, &watchedFile{path: p, label: "jwks", load: func(d []byte) error {
			set, err := parseJWKS(d, a.log)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			src.set.Store(set)
			return nil
		}})
	}
	return files, nil
}

// start fetches the JWKS once (a failure is retried, not fatal: tokens
// are refused until a fetch succeeds) and starts the background loops.
func (a *Authenticator) start(files []*watchedFile) {
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	if a.jwt != nil && a.jwt.keys.url != "" {
		_ = a.jwt.keys.fetch(ctx, "start")
		a.wg.Go(func() { a.jwt.keys.run(ctx, a.opts.JWKSRefresh) })
	}
	a.wg.Go(func() {
		watch(ctx, files, a.opts.ReloadInterval, a.m, a.log, func() { a.limits.sweep(a.policyOf) })
	})
}

// Close stops watching files and refreshing the JWKS.
func (a *Authenticator) Close() {
	a.stop()
	a.wg.Wait()
}

// Enabled reports whether Wrap checks requests.
func (a *Authenticator) Enabled() bool { return a.enabled }

// Wrap returns next behind the checks; with authentication off, next
// itself.
func (a *Authenticator) Wrap(next http.Handler) http.Handler {
	if !a.enabled {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.serve(w, r, next) })
}

func (a *Authenticator) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	p := cleanPath(r.URL.Path)
	if underAny(p, a.opts.LoopbackPaths) && !fromLoopback(r) {
		a.forbidden(w, r, tenantLabelNone, "this path is served only to clients on this host")
		return
	}
	admin := underAny(p, a.opts.AdminPaths)
	if !admin && underAny(p, a.opts.PublicPaths) {
		next.ServeHTTP(w, r)
		return
	}
	t, ok := a.identify(w, r)
	if !ok {
		return
	}
	label := a.tenantLabel(t.Name)
	pol := a.policyOf(t.Name)
	if t.Method == MethodAnonymous {
		pol = a.tenants.Load().anonymous()
	}
	switch model := a.opts.ModelOf(r); {
	case pol == nil:
		a.forbidden(w, r, label, "tenant "+strconv.Quote(t.Name)+" has no policy in the tenants file, and it has no default")
		return
	case admin && !pol.Admin:
		a.forbidden(w, r, label, "this path needs an admin tenant")
		return
	case !pol.allows(model):
		a.forbidden(w, r, label, "tenant may not use model "+model)
		return
	}
	done, refused := a.limits.acquire(t.Name, pol)
	if refused != nil {
		a.tooMany(w, r, label, refused)
		return
	}
	defer done()
	a.m.requests.WithLabelValues(resultAllowed, label).Inc()
	next.ServeHTTP(w, r.WithContext(withTenant(r.Context(), t)))
}

// policyOf is the policy of tenant name (the anonymous policy for
// AnonymousTenant), nil if it has none.
func (a *Authenticator) policyOf(name string) *Policy {
	t := a.tenants.Load()
	if name == AnonymousTenant {
		return t.anonymous()
	}
	return t.policy(name)
}

// tenantLabel bounds the tenant label to the tenants the configuration
// names; tenants that only a JWT or the external service names count
// together.
func (a *Authenticator) tenantLabel(name string) string {
	switch {
	case name == "":
		return tenantLabelNone
	case name == AnonymousTenant, a.tenants.Load().listed(name), a.keys != nil && a.keys.has(name):
		return name
	}
	return tenantLabelUnlisted
}
