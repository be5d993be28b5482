package auth

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spf13/pflag"
)

// TestRegisterFlags fills Options from the command line, with the
// documented defaults for flags not given.
func TestRegisterFlags(t *testing.T) {
	t.Parallel()
	var o Options
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o.RegisterFlags(fs, "")
	err := fs.Parse([]string{
		"--auth-api-keys-file=/k", "--auth-jwks-url=https://idp/keys", "--auth-issuer=https://idp/",
		"--auth-audience=a,b", "--auth-clock-skew=5s", "--auth-tenants-file=/t.yaml",
		"--auth-ext-authz-url=http://authz:9000", "--auth-loopback-paths=/v2/repository",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{
		APIKeysFile: "/k", JWKSURL: "https://idp/keys", Issuer: "https://idp/", Audiences: []string{"a", "b"},
		ClockSkew: 5 * time.Second, TenantsFile: "/t.yaml", LoopbackPaths: []string{"/v2/repository"},
		JWKSRefresh: DefaultJWKSRefresh, JWKSMinRefresh: DefaultJWKSMinRefresh, TenantClaims: DefaultTenantClaims,
		PublicPaths: DefaultPublicPaths, AdminPaths: DefaultAdminPaths, ReloadInterval: DefaultReloadInterval,
		ExtAuthz: ExtAuthzOptions{URL: "http://authz:9000", Timeout: DefaultExtAuthzTimeout, Headers: DefaultExtAuthzHeads,
			ForwardPrefix: DefaultExtAuthzPrefix, TenantHeader: DefaultTenantHeader},
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("options\n got %+v\nwant %+v", o, want)
	}
	var two Options
	fs2 := pflag.NewFlagSet("glb", pflag.ContinueOnError)
	two.RegisterFlags(fs2, "upstream-")
	if fs2.Lookup("upstream-auth-issuer") == nil {
		t.Error("the prefix is not applied")
	}
}

// TestNewRefusesUnsafeConfig refuses configurations that would accept
// tokens meant for others or could never authenticate anyone.
func TestNewRefusesUnsafeConfig(t *testing.T) {
	t.Parallel()
	set := string(jwks(t, newKey(t, "k", jose.ES256)))
	for _, tc := range []struct {
		name string
		opts func(dir string) Options
		want string
	}{
		{"jwks without audience", func(dir string) Options {
			return Options{JWKSFile: writeFile(t, dir, "j", set), Issuer: testIssuer}
		}, "--auth-audience"},
		{"two key sources", func(dir string) Options {
			return Options{JWKSFile: "x", JWKSURL: "https://idp/", Issuer: testIssuer, Audiences: []string{"a"}}
		}, "one key source"},
		{"jwks url not http", func(string) Options {
			return Options{JWKSURL: "file:///etc/keys", Issuer: testIssuer, Audiences: []string{"a"}}
		}, "http(s) URL"},
		{"symmetric keys only", func(dir string) Options {
			return Options{JWKSFile: writeFile(t, dir, "j", `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0"}]}`), Issuer: testIssuer, Audiences: []string{"a"}}
		}, "no usable signing key"},
		{"tenants without credentials", func(dir string) Options {
			return Options{TenantsFile: writeFile(t, dir, "t.yaml", "tenants: {acme: {}}\n")}
		}, "without credentials"},
		{"ext authz url", func(string) Options { return Options{ExtAuthz: ExtAuthzOptions{URL: "authz:9000"}} }, "http(s)://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts(t.TempDir()), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestOff leaves the handler alone when nothing turns authentication on.
func TestOff(t *testing.T) {
	t.Parallel()
	d := newDoor(t, Options{})
	if d.Enabled() {
		t.Fatal("enabled without configuration")
	}
	if a := d.do(t, "GET", "/metrics"); a.code != 200 || a.body != "no tenant" {
		t.Fatalf("got %d %q", a.code, a.body)
	}
}
