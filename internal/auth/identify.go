package auth

import (
	"net/http"
	"strings"
)

// identify establishes the request's tenant from its credential, the
// external authorization service (which, when configured, has the last
// word) and the anonymous policy, in that order. On failure it has
// answered the request.
func (a *Authenticator) identify(w http.ResponseWriter, r *http.Request) (Tenant, bool) {
	cred, err := credentialFrom(r.Header)
	if err != nil {
		a.unauthorized(w, r, errInvalidRequest, "send one credential: Authorization: Bearer <token> or X-API-Key: <key>")
		return Tenant{}, false
	}
	t, known, err := a.local(r, cred)
	if err != nil {
		a.unauthorized(w, r, errInvalidToken, err.Error())
		return Tenant{}, false
	}
	if a.ext != nil {
		return a.external(w, r, t, known)
	}
	switch {
	case known:
		return t, true
	case cred.kind != credNone:
		a.unauthorized(w, r, errInvalidToken, "unknown credentials")
		return Tenant{}, false
	case a.tenants.Load().anonymous() != nil:
		return Tenant{Name: AnonymousTenant, Method: MethodAnonymous}, true
	}
	a.unauthorized(w, r, "", "credentials required: Authorization: Bearer <token> or X-API-Key: <key>")
	return Tenant{}, false
}

// local checks the credential against the API keys and the JWKS. A
// credential neither knows is not an error (the external service may
// know it); a JWT that fails verification is.
func (a *Authenticator) local(r *http.Request, cred credential) (Tenant, bool, error) {
	if cred.kind != credBearer && cred.kind != credAPIKey {
		return Tenant{}, false, nil
	}
	if a.keys != nil {
		if name, ok := a.keys.tenant(cred.secret); ok {
			return Tenant{Name: name, Method: MethodAPIKey}, true, nil
		}
	}
	if cred.kind != credBearer || a.jwt == nil || !looksLikeJWT(cred.secret) {
		return Tenant{}, false, nil
	}
	name, err := a.jwt.verify(r.Context(), cred.secret)
	if err != nil {
		return Tenant{}, false, err
	}
	return Tenant{Name: name, Method: MethodJWT}, true, nil
}

// external asks the external authorization service about r, which the
// request's credential identified as t if known. On an allowing answer it
// sets the answer's forwarded headers on r and, when t is not known,
// takes the tenant the answer names; headers with the forwarded prefix
// that the client sent are removed, so that the handler can trust them.
// When the service fails open, the request goes on as the credential's
// tenant, or as tenant "" when it named none. It returns false when it
// refused r.
func (a *Authenticator) external(w http.ResponseWriter, r *http.Request, t Tenant, known bool) (Tenant, bool) {
	v := a.ext.check(r, t.Name)
	switch {
	case v.err != nil && !a.opts.ExtAuthz.FailOpen:
		a.log.Warn("external authorization failed; refusing (fail closed)", "err", v.err)
		a.m.requests.WithLabelValues(resultExtError, a.tenantLabel(t.Name)).Inc()
		writeError(w, http.StatusForbidden, "authorization service unavailable")
		return Tenant{}, false
	case v.err != nil:
		a.log.Warn("external authorization failed; letting the request through (fail open)", "err", v.err)
		if !known {
			t = Tenant{Method: MethodExtAuthz}
		}
		return t, true
	case !v.allowed:
		a.m.requests.WithLabelValues(resultExtDenied, a.tenantLabel(t.Name)).Inc()
		v.relay(w)
		return Tenant{}, false
	}
	for k := range r.Header { // only the service may set these
		if strings.HasPrefix(strings.ToLower(k), a.ext.opts.ForwardPrefix) {
			delete(r.Header, k)
		}
	}
	for k, vals := range v.set {
		r.Header[k] = vals
	}
	if !known {
		t = Tenant{Name: v.tenant, Method: MethodExtAuthz}
	}
	return t, true
}
