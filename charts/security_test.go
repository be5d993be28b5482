package charts_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"

	"meridian.dev/meridian/charts"
)

// render runs helm template on the glb-secure case with more --set
// values and returns the objects it decodes, or helm's output and error.
func render(t *testing.T, set ...string) ([]any, string, error) {
	t.Helper()
	args := []string{"template", "meridian", charts.Dir(), "--namespace", "meridian-system",
		"--values", filepath.Join("testdata", "glb-secure.values.yaml")}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := charts.Run(t, args...)
	if err != nil {
		return nil, string(out), err
	}
	var objs []any
	for doc := range strings.SplitSeq(string(out), "\n---\n") {
		if o, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil); err == nil {
			objs = append(objs, o)
		}
	}
	return objs, string(out), nil
}

func find[T any](t *testing.T, objs []any, name string, get func(T) string) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.(T); ok && get(v) == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T %s rendered", zero, name)
	return zero
}

func glbPod(t *testing.T, objs []any) *corev1.PodSpec {
	t.Helper()
	return &find(t, objs, "meridian-glb", func(s *appsv1.StatefulSet) string { return s.Name }).Spec.Template.Spec
}

func hasAll(t *testing.T, what string, got, want []string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s lacks %s; has\n%s", what, w, strings.Join(got, "\n"))
		}
	}
}

// Every security value becomes the balancer's flag, and every file a flag
// names lies in a Secret mounted whole as a read-only directory (never
// subPath, which would freeze it: a renewed certificate, an edited key
// file or a new DNSSEC key must reach the running pod), readable by the
// pod's group only.
func TestSecurityFlagsAndSecrets(t *testing.T) {
	t.Parallel()
	objs, _, err := render(t)
	if err != nil {
		t.Fatal(err)
	}
	pod := glbPod(t, objs)
	c := pod.Containers[0]
	hasAll(t, "glb args", c.Args, []string{
		"--tls-dir=/etc/meridian/tls",
		"--upstream-tls-dir=/etc/meridian/upstream-tls",
		"--upstream-tls-server-name=endpoints.meridian.internal",
		"--auth-api-keys-file=/etc/meridian/auth/api-keys",
		"--auth-tenants-file=/etc/meridian/auth/tenants.yaml",
		"--auth-jwks-file=/etc/meridian/auth/jwks.json",
		"--auth-issuer=https://idp.example.com/",
		"--auth-audience=meridian", "--auth-audience=inference",
		"--trusted-proxy-hops=1", "--trusted-proxies=10.0.0.0/8", "--trusted-proxies=192.0.2.10",
		"--dns-rrl-responses-per-second=50", "--dns-rrl-burst=100", "--dns-rrl-window=30s",
		"--dns-rrl-slip=0", "--dns-rrl-ipv4-prefix=24", "--dns-rrl-ipv6-prefix=48",
		"--dns-rrl-table-size=1000000", "--dns-rrl-exempt=198.51.100.0/24",
		"--dns-ecs-trusted-resolvers=8.8.8.0/24", "--dns-ecs-trusted-resolvers=2001:4860::/32",
		"--dnssec-key-file=/etc/meridian/dnssec/ksk", "--dnssec-key-file=/etc/meridian/dnssec/zsk",
	})
	secrets := map[string]string{ // volume: Secret
		"tls": "glb-front-tls", "upstream-tls": "glb-upstream-tls", "auth": "glb-auth", "dnssec": "meridian-dnssec",
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Errorf("mount %s uses subPath: updates to its volume would never reach the pod", m.Name)
		}
		mounts[m.Name] = m
	}
	for _, v := range pod.Volumes {
		want, ok := secrets[v.Name]
		if !ok {
			continue
		}
		delete(secrets, v.Name)
		if v.Secret == nil || v.Secret.SecretName != want || len(v.Secret.Items) != 0 {
			t.Errorf("volume %s: %+v, want all of Secret %s", v.Name, v.VolumeSource, want)
			continue
		}
		if m := v.Secret.DefaultMode; m == nil || *m != 0o440 {
			t.Errorf("volume %s: defaultMode %v, want 0440 (private keys: the pod's group only)", v.Name, m)
		}
		m, ok := mounts[v.Name]
		if !ok || !m.ReadOnly || m.MountPath != "/etc/meridian/"+v.Name {
			t.Errorf("volume %s mounted as %+v, want read-only at /etc/meridian/%s", v.Name, m, v.Name)
		}
	}
	if len(secrets) != 0 {
		t.Errorf("no volumes for %v", secrets)
	}
	// Every path a flag names is under a mounted directory.
	for _, a := range c.Args {
		_, p, ok := strings.Cut(a, "=/etc/meridian/")
		if !ok {
			continue
		}
		dir, _, _ := strings.Cut(p, "/")
		if dir == "gossip" {
			dir = "gossip-keyring"
		}
		if _, ok := mounts[dir]; !ok {
			t.Errorf("%s: nothing mounted at /etc/meridian/%s", a, dir)
		}
	}
	// The probes keep to the plain-HTTP metrics port: the HTTPS front,
	// behind the door, is not what the kubelet asks.
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.String() != "metrics" || p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			t.Errorf("probe %+v, want HTTP on the metrics port", p)
		}
	}
	// The front's ports say HTTPS, and the Service listens on 443.
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "https" && p.ContainerPort == 8080 }) {
		t.Errorf("container ports %+v, want https on 8080", c.Ports)
	}
	svc := find(t, objs, "meridian-glb", func(s *corev1.Service) string { return s.Name })
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		return p.Name == "https" && p.Port == 443 && p.TargetPort.String() == "https"
	}) {
		t.Errorf("Service ports %+v, want https 443 to the container's https", svc.Spec.Ports)
	}
	hub := find(t, objs, "meridian-hub", func(d *appsv1.Deployment) string { return d.Name })
	hasAll(t, "hub args", hub.Spec.Template.Spec.Containers[0].Args,
		[]string{"--allowed-model-sources=/srv/models", "--allowed-model-sources=file:///mnt/shared/models"})
}

