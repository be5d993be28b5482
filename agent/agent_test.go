package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/gossip"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/modelsource"
	"meridian.dev/meridian/internal/netfault"
	"meridian.dev/meridian/internal/testbin"
)

var meridian string // the real binary, run as replicas

func TestMain(m *testing.M) { testbin.Main(m, &meridian) }

// startAgent runs an agent with the process runtime against cp until the
// test ends; it returns the address of the agent's gateway.
func startAgent(t *testing.T, cp *controlplane.ControlPlane, reg *prometheus.Registry) string {
	t.Helper()
	return startAgentWith(t, cp, reg, nil)
}

// startAgentWith is startAgent with its options changed by edit first.
func startAgentWith(t *testing.T, cp *controlplane.ControlPlane, reg *prometheus.Registry, edit func(*Options)) string {
	t.Helper()
	gatewayPort := freeTCPAndUDPPort(t)
	models, lib := testbin.Models(t), testbin.ORTLibrary(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts := Options{
		ClusterName: "test",
		Identity:    v1.ClusterIdentity{Region: "eu-west", Zone: "eu-west-1a", Endpoint: "http://127.0.0.1:9000"},
		Process: ProcessOptions{Binary: meridian, ModelRepository: models, ServeArgs: []string{"--ort-lib", lib, "--cache-size", "0"},
			GatewayPort: gatewayPort, Capacity: v1.Capacity{CPU: resource.MustParse("8"), Memory: resource.MustParse("16Gi")}},
		SyncPeriod: 250 * time.Millisecond, MetricsWindow: time.Second, ReportPeriod: 500 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: reg,
	}
	if edit != nil {
		edit(&opts)
	}
	go func() { done <- Run(ctx, cp.Config, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return fmt.Sprintf("127.0.0.1:%d", gatewayPort)
}

func TestModelDeploymentServesScalesAndReports(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	reg := prometheus.NewRegistry()
	gateway := startAgent(t, cp, reg)
	ctx := context.Background()
	c := cp.Client

	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec: v1.ModelDeploymentSpec{
			Model:     v1.ModelSource{Name: "sentiment"},
			Resources: v1.Resources{CPU: resource.MustParse("500m"), Memory: resource.MustParse("256Mi")},
			Autoscaling: v1.Autoscaling{
				MinReplicas: ptr.To[int32](1), MaxReplicas: 3,
				Targets: v1.MetricTargets{RequestsPerSecond: ptr.To(resource.MustParse("20"))},
				Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
					ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](2)},
				},
			},
		},
	}
	if err := c.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(md)
	get := func() *v1.ModelDeployment {
		got := &v1.ModelDeployment{}
		if err := c.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	testbin.Eventually(t, "a ready replica and an endpoint", 60*time.Second, func() bool {
		s := get().Status
		return s.ReadyReplicas == 1 && s.Endpoint != "" && meta.IsStatusConditionTrue(s.Conditions, "Ready")
	})
	endpoint := get().Status.Endpoint
	ask := func() error {
		resp, err := http.Post(endpoint+"/analyze", "application/json", strings.NewReader(`{"text":"I love this, it is amazing"}`))
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), "POSITIVE") {
			return fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		return nil
	}
	if err := ask(); err != nil {
		t.Fatalf("the model's endpoint: %v", err)
	}
	checkGateway(t, gateway)

	// Load well above 20 requests/s per replica: the agent scales up.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				_ = ask()
			}
		}()
	}
	testbin.Eventually(t, "a scale-up under load", 60*time.Second, func() bool {
		s := get().Status
		return s.DesiredReplicas >= 2 && s.RequestsPerSecond.AsApproximateFloat64() > 20
	})
	testbin.Eventually(t, "the ClusterReport to show the load", 30*time.Second, func() bool {
		rep := &v1.ClusterReport{}
		if err := c.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, rep); err != nil {
			return false
		}
		return len(rep.Status.Models) == 1 && rep.Status.Models[0].RequestsPerSecond.AsApproximateFloat64() > 0 &&
			rep.Status.Models[0].DesiredReplicas >= 2 && rep.Spec.Region == "eu-west" && rep.Status.Heartbeat != nil &&
			rep.Status.Capacity.FreeCPU.Cmp(resource.MustParse("8")) < 0
	})
	close(stop)
	wg.Wait()

	// Idle: after the 2s scale-down window it returns to one replica.
	testbin.Eventually(t, "a scale-down when idle", 60*time.Second, func() bool {
		s := get().Status
		return s.DesiredReplicas == 1 && s.Replicas == 1
	})
	if n := testbin.Metric(t, reg, "meridian_agent_scale_decisions_total", nil); n < 2 {
		t.Errorf("scale decisions counted: %v, want at least an up and a down", n)
	}
	testbin.Eventually(t, "scaling Events on the ModelDeployment", 30*time.Second, func() bool {
		var list eventsv1.EventList
		if err := c.List(ctx, &list, client.InNamespace("default")); err != nil {
			return false
		}
		up, down := false, false
		for _, e := range list.Items {
			up = up || (e.Regarding.Name == "sentiment" && e.Reason == "ScaledUp")
			down = down || (e.Regarding.Name == "sentiment" && e.Reason == "ScaledDown")
		}
		return up && down
	})

	// Deleting the ModelDeployment stops its replicas and its endpoint.
	if err := c.Delete(ctx, md); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the endpoint to go away", 60*time.Second, func() bool { return ask() != nil })
}

