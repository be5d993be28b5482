package auth

import "context"

// Method says how a request's tenant was established.
type Method string

// The ways a tenant is established.
const (
	MethodAPIKey    Method = "api-key"
	MethodJWT       Method = "jwt"
	MethodExtAuthz  Method = "ext-authz"
	MethodAnonymous Method = "anonymous"
)

// AnonymousTenant is the tenant of requests admitted under the tenants
// file's anonymous policy. No tenant may be configured with this name.
const AnonymousTenant = "anonymous"

// Tenant is who a request was admitted as.
type Tenant struct {
	// Name is the tenant's name: from the API key file, the JWT's tenant
	// claim, the external authorization service's tenant header, or
	// AnonymousTenant. It may be empty when the external authorization
	// service allowed a request without naming a tenant.
	Name string
	// Method is how Name was established.
	Method Method
}

type tenantKey struct{}

// TenantFrom returns the tenant Wrap admitted the request as, and whether
// there is one (there is none on public paths, or without Wrap).
func TenantFrom(ctx context.Context) (Tenant, bool) {
	t, ok := ctx.Value(tenantKey{}).(Tenant)
	return t, ok
}

func withTenant(ctx context.Context, t Tenant) context.Context {
	return context.WithValue(ctx, tenantKey{}, t)
}
