package auth

import (
	"net/http"
	"time"

	"github.com/spf13/pflag"
)

// Defaults for the zero values of Options (and the flags' defaults).
const (
	DefaultClockSkew       = 60 * time.Second
	DefaultJWKSRefresh     = 5 * time.Minute
	DefaultJWKSMinRefresh  = 10 * time.Second
	DefaultReloadInterval  = 5 * time.Second
	DefaultExtAuthzTimeout = 500 * time.Millisecond
	DefaultExtAuthzPrefix  = "x-meridian-"
	DefaultTenantHeader    = "x-meridian-tenant"
)

// Default path lists, used when the Options field is nil. An empty non-nil
// slice means none.
var (
	DefaultPublicPaths   = []string{"/v2/health"}
	DefaultAdminPaths    = []string{"/metrics", "/v2/repository"}
	DefaultTenantClaims  = []string{"tenant", "sub"}
	DefaultExtAuthzHeads = []string{"authorization", "x-api-key"}
)

// Options configure an Authenticator. The zero value turns authentication
// off: Wrap then returns its handler unchanged. Setting any of
// APIKeysFile, JWKSFile, JWKSURL, TenantsFile or ExtAuthz.URL turns it on,
// and from then on every request outside PublicPaths needs a credential
// (or the tenants file's anonymous policy).
type Options struct {
	// APIKeysFile holds the API keys: lines of "tenant key" (# starts a
	// comment), or, when the name ends in .yaml, .yml or .json, a map of
	// tenant to a list of keys. A key written "sha256:<64 hex digits>" is
	// the SHA-256 of the key, so that the file need not hold the key
	// itself. Keys are at least 16 bytes. The file is re-read when it
	// changes.
	APIKeysFile string

	// JWKSFile holds the JSON Web Key Set that signs accepted JWTs. It is
	// re-read when it changes. At most one of JWKSFile and JWKSURL.
	JWKSFile string

	// JWKSURL is fetched for the JSON Web Key Set every JWKSRefresh, and
	// sooner when a token names a key id the set lacks (at most once per
	// JWKSMinRefresh).
	JWKSURL string

	// JWKSRefresh is how long a fetched key set is used before it is
	// fetched again. Default 5m.
	JWKSRefresh time.Duration

	// JWKSMinRefresh is the least time between two fetches caused by
	// unknown key ids, so that tokens with made-up kids cannot make the
	// server hammer the identity provider. Default 10s.
	JWKSMinRefresh time.Duration

	// Issuer is the "iss" every JWT must carry. Required with a JWKS.
	Issuer string

	// Audiences lists the "aud" values accepted: a JWT must carry at least
	// one of them. Required with a JWKS.
	Audiences []string

	// ClockSkew is how far "exp", "nbf" and "iat" may be off from this
	// server's clock. Default 60s; negative means none.
	ClockSkew time.Duration

	// TenantClaims are the JWT claims that name the tenant, tried in
	// order; the first that holds a non-empty string wins. Default
	// ["tenant", "sub"].
	TenantClaims []string

	// TenantsFile is the YAML file of per-tenant policies (rate, burst,
	// concurrency, models, admin), the policy of authenticated tenants it
	// does not list, and the anonymous policy; doc.go shows its shape. It
	// is re-read when it changes. Without it every authenticated tenant
	// may do anything, unlimited.
	TenantsFile string

	// PublicPaths are path prefixes served without any check (health
	// probes). Nil means DefaultPublicPaths.
	PublicPaths []string

	// AdminPaths are path prefixes only a tenant with admin: true in the
	// tenants file may reach. Nil means DefaultAdminPaths.
	AdminPaths []string

	// LoopbackPaths are path prefixes reachable only over a connection
	// from a loopback address (the peer address, never X-Forwarded-For),
	// on top of every other check.
	LoopbackPaths []string

	// ExtAuthz configures the external authorization service.
	ExtAuthz ExtAuthzOptions

	// ReloadInterval is how often the key, JWKS and tenants files are
	// checked for changes. Default 5s.
	ReloadInterval time.Duration

	// ModelOf names the model a request addresses, "" for none; the
	// tenants' model allow-lists are checked against it. Default
	// ModelFromPath(nil).
	ModelOf func(*http.Request) string

	// Client fetches the JWKS and calls the external authorization
	// service. Default: a clone of http.DefaultTransport with a 10s
	// overall timeout for JWKS fetches (ExtAuthz.Timeout for checks).
	Client *http.Client

	// Now is the clock of token validation and rate limits, for tests.
	// Default time.Now.
	Now func() time.Time
}

// ExtAuthzOptions configure the external authorization hook, shaped like
// Envoy's ext_authz HTTP service.
type ExtAuthzOptions struct {
	// URL is the authorization service. Each request is checked by
	// sending its method to URL with the request's path and query
	// appended, the Headers below, and no body. Empty turns the hook off.
	URL string

	// Timeout bounds one check. Default 500ms.
	Timeout time.Duration

	// Headers are the request headers sent along (case-insensitive). Nil
	// means DefaultExtAuthzHeads.
	Headers []string

	// FailOpen lets requests through when the service cannot be reached,
	// times out or answers nonsense. Default false: such requests are
	// refused with 403.
	FailOpen bool

	// ForwardPrefix selects the headers of an allowing answer that are
	// set on the request passed on; headers with this prefix that the
	// client sent are removed first, so the handler can trust them.
	// Default "x-meridian-".
	ForwardPrefix string

	// TenantHeader is the header of an allowing answer that names the
	// tenant, used when the request's own credential named none. Default
	// "x-meridian-tenant".
	TenantHeader string
}