func TestAgentKeepsServingWithoutItsAPIServerAndCatchesUp(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx := context.Background()
	apiserver, err := url.Parse(cp.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	p, err := netfault.NewProxy(apiserver.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Cut)
	proxied := rest.CopyConfig(cp.Config)
	proxied.Host = "https://" + p.Addr()
	startAgent(t, &controlplane.ControlPlane{Config: proxied}, prometheus.NewRegistry())

	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec:       v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "sentiment"}},
	}
	if err := cp.Client.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	get := func() *v1.ModelDeployment {
		got := &v1.ModelDeployment{}
		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(md), got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	testbin.Eventually(t, "a ready replica", 60*time.Second, func() bool { return get().Status.ReadyReplicas == 1 })
	endpoint := get().Status.Endpoint

	p.Cut()
	cutAt := time.Now()
	// The data plane never waits for the control plane: the model answers.
	for range 20 {
		resp, err := http.Post(endpoint+"/analyze", "application/json", strings.NewReader(`{"text":"good"}`))
		if err != nil {
			t.Fatalf("model unreachable while the API server is: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("model answered %d while the API server is unreachable", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Meanwhile the hub asks for two replicas.
	// The agent writes status meanwhile: retry on a conflict.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		changed := get()
		changed.Spec.Autoscaling.MinReplicas = ptr.To[int32](2)
		return cp.Client.Update(ctx, changed)
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := p.Heal(); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the agent to catch up: 2 ready replicas", 90*time.Second, func() bool {
		s := get().Status
		return s.DesiredReplicas == 2 && s.ReadyReplicas == 2
	})
	testbin.Eventually(t, "a fresh ClusterReport heartbeat", 60*time.Second, func() bool {
		rep := &v1.ClusterReport{}
		return cp.Client.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, rep) == nil &&
			rep.Status.Heartbeat != nil && rep.Status.Heartbeat.After(cutAt)
	})
}

func TestBrokenModelSetsDegradedWithTheReason(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx := context.Background()
	repo := t.TempDir()
	startAgentWith(t, cp, prometheus.NewRegistry(), func(o *Options) {
		o.Process.AllowedModelSources = modelsource.AllowList{repo}
	})
	if err := os.MkdirAll(filepath.Join(repo, "broken", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "broken", "1", "model.onnx"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "broken", Namespace: "default"},
		Spec:       v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "broken", Repository: repo}},
	}
	if err := cp.Client.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "a Degraded condition naming the load error", 60*time.Second, func() bool {
		got := &v1.ModelDeployment{}
		if cp.Client.Get(ctx, client.ObjectKeyFromObject(md), got) != nil {
			return false
		}
		c := meta.FindStatusCondition(got.Status.Conditions, "Degraded")
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == "ReplicaFailing" &&
			strings.Contains(c.Message, "model broken version 1") &&
			meta.IsStatusConditionFalse(got.Status.Conditions, "Ready")
	})
}