// Rate limiting off renders --dns-rrl=false and none of its knobs; an
// identity provider's key set URL replaces the Secret's; a Service port
// given is kept; with every security value off, no such flag or volume is
// rendered (the defaults golden holds the rest).
func TestSecurityVariants(t *testing.T) {
	t.Parallel()
	objs, _, err := render(t, "glb.dns.rrl.enabled=false", "glb.auth.jwks=", "glb.auth.jwksURL=https://idp.example.com/jwks.json", "glb.http.servicePort=8443")
	if err != nil {
		t.Fatal(err)
	}
	args := glbPod(t, objs).Containers[0].Args
	hasAll(t, "glb args", args, []string{"--dns-rrl=false", "--auth-jwks-url=https://idp.example.com/jwks.json"})
	for _, a := range args {
		if strings.HasPrefix(a, "--dns-rrl-") || strings.HasPrefix(a, "--auth-jwks-file") {
			t.Errorf("%s rendered", a)
		}
	}
	svc := find(t, objs, "meridian-glb", func(s *corev1.Service) string { return s.Name })
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "https" && p.Port == 8443 }) {
		t.Errorf("Service ports %+v, want https on 8443", svc.Spec.Ports)
	}

	out, err := charts.Run(t, "template", "meridian", charts.Dir(), "--namespace", "meridian-system",
		"--values", filepath.Join("testdata", "hub.values.yaml"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, s := range []string{"--tls-", "--upstream-tls", "--auth-", "--trusted-prox", "--dns-rrl", "--dns-ecs", "--dnssec", "--allowed-model-sources", "defaultMode", "name: https"} {
		if strings.Contains(string(out), s) {
			t.Errorf("hub.values.yaml renders %q with every security value off", s)
		}
	}
	if !strings.Contains(string(out), "{name: http, port: 80, targetPort: http, protocol: TCP}") {
		t.Error("the plain HTTP front's Service port is not 80")
	}
}

// Values that would start a balancer that refuses its flags, or mount a
// Secret nothing reads, are refused when rendering, saying what to set.
func TestSecurityValuesRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		set  []string
		want string
	}{
		{"TLS without the front", []string{"glb.http.enabled=false", "glb.auth.secretName=", "glb.auth.apiKeys=", "glb.auth.tenants=", "glb.auth.jwks="}, "set glb.http.enabled=true"},
		{"door without the front", []string{"glb.http.enabled=false", "glb.tls.secretName="}, "set glb.http.enabled=true"},
		{"keys without their Secret", []string{"glb.auth.secretName="}, "glb.auth.apiKeys, .tenants and .jwks name keys of glb.auth.secretName"},
		{"Secret without keys", []string{"glb.auth.apiKeys=", "glb.auth.tenants=", "glb.auth.jwks="}, "name the keys it holds"},
		{"key set without issuer", []string{"glb.auth.issuer="}, "needs glb.auth.issuer and glb.auth.audiences"},
		{"key set without audiences", []string{"glb.auth.audiences=null"}, "needs glb.auth.issuer and glb.auth.audiences"},
		{"two key sets", []string{"glb.auth.jwksURL=https://idp.example.com/jwks.json"}, "give one JSON Web Key Set"},
		{"DNSSEC Secret without keys", []string{"glb.dns.dnssec.keys=null"}, "list its keys in glb.dns.dnssec.keys"},
		{"DNSSEC keys without Secret", []string{"glb.dns.dnssec.secretName="}, "glb.dns.dnssec.keys are in glb.dns.dnssec.secretName"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, out, err := render(t, c.set...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("helm template --set %v: %v\n%s\nwant an error saying %q", c.set, err, out, c.want)
			}
		})
	}
}
