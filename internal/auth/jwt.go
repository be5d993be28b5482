package auth

import (
	"context"
	"errors"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// algorithms are the signature algorithms accepted. Symmetric ones (HS*)
// are not: a JWKS is public, and accepting them invites the confusion of
// a public key used as an HMAC secret.
var algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// tokenError is a credential refused with RFC 6750's invalid_token; its
// text is the error_description.
type tokenError string

func (e tokenError) Error() string { return string(e) }

// jwtVerifier checks JWTs: signature by a key of the JWKS, issuer,
// audience, and the time claims within the clock skew.
type jwtVerifier struct {
	keys      *jwksSource
	issuer    string
	audiences jwt.Audience
	skew      time.Duration
	claims    []string
	now       func() time.Time
	cache     *jwtCache
}

// verify returns the tenant raw names, or a tokenError.
func (v *jwtVerifier) verify(ctx context.Context, raw string) (string, error) {
	now, set := v.now(), v.keys.set.Load()
	if t, ok := v.cache.get(raw, now, set); ok {
		return t, nil
	}
	tok, err := jwt.ParseSigned(raw, algorithms)
	if err != nil || len(tok.Headers) != 1 {
		return "", tokenError("not a JWT signed with RS256, ES256 or EdDSA")
	}
	h := tok.Headers[0]
	set, keys := v.keys.keys(ctx, h.KeyID)
	if len(keys) == 0 {
		return "", tokenError("signed by an unknown key")
	}
	var (
		std   jwt.Claims
		extra map[string]any
		ok    bool
	)
	for _, k := range keys {
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		if tok.Claims(k.Key, &std, &extra) == nil {
			ok = true
			break
		}
	}
	if !ok {
		return "", tokenError("bad signature")
	}
	if std.Expiry == nil {
		return "", tokenError("the token has no expiry (exp)")
	}
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: v.issuer, AnyAudience: v.audiences, Time: now}, v.skew)
	if err != nil {
		return "", claimsError(err)
	}
	t, err := v.tenant(extra)
	if err == nil {
		v.cache.add(raw, t, std.Expiry.Time().Add(v.skew), now, set)
	}
	return t, err
}

// tenant is the first of the tenant claims that holds a string.
func (v *jwtVerifier) tenant(claims map[string]any) (string, error) {
	for _, c := range v.claims {
		if t, _ := claims[c].(string); t != "" {
			if validTenantName(t) != nil {
				return "", tokenError("the token's tenant claim is not a valid tenant name")
			}
			return t, nil
		}
	}
	return "", tokenError("the token names no tenant")
}

func claimsError(err error) error {
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return tokenError("the token expired")
	case errors.Is(err, jwt.ErrNotValidYet):
		return tokenError("the token is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return tokenError("the token is issued in the future (iat)")
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return tokenError("wrong issuer")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return tokenError("wrong audience")
	}
	return tokenError("invalid claims")
}
