package auth

import (
	"errors"
	"net/http"
	"strings"
)

// maxCredentialBytes bounds a credential; longer ones are refused before
// any parsing or hashing. Real JWTs are a few hundred bytes to a few KiB.
const maxCredentialBytes = 16 << 10

// APIKeyHeader is the header that may carry an API key instead of
// Authorization: Bearer.
const APIKeyHeader = "X-API-Key"

// credential is what a request presents: nothing, a bearer token (an API
// key or a JWT, told apart by lookup), an X-API-Key, or an Authorization
// scheme this package does not handle (left to the external
// authorization service).
type credential struct {
	kind   credentialKind
	secret string
}

type credentialKind int

const (
	credNone credentialKind = iota
	credBearer
	credAPIKey
	credOtherScheme
)

// errMalformed is a credential header that cannot be read; RFC 6750 calls
// it invalid_request.
var errMalformed = errors.New("malformed credentials")

// credentialFrom reads the request's credential. Sending both an
// Authorization and an X-API-Key header, or either twice, is refused:
// which one to believe would be a guess.
func credentialFrom(h http.Header) (credential, error) {
	authz, keys := h.Values("Authorization"), h.Values(APIKeyHeader)
	switch {
	case len(authz)+len(keys) == 0:
		return credential{}, nil
	case len(authz)+len(keys) > 1:
		return credential{}, errMalformed
	case len(keys) == 1:
		return checked(credAPIKey, strings.TrimSpace(keys[0]))
	}
	scheme, rest, ok := strings.Cut(strings.TrimSpace(authz[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if scheme == "" {
			return credential{}, errMalformed
		}
		return credential{kind: credOtherScheme}, nil
	}
	if !ok {
		return credential{}, errMalformed
	}
	tok := strings.TrimLeft(rest, " ")
	if !isToken68(tok) {
		return credential{}, errMalformed
	}
	return checked(credBearer, tok)
}

func checked(kind credentialKind, secret string) (credential, error) {
	if secret == "" || len(secret) > maxCredentialBytes {
		return credential{}, errMalformed
	}
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; c <= ' ' || c >= 0x7f {
			return credential{}, errMalformed
		}
	}
	return credential{kind: kind, secret: secret}, nil
}

// isToken68 reports whether s has RFC 7235's token68 syntax, which a
// Bearer credential must: letters, digits, -._~+/ and trailing =.
func isToken68(s string) bool {
	if s == "" {
		return false
	}
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~+/", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// looksLikeJWT reports whether s has the shape of a JWS compact
// serialization: three dot-separated parts.
func looksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2
}
