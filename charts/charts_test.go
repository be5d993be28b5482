package charts_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"meridian.dev/meridian/charts"
	"meridian.dev/meridian/hub/membership"
)

var update = flag.Bool("update", false, "rewrite the golden files testdata/*.golden.yaml from the chart")

// The values files of the golden cases: testdata/<case>.values.yaml.
func valueFiles(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.values.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata/*.values.yaml: %v", err)
	}
	out := map[string]string{}
	for _, p := range paths {
		out[strings.TrimSuffix(filepath.Base(p), ".values.yaml")] = p
	}
	return out
}

func TestLintStrict(t *testing.T) {
	t.Parallel()
	files := valueFiles(t)
	files["defaults"] = ""
	for name, values := range files {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := []string{"lint", "--strict", "--namespace", "meridian-system", charts.Dir()}
			if values != "" {
				args = append(args, "--values", values)
			}
			if out, err := charts.Run(t, args...); err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// helm template of each case matches its golden file, and what it renders
// keeps to least privilege and the restricted Pod Security profile.
func TestTemplateGolden(t *testing.T) {
	t.Parallel()
	for name, values := range valueFiles(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, err := charts.Run(t, "template", "meridian", charts.Dir(), "--namespace", "meridian-system", "--values", values)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			golden := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./charts -update writes it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("helm template with %s differs from %s; if the change is meant, rewrite it with go test ./charts -update and review the diff", values, golden)
			}
			checkObjects(t, out)
		})
	}
}

// checkObjects asserts that no RBAC rule grants "*" and that every pod
// runs under the restricted Pod Security profile.
func checkObjects(t *testing.T, manifest []byte) {
	t.Helper()
	decode := scheme.Codecs.UniversalDeserializer().Decode
	pods := 0
	for doc := range strings.SplitSeq(string(manifest), "\n---\n") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
			continue
		}
		obj, gvk, err := decode([]byte(doc), nil, nil)
		if runtime.IsNotRegisteredError(err) {
			continue // ServiceMonitor, PodMonitor: not in client-go's scheme
		}
		if err != nil {
			t.Fatalf("decoding %s: %v", doc, err)
		}
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			checkRules(t, gvk.Kind+" "+o.Name, o.Rules)
		case *rbacv1.Role:
			checkRules(t, gvk.Kind+" "+o.Name, o.Rules)
		case *appsv1.Deployment:
			checkPod(t, o.Name, &o.Spec.Template.Spec)
			pods++
		case *appsv1.StatefulSet:
			checkPod(t, o.Name, &o.Spec.Template.Spec)
			pods++
		}
	}
	if pods == 0 {
		t.Error("no workload rendered")
	}
}

func checkRules(t *testing.T, what string, rules []rbacv1.PolicyRule) {
	t.Helper()
	if len(rules) == 0 {
		t.Errorf("%s has no rules", what)
	}
	for _, r := range rules {
		for _, s := range append(append(append([]string{}, r.Verbs...), r.Resources...), r.APIGroups...) {
			if strings.Contains(s, "*") {
				t.Errorf("%s grants %q: %+v", what, s, r)
			}
		}
	}
}

func checkPod(t *testing.T, name string, p *corev1.PodSpec) {
	t.Helper()
	sc := p.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and seccomp RuntimeDefault", name, sc)
	}
	if p.HostNetwork || p.HostPID || p.HostIPC {
		t.Errorf("%s: uses the host's namespaces", name)
	}
	for _, c := range p.Containers {
		s := c.SecurityContext
		if s == nil || s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation || s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem ||
			s.Capabilities == nil || len(s.Capabilities.Drop) != 1 || s.Capabilities.Drop[0] != "ALL" || len(s.Capabilities.Add) != 0 {
			t.Errorf("%s/%s: securityContext %+v, want no privilege escalation, a read-only root and every capability dropped", name, c.Name, s)
		}
		if c.ReadinessProbe == nil || c.Resources.Requests == nil {
			t.Errorf("%s/%s: want a readiness probe and resource requests", name, c.Name)
		}
	}
}

// Invalid values are refused before anything is rendered, and the error
// names the field.
func TestInvalidValuesNameTheField(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		set  []string
		want string
	}{
		{"unknown mode", []string{"agent.membership.mode=pul"}, "/agent/membership/mode"},
		{"misspelt key", []string{"agent.clustername=eu-west-1"}, "clustername"},
		{"agent without region", []string{"agent.enabled=true", "agent.clusterName=eu-west-1"}, "/agent/region"},
		{"two hubs without leader election", []string{"hub.leaderElection=false"}, "/hub/leaderElection"},
		{"balancer without site", []string{"glb.enabled=true", "glb.zone=infer.example.com"}, "/glb/site"},
		{"gossip peer without port", []string{"gossip.join={eu-west.example.com}"}, "/gossip/join/0"},
		{"privileged DNS port", []string{"glb.dns.containerPort=53"}, "/glb/dns/containerPort"},
		{"flag without dashes", []string{"hub.extraArgs={verbose}"}, "/hub/extraArgs/0"},
		{"relative model source", []string{"hub.allowedModelSources={models}"}, "/hub/allowedModelSources/0"},
		{"model source climbing out", []string{"hub.allowedModelSources={/srv/models/../../etc}"}, "/hub/allowedModelSources/0"},
		{"key set over plain HTTP", []string{"glb.auth.jwksURL=http://idp.example.com/jwks.json"}, "/glb/auth/jwksURL"},
		{"door key with a slash", []string{"glb.auth.apiKeys=../keys"}, "/glb/auth/apiKeys"},
		{"proxy not a network", []string{"glb.trustedProxies={proxy.example.com}"}, "/glb/trustedProxies/0"},
		{"negative proxy hops", []string{"glb.trustedProxyHops=-1"}, "/glb/trustedProxyHops"},
		{"IPv4 prefix past 32", []string{"glb.dns.rrl.ipv4Prefix=33"}, "/glb/dns/rrl/ipv4Prefix"},
		{"window without a unit", []string{"glb.dns.rrl.window=15"}, "/glb/dns/rrl/window"},
		{"zero rate", []string{"glb.dns.rrl.responsesPerSecond=0"}, "/glb/dns/rrl/responsesPerSecond"},
		{"ECS resolver not a network", []string{"glb.dns.ecsTrustedResolvers={resolver.example.com}"}, "/glb/dns/ecsTrustedResolvers/0"},
		{"DNSSEC key named as BIND does", []string{"glb.dns.dnssec.keys={Kinfer.example.com.+013+12345}"}, "/glb/dns/dnssec/keys/0"},
		{"TLS Secret not a name", []string{"glb.tls.secretName=Front_TLS"}, "/glb/tls/secretName"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"template", "meridian", charts.Dir()}
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			out, err := charts.Run(t, args...)
			if err == nil {
				t.Fatalf("helm template --set %v succeeded, want a schema error", c.set)
			}
			if !strings.Contains(string(out), "values don't meet the specifications of the schema") || !strings.Contains(string(out), c.want) {
				t.Errorf("helm template --set %v:\n%s\nwant a schema error naming %s", c.set, out, c.want)
			}
		})
	}
}

// The chart's CRDs are crds/manifests, copied by make generate.
func TestCRDsAreTheGeneratedOnes(t *testing.T) {
	t.Parallel()
	want, err := filepath.Glob(filepath.Join("..", "crds", "manifests", "*.yaml"))
	if err != nil || len(want) == 0 {
		t.Fatalf("crds/manifests: %v", err)
	}
	got, _ := filepath.Glob(filepath.Join(charts.Dir(), "crds", "*.yaml"))
	if len(got) != len(want) {
		t.Fatalf("chart has %d CRDs, crds/manifests %d: run make generate", len(got), len(want))
	}
	for _, w := range want {
		a, _ := os.ReadFile(w)
		b, err := os.ReadFile(filepath.Join(charts.Dir(), "crds", filepath.Base(w)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from the chart's copy (%v): run make generate", w, err)
		}
	}
}

// The chart's hub-access ClusterRole on a push member grants what
// `meridian member add --member-kubeconfig` grants: all the hub does there.
func TestHubAccessIsThePushRole(t *testing.T) {
	t.Parallel()
	out, err := charts.Run(t, "template", "meridian", charts.Dir(), "--namespace", "meridian-system",
		"--show-only", "templates/agent.yaml", "--values", filepath.Join("testdata", "agent-push.values.yaml"))
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	var got []rbacv1.PolicyRule
	for doc := range strings.SplitSeq(string(out), "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if r, ok := obj.(*rbacv1.ClusterRole); err == nil && ok && r.Name == "meridian-hub-access" {
			got = r.Rules
		}
	}
	if want := membership.PushRules(); !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("ClusterRole meridian-hub-access rules\n%+v\nwant membership.PushRules()\n%+v", got, want)
	}
}

// The dashboards and rules another generator writes into files/ become a
// ConfigMap per dashboard and a PrometheusRule when turned on; the chart
// renders without them too.
func TestDashboardsAndRules(t *testing.T) {
	t.Parallel()
	dashboards, _ := filepath.Glob(filepath.Join(charts.Dir(), "files", "dashboards", "*.json"))
	_, rulesErr := os.Stat(filepath.Join(charts.Dir(), "files", "prometheus", "rules.yaml"))
	set := []string{"--set", "monitoring.dashboards.enabled=true", "--set", "monitoring.prometheusRule.enabled=true"}
	if out, err := charts.Run(t, append([]string{"lint", "--strict", charts.Dir()}, set...)...); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	out, err := charts.Run(t, append([]string{"template", "meridian", charts.Dir()}, set...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), `grafana_dashboard: "1"`); got != len(dashboards) {
		t.Errorf("%d dashboard ConfigMaps, want one per files/dashboards/*.json (%d)", got, len(dashboards))
	}
	if got, want := strings.Contains(string(out), "kind: PrometheusRule"), rulesErr == nil; got != want {
		t.Errorf("PrometheusRule rendered: %v, want %v (files/prometheus/rules.yaml there: %v)", got, want, want)
	}
}

// A pull member's agent keeps its Secrets in meridian-system: a release
// elsewhere is refused, saying where to install it.
func TestPullMemberOutsideMeridianSystem(t *testing.T) {
	t.Parallel()
	out, err := charts.Run(t, "template", "meridian", charts.Dir(), "--namespace", "meridian",
		"--values", filepath.Join("testdata", "agent-pull.values.yaml"))
	if err == nil || !strings.Contains(string(out), "install the release into namespace meridian-system") {
		t.Errorf("helm template of a pull member in namespace meridian: %v\n%s\nwant an error naming meridian-system", err, out)
	}
}

// Gossip off loopback is encrypted: join without a keyring Secret is
// refused, saying how to make one, unless insecure says plaintext.
func TestGossipNeedsAKeyring(t *testing.T) {
	t.Parallel()
	base := []string{"template", "meridian", charts.Dir(), "--namespace", "meridian-system",
		"--values", filepath.Join("testdata", "agent-push.values.yaml"), "--set", "gossip.join={eu-west.example.com:7946}"}
	out, err := charts.Run(t, base...)
	if err == nil || !strings.Contains(string(out), "gossip.join needs gossip.keyringSecret") {
		t.Errorf("helm template with gossip.join and no keyring: %v\n%s\nwant an error naming gossip.keyringSecret", err, out)
	}
	for _, c := range []struct{ set, want string }{
		{"gossip.keyringSecret=meridian-gossip", "--gossip-keyring=/etc/meridian/gossip/keyring"},
		{"gossip.insecure=true", "--gossip-insecure"},
	} {
		out, err := charts.Run(t, append(base, "--set", c.set)...)
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("helm template --set %s: %v, want %s in:\n%s", c.set, err, c.want, out)
		}
	}
}