// A ModelDeployment whose repository lies outside --allowed-model-sources
// runs nothing, and its conditions say why: the agent does not load any
// path it is handed.
func TestModelSourceOutsideTheAllowListIsRefused(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	startAgentWith(t, cp, reg, func(o *Options) {
		o.Process.AllowedModelSources = modelsource.AllowList{"/srv/models"}
	})
	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "default"},
		Spec:       v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "sentiment", Repository: testbin.Models(t)}},
	}
	if err := cp.Client.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "Ready False, ModelSourceNotAllowed", 30*time.Second, func() bool {
		got := &v1.ModelDeployment{}
		if cp.Client.Get(ctx, client.ObjectKeyFromObject(md), got) != nil {
			return false
		}
		c := meta.FindStatusCondition(got.Status.Conditions, string(v1.ConditionReady))
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == string(v1.ReasonModelSourceNotAllowed)
	})
	if got, _ := testbin.MetricIfAny(t, reg, "meridian_agent_replicas", map[string]string{"namespace": "default", "name": "elsewhere", "state": "desired"}); got != 0 {
		t.Errorf("replicas of a refused model: %v, want 0", got)
	}
}

func TestAgentGossipsItsModels(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	port := freeTCPAndUDPPort(t)
	models, lib := testbin.Models(t), testbin.ORTLibrary(t)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cp.Config, Options{
			ClusterName: "eu-west-1", Identity: v1.ClusterIdentity{Region: "eu-west", Endpoint: "http://127.0.0.1:9000"},
			Process:    ProcessOptions{Binary: meridian, ModelRepository: models, ServeArgs: []string{"--ort-lib", lib}},
			SyncPeriod: 250 * time.Millisecond,
			Gossip:     &gossip.Config{BindAddr: "127.0.0.1", BindPort: port, Timing: gossip.Local()},
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(),
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec:       v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "sentiment"}},
	}
	if err := cp.Client.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	// A balancer-like observer joins the pool and learns the cluster's
	// region, endpoint and model health from gossip alone.
	var observer *gossip.Node
	testbin.Eventually(t, "the observer to join the agent", 30*time.Second, func() bool {
		n, err := gossip.Start(ctx, gossip.Config{NodeName: "observer", BindAddr: "127.0.0.1", Timing: gossip.Local(),
			Join: []string{fmt.Sprintf("127.0.0.1:%d", port)}})
		if err != nil {
			return false
		}
		observer = n
		return true
	})
	t.Cleanup(func() { _ = observer.Shutdown() })
	testbin.Eventually(t, "the agent's model digest in gossip", 60*time.Second, func() bool {
		p, ok := observer.Peer("eu-west-1")
		if !ok || p.State.Region != "eu-west" || p.State.Endpoint != "http://127.0.0.1:9000" {
			return false
		}
		for _, m := range p.State.Models {
			if m.Name == "sentiment" && m.ReadyReplicas == 1 && m.Healthy {
				return true
			}
		}
		return false
	})
}

// freeTCPAndUDPPort finds a loopback port free for both TCP and UDP, as
// memberlist binds both.
func freeTCPAndUDPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		tcp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := tcp.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = tcp.Close()
		if err == nil {
			_ = udp.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// checkGateway asks the site's gateway for sentiment the two ways a client
// names it — by the Host of its DNS name, and by path — and for a model
// the site does not serve.
func checkGateway(t *testing.T, gateway string) {
	t.Helper()
	do := func(host, path, body string) (int, string) {
		method := http.MethodPost
		if body == "" {
			method = http.MethodGet
		}
		req, err := http.NewRequest(method, "http://"+gateway+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("gateway %s%s: %v", host, path, err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("sentiment.infer.example.com:8000", "/analyze", `{"text":"I love this, it is amazing"}`); code != 200 || !strings.Contains(body, "POSITIVE") {
		t.Errorf("gateway by Host: %d %s", code, body)
	}
	if code, body := do(gateway, "/v2/models/sentiment", ""); code != 200 || !strings.Contains(body, `"name":"sentiment"`) {
		t.Errorf("gateway by path: %d %s", code, body)
	}
	if code, body := do("textdir.infer.example.com", "/v2/models/textdir", ""); code != 404 || !strings.Contains(body, "models served here: sentiment") {
		t.Errorf("gateway for a model not served here: %d %s, want 404 naming sentiment", code, body)
	}
}
