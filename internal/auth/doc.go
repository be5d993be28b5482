// Package auth is the door of Meridian's HTTP servers — the model server
// and the balancer's front: it authenticates each request, maps it to a
// tenant, and enforces that tenant's quotas and allow-list of models
// before the handler it wraps sees the request.
//
//	a, err := auth.New(opts, reg, log) // opts from Options.RegisterFlags
//	handler = a.Wrap(handler)           // auth.TenantFrom(r.Context()) inside
//	defer a.Close()
//
// # The checks, in order
//
//  1. Loopback paths (Options.LoopbackPaths): refused with 403 unless the
//     connection comes from a loopback address (never X-Forwarded-For).
//  2. Public paths (Options.PublicPaths, default /v2/health): served with
//     no further check, so probes need no credential. A path that is also
//     an admin path is not public.
//  3. Credentials: "Authorization: Bearer <api-key or JWT>" or
//     "X-API-Key: <api-key>"; both, or either twice, is 401
//     invalid_request. A bearer value is looked up as an API key first,
//     then, if it has a JWT's shape, verified as one. A JWT that fails
//     (bad signature, unknown kid, expired, not yet valid, issued in the
//     future, wrong iss, no matching aud, no exp, no tenant) is 401
//     invalid_token with the reason in error_description.
//  4. External authorization (Options.ExtAuthz), if configured: see below.
//  5. Tenant: the credential's. With an external service its verdict is
//     final: an allowed request without a tenant of its own takes the
//     one the service names, or "" (the tenants file's default policy).
//     Without one, a request with no credential at all gets the tenants
//     file's anonymous policy if it has one (tenant "anonymous", one
//     shared bucket); else 401 (a bare Bearer challenge when no
//     credential was sent, invalid_token when one was sent that nothing
//     knows).
//  6. Policy: the tenant's entry in the tenants file, else its default;
//     neither is 403. Admin paths (Options.AdminPaths, default /metrics
//     and /v2/repository) need admin: true, else 403. A model outside the
//     tenant's allow-list is 403; the model comes from Options.ModelOf
//     (default ModelFromPath(nil): /v2/models/{model}/…). Every 403 from a
//     policy carries WWW-Authenticate error="insufficient_scope".
//  7. Concurrency, then rate: a tenant at its maxConcurrent is 429 with
//     Retry-After: 1; a tenant whose token bucket is empty is 429 with
//     Retry-After set to the whole seconds, rounded up, until its next
//     token. A request refused for concurrency costs no token.
//
// Paths are matched after cleaning ("//metrics" and "/./metrics" are
// "/metrics"), on segment boundaries ("/metrics" does not cover
// "/metricsx"). Error bodies are the Open Inference Protocol's
// {"error": "..."}.
//
// # Credentials
//
// API keys come from a file of "tenant key" lines or a .yaml/.json map of
// tenant to keys; "sha256:<hex>" stores a key's hash instead. In memory a
// key is only HMAC-SHA-256(random per-process key, SHA-256(key)), and a
// lookup is one map probe on that digest: its timing reveals nothing an
// attacker could use, since digests of guesses cannot be computed
// outside the process.
//
// JWTs are accepted when signed with RS256 (2048 bits or more), ES256 or
// EdDSA (Ed25519) by a key of the JWKS — from a file, or from a URL
// fetched at start, every JWKSRefresh (5m), and when a token names a kid
// the set lacks, at most once per JWKSMinRefresh (10s) so that made-up
// kids cannot make the server hammer the identity provider. HS* and
// "none" are refused, as are keys embedded in the token. "iss" must equal
// Issuer, "aud" must hold one of Audiences (both required with a JWKS),
// and "exp" (required), "nbf" and "iat" are checked within ClockSkew
// (default 60s). The tenant is the first of TenantClaims (default
// "tenant", then "sub") that holds a non-empty string. A verified token is
// remembered (by its SHA-256, 10,000 at most) for a minute or until it
// expires, whichever is first, and only while the key set is the one it
// was verified against: a client that sends one token per request pays
// one signature check a minute, and a key withdrawn from the set stops
// working at the next reload or fetch.
//
// # Tenants file
//
//	tenants:
//	  acme: {rate: 50, burst: 100, maxConcurrent: 20, models: [sentiment, textdir]}
//	  ops:  {admin: true}          # no limits, every model, the admin paths
//	default: {rate: 5, maxConcurrent: 2}        # authenticated tenants not listed
//	anonymous: {rate: 1, models: [sentiment]}   # requests without credentials
//
// rate is requests per second (0: unlimited), burst the bucket's size
// (default rate rounded up, at least 1), maxConcurrent the requests in
// flight (0: unlimited), models the allow-list (absent: all; []: none;
// "*": all). Without default, unlisted tenants are refused; without
// anonymous, requests without credentials are (anonymous access is off
// unless configured). Without a tenants file every authenticated tenant
// may use every model without limit, and nobody is admin.
//
// Key, JWKS and tenants files are re-read when their content changes
// (polled every ReloadInterval, 5s, which sees Kubernetes' symlink swaps
// of mounted Secrets and ConfigMaps); replace them atomically (write
// another file, rename it over). A file that fails to parse keeps what was
// loaded before and is counted as an error. Token-bucket state survives
// reloads; an idle tenant's state (bucket full, nothing in flight) is
// dropped, so memory follows active tenants.
//
// # External authorization
//
// Shaped like Envoy's ext_authz HTTP service: for each request the door
// sends the request's method to ExtAuthz.URL with the request's path and
// query appended, the headers in ExtAuthz.Headers (default Authorization
// and X-API-Key), the tenant the request's own credential named (if any)
// in ExtAuthz.TenantHeader, and no body, within ExtAuthz.Timeout (500ms).
// A 2xx allows: the answer's headers starting with ExtAuthz.ForwardPrefix
// ("x-meridian-") are set on the request passed on (the client's own
// headers with that prefix are removed), and its TenantHeader
// ("x-meridian-tenant") names the tenant when the credential named none.
// Any other status is relayed to the client as the refusal (status, body
// up to 64 KiB, Content-Type, WWW-Authenticate, Retry-After, Location).
// When the service cannot be reached or times out the request is refused
// with 403 (fail closed), or let through with ExtAuthz.FailOpen. A
// credential neither the API keys nor the JWKS know is left to the
// service to judge; one they refuse never reaches it.
//
// # Metrics
//
//	meridian_auth_requests_total{result,tenant}      counter; result: allowed, unauthenticated,
//	                                                 forbidden, rate_limited, concurrency_limited,
//	                                                 ext_denied, ext_error
//	meridian_auth_ext_authz_checks_total{result}     counter; allowed, denied, error
//	meridian_auth_ext_authz_duration_seconds         histogram
//	meridian_auth_jwks_fetches_total{result}         counter; ok, error
//	meridian_auth_file_reloads_total{file,result}    counter; file: api_keys, jwks, tenants
//
// The tenant label is bounded by configuration: a tenant named in the
// tenants or API key file by its name, "anonymous", "_unlisted" for
// tenants only a JWT or the external service names, "" when no tenant was
// established. Public paths are not counted.
//
// With none of APIKeysFile, JWKSFile, JWKSURL, TenantsFile and
// ExtAuthz.URL set, authentication is off: New logs a warning and Wrap
// returns its handler unchanged.
package auth
