package auth

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Policy is what one tenant may do.
type Policy struct {
	// Rate is the sustained requests per second; 0 means unlimited.
	Rate float64 `json:"rate,omitempty"`
	// Burst is how many requests may come at once after a quiet spell
	// (the token bucket's size). Default: Rate rounded up, at least 1.
	Burst int `json:"burst,omitempty"`
	// MaxConcurrent bounds the tenant's requests in flight; 0 means
	// unlimited.
	MaxConcurrent int `json:"maxConcurrent,omitempty"`
	// Models is the allow-list of models. Absent: every model; an empty
	// list: none (only paths that address no model); "*" allows all.
	Models []string `json:"models,omitempty"`
	// Admin lets the tenant reach the admin paths (/metrics, the
	// repository index).
	Admin bool `json:"admin,omitempty"`
}

// allows reports whether the policy lets its tenant use model.
func (p *Policy) allows(model string) bool {
	return model == "" || p.Models == nil || slices.Contains(p.Models, model) || slices.Contains(p.Models, "*")
}

// unlimited is the policy of every tenant when there is no tenants file.
var unlimited = &Policy{}

// tenantsFile is the tenants file:
//
//	tenants:
//	  acme: {rate: 50, burst: 100, maxConcurrent: 20, models: [sentiment]}
//	  ops:  {admin: true}
//	default: {rate: 5, maxConcurrent: 2}   # authenticated tenants not listed
//	anonymous: {rate: 1, models: [sentiment]}   # requests without credentials
type tenantsFile struct {
	Tenants   map[string]*Policy `json:"tenants"`
	Default   *Policy            `json:"default,omitempty"`
	Anonymous *Policy            `json:"anonymous,omitempty"`
}

// tenantPolicies resolves tenants to policies. The zero value (no tenants
// file) gives every tenant the unlimited policy and has no anonymous one.
type tenantPolicies struct {
	file *tenantsFile
}

// policy returns the policy of tenant name, or nil if the tenants file
// neither lists it nor has a default.
func (t *tenantPolicies) policy(name string) *Policy {
	if t.file == nil {
		return unlimited
	}
	if p, ok := t.file.Tenants[name]; ok {
		return p
	}
	return t.file.Default
}

func (t *tenantPolicies) anonymous() *Policy {
	if t.file == nil {
		return nil
	}
	return t.file.Anonymous
}

func (t *tenantPolicies) listed(name string) bool {
	if t.file == nil {
		return false
	}
	_, ok := t.file.Tenants[name]
	return ok
}

func parseTenants(name string, data []byte) (*tenantPolicies, error) {
	var f tenantsFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w (fields: tenants, default, anonymous; per policy: rate, burst, maxConcurrent, models, admin)", name, err)
	}
	for t, p := range f.Tenants {
		if err := validTenantName(t); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if p == nil { // "ops:" with nothing under it: unlimited
			p = &Policy{}
			f.Tenants[t] = p
		}
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("%s: tenant %q: %w", name, t, err)
		}
	}
	for what, p := range map[string]*Policy{"default": f.Default, "anonymous": f.Anonymous} {
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, what, err)
		}
	}
	if f.Anonymous != nil && f.Anonymous.Admin {
		return nil, fmt.Errorf("%s: anonymous: admin would open the admin paths to anyone; remove it", name)
	}
	return &tenantPolicies{file: &f}, nil
}

func (p *Policy) validate() error {
	if p == nil {
		return nil
	}
	switch {
	case p.Rate < 0 || math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0):
		return fmt.Errorf("rate %v: want requests per second, 0 for unlimited", p.Rate)
	case p.Burst < 0:
		return fmt.Errorf("burst %d: want at least 1 (0 for the default, rate rounded up)", p.Burst)
	case p.MaxConcurrent < 0:
		return fmt.Errorf("maxConcurrent %d: want 0 (unlimited) or more", p.MaxConcurrent)
	}
	if p.Burst == 0 {
		p.Burst = max(1, int(math.Ceil(p.Rate)))
	}
	return nil
}

func validTenantName(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("empty tenant name")
	case t == AnonymousTenant:
		return fmt.Errorf("tenant name %q is reserved for requests without credentials; use the anonymous policy", t)
	case strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("tenant name %q holds spaces or control characters", t)
	}
	return nil
}