// RegisterFlags adds the --<prefix>auth-* flags, which fill o. The prefix
// lets one command hold two authenticators; most pass "".
func (o *Options) RegisterFlags(fs *pflag.FlagSet, prefix string) {
	p := prefix + "auth-"
	fs.StringVar(&o.APIKeysFile, p+"api-keys-file", "", `API keys: lines of "tenant key" (# comments), or a .yaml/.json map of tenant to keys; "sha256:<hex>" stores a key's hash instead of the key; re-read when it changes`)
	fs.StringVar(&o.JWKSFile, p+"jwks-file", "", "JSON Web Key Set (RS256, ES256, EdDSA keys) that signs accepted JWTs; re-read when it changes")
	fs.StringVar(&o.JWKSURL, p+"jwks-url", "", "URL of the identity provider's JSON Web Key Set, fetched every --"+p+"jwks-refresh and when a token names an unknown key id")
	fs.DurationVar(&o.JWKSRefresh, p+"jwks-refresh", DefaultJWKSRefresh, "how long a fetched JWKS is used before it is fetched again")
	fs.DurationVar(&o.JWKSMinRefresh, p+"jwks-min-refresh", DefaultJWKSMinRefresh, "least time between two JWKS fetches caused by tokens with unknown key ids")
	fs.StringVar(&o.Issuer, p+"issuer", "", `"iss" every JWT must carry (required with a JWKS)`)
	fs.StringSliceVar(&o.Audiences, p+"audience", nil, `"aud" values accepted; a JWT must carry one of them (required with a JWKS; repeatable)`)
	fs.DurationVar(&o.ClockSkew, p+"clock-skew", DefaultClockSkew, `how far a JWT's "exp", "nbf" and "iat" may be off from this server's clock`)
	fs.StringSliceVar(&o.TenantClaims, p+"tenant-claim", DefaultTenantClaims, "JWT claims that name the tenant, tried in order; the first holding a non-empty string wins")
	fs.StringVar(&o.TenantsFile, p+"tenants-file", "", "YAML file of per-tenant rate, burst, max concurrent requests, allowed models and admin; without it authenticated tenants are unlimited")
	fs.StringSliceVar(&o.PublicPaths, p+"public-paths", DefaultPublicPaths, "path prefixes served to anyone, without credentials (health probes)")
	fs.StringSliceVar(&o.AdminPaths, p+"admin-paths", DefaultAdminPaths, "path prefixes only tenants with admin: true in the tenants file may reach")
	fs.StringSliceVar(&o.LoopbackPaths, p+"loopback-paths", nil, "path prefixes reachable only from a loopback peer address, on top of every other check")
	fs.DurationVar(&o.ReloadInterval, p+"reload-interval", DefaultReloadInterval, "how often the API key, JWKS and tenants files are checked for changes")
	fs.StringVar(&o.ExtAuthz.URL, p+"ext-authz-url", "", "external authorization service (Envoy ext_authz HTTP shape): each request's method, path and selected headers are sent there; 2xx allows, anything else is relayed as the refusal")
	fs.DurationVar(&o.ExtAuthz.Timeout, p+"ext-authz-timeout", DefaultExtAuthzTimeout, "deadline of one external authorization check")
	fs.StringSliceVar(&o.ExtAuthz.Headers, p+"ext-authz-headers", DefaultExtAuthzHeads, "request headers sent to the external authorization service")
	fs.BoolVar(&o.ExtAuthz.FailOpen, p+"ext-authz-fail-open", false, "let requests through when the external authorization service fails or times out (default: refuse them with 403)")
	fs.StringVar(&o.ExtAuthz.ForwardPrefix, p+"ext-authz-forward-prefix", DefaultExtAuthzPrefix, "headers with this prefix in an allowing answer are set on the request passed on")
	fs.StringVar(&o.ExtAuthz.TenantHeader, p+"ext-authz-tenant-header", DefaultTenantHeader, "header of an allowing answer that names the tenant when the request's credential named none")
}

// Enabled reports whether the options turn authentication on.
func (o Options) Enabled() bool {
	return o.APIKeysFile != "" || o.JWKSFile != "" || o.JWKSURL != "" || o.TenantsFile != "" || o.ExtAuthz.URL != ""
}

func (o Options) withDefaults() Options {
	if o.JWKSRefresh <= 0 {
		o.JWKSRefresh = DefaultJWKSRefresh
	}
	if o.JWKSMinRefresh <= 0 {
		o.JWKSMinRefresh = DefaultJWKSMinRefresh
	}
	switch {
	case o.ClockSkew < 0:
		o.ClockSkew = 0
	case o.ClockSkew == 0:
		o.ClockSkew = DefaultClockSkew
	}
	if len(o.TenantClaims) == 0 {
		o.TenantClaims = DefaultTenantClaims
	}
	if o.PublicPaths == nil {
		o.PublicPaths = DefaultPublicPaths
	}
	if o.AdminPaths == nil {
		o.AdminPaths = DefaultAdminPaths
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = DefaultReloadInterval
	}
	if o.ModelOf == nil {
		o.ModelOf = ModelFromPath(nil)
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	e := &o.ExtAuthz
	if e.Timeout <= 0 {
		e.Timeout = DefaultExtAuthzTimeout
	}
	if e.Headers == nil {
		e.Headers = DefaultExtAuthzHeads
	}
	if e.ForwardPrefix == "" {
		e.ForwardPrefix = DefaultExtAuthzPrefix
	}
	if e.TenantHeader == "" {
		e.TenantHeader = DefaultTenantHeader
	}
	return o
}
