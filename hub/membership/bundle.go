package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/internal/scheme"
)

// Names on the hub.
const (
	// NamespacePrefix + a member's name is its namespace on the hub.
	NamespacePrefix = "meridian-member-"
	// MemberLabel on a hub namespace names the pull member it belongs to.
	MemberLabel = "meridian.dev/member"
	// MembershipLabel on a Cluster says how it joined: push (AddPush),
	// pull (Add), or revoked. A Cluster created from a push member's first
	// report has none.
	MembershipLabel = "meridian.dev/membership"
	// AgentPrefix + a generation is the ServiceAccount that is the
	// member's identity on the hub; BootstrapPrefix + the same generation
	// may only ask for tokens of it. Each Add makes a new generation, so
	// a rotated member's old tokens name a ServiceAccount that no binding
	// names any more: refused at once, even while the API server's token
	// cache (10s) still authenticates them.
	AgentPrefix     = "agent-"
	BootstrapPrefix = "bootstrap-"
)

// ReportName is the name on the hub of member's ClusterReport.
func ReportName(member string) string { return "member." + member }

// Namespace is member's namespace on the hub.
func Namespace(member string) string { return NamespacePrefix + member }

// HubName is the name on the hub of the ModelDeployment that is
// namespace/name in the member: namespace names hold no dot, so the two
// parts split back unambiguously.
func HubName(namespace, name string) string { return namespace + "." + name }

// SplitHubName is HubName's inverse.
func SplitHubName(hubName string) (namespace, name string, ok bool) {
	return strings.Cut(hubName, ".")
}

// Bundle is a credential for a member on the hub: what `meridian member
// add` prints (a bootstrap token) and what the agent keeps (its own token,
// renewed before Expires). It is a secret.
type Bundle struct {
	// Server is the hub's API server URL as the member reaches it.
	Server string `json:"server"`
	// CAData is the PEM of the CA the hub's API server certificate chains
	// to; empty trusts the system's roots.
	CAData []byte `json:"caData,omitempty"`
	// TLSServerName, when set, is the name the hub's certificate is
	// checked against instead of Server's host (a hub reached through a
	// proxy or by an address its certificate does not name).
	TLSServerName string `json:"tlsServerName,omitempty"`
	// Member is the member's name.
	Member string `json:"member"`
	// ServiceAccount is the agent's ServiceAccount in the member's
	// namespace, which Token is exchanged for or belongs to.
	ServiceAccount string `json:"serviceAccount"`
	// Token is a ServiceAccount token of the member's namespace.
	Token string `json:"token"`
	// Expires is when Token stops working.
	Expires time.Time `json:"expires"`
}

// ParseBundle reads a Bundle and checks that it is whole.
func ParseBundle(b []byte) (Bundle, error) {
	var out Bundle
	if err := json.Unmarshal(b, &out); err != nil {
		return Bundle{}, fmt.Errorf("not a join bundle (JSON from `meridian member add`): %w", err)
	}
	var missing []string
	for name, v := range map[string]string{"server": out.Server, "member": out.Member, "serviceAccount": out.ServiceAccount, "token": out.Token} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 || out.Expires.IsZero() {
		return Bundle{}, fmt.Errorf("join bundle lacks %s: use the whole output of `meridian member add`", strings.Join(append(missing, "expires"), ", "))
	}
	return out, nil
}

// RESTConfig is a client configuration for the hub with b's token.
func (b Bundle) RESTConfig() *rest.Config {
	return &rest.Config{Host: b.Server, BearerToken: b.Token, TLSClientConfig: rest.TLSClientConfig{CAData: b.CAData, ServerName: b.TLSServerName},
		QPS: 20, Burst: 40, Timeout: 10 * time.Second}
}

// ErrRefused is wrapped by errors that mean the hub refused the
// credential: unknown, expired or revoked. Only a new join bundle helps.
var ErrRefused = errors.New("the hub refused the member's credential")

// DefaultAgentTokenTTL is how long an agent's token lives; the agent
// renews it after RenewFraction of that.
const DefaultAgentTokenTTL = 24 * time.Hour

// RenewFraction of a token's lifetime passes before the agent renews it.
const RenewFraction = 0.8

// Exchange turns a bootstrap bundle (or the agent's current credential,
// to renew it) into a fresh credential of the member's agent, valid for
// ttl (at least 10 minutes, the API server's floor). A bundle past its
// expiry is refused without a request.
func Exchange(ctx context.Context, b Bundle, ttl time.Duration) (Bundle, error) {
	if time.Now().After(b.Expires) {
		return Bundle{}, fmt.Errorf("%w: the credential of member %s expired at %s; ask the hub's admin for a new join bundle (meridian member rotate %s)",
			ErrRefused, b.Member, b.Expires.Format(time.RFC3339), b.Member)
	}
	c, err := client.New(b.RESTConfig(), client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return Bundle{}, fmt.Errorf("hub %s: %w", b.Server, err)
	}
	tok, err := requestToken(ctx, c, b.Member, b.ServiceAccount, ttl)
	if err != nil {
		return Bundle{}, explain(err, b)
	}
	out := b
	out.Token, out.Expires = tok.Status.Token, tok.Status.ExpirationTimestamp.Time
	return out, nil
}

// requestToken asks the hub for a token of a ServiceAccount of member's
// namespace, bound to the ServiceAccount: deleting it ends the token.
func requestToken(ctx context.Context, c client.Client, member, sa string, ttl time.Duration) (*authenticationv1.TokenRequest, error) {
	return requestTokenIn(ctx, c, Namespace(member), sa, ttl)
}

// requestTokenIn asks c's API server for a token of ServiceAccount
// namespace/sa valid for ttl.
func requestTokenIn(ctx context.Context, c client.Client, namespace, sa string, ttl time.Duration) (*authenticationv1.TokenRequest, error) {
	acct := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: sa}}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(max(ttl, 10*time.Minute) / time.Second))}}
	if err := c.SubResource("token").Create(ctx, acct, tr); err != nil {
		return nil, err
	}
	return tr, nil
}

// explain turns the hub's refusals into what the member's operator should
// do.
func explain(err error, b Bundle) error {
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: hub %s does not accept the token of member %s (unknown, expired or revoked); ask the hub's admin for a new join bundle (meridian member rotate %s): %w",
			ErrRefused, b.Server, b.Member, b.Member, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w: hub %s does not let member %s do this (revoked, or a bundle of another member?): %w", ErrRefused, b.Server, b.Member, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: hub %s has no member %s (removed?): %w", ErrRefused, b.Server, b.Member, err)
	}
	return fmt.Errorf("reaching hub %s as member %s: %w", b.Server, b.Member, err)
}

// Refused reports whether err means the hub refused a member's
// credential, by status code: 401, or 403 for a revoked member's leftover
// rights.
func Refused(err error) bool {
	if errors.Is(err, ErrRefused) {
		return true
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		code := st.Status().Code
		return code == http.StatusUnauthorized || code == http.StatusForbidden
	}
	return false
}
