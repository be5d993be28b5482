package kube

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/activator"
	"meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
)

// Zero on a real API server (no nodes, so no replica ever runs): an idle
// model with minReplicas 0 goes to 0 replicas with the activator published
// first; a request to the activator asks for 1 replica at once; the
// activator's slice goes once the Service has a ready endpoint of its own;
// a model with minReplicas 1 is never touched.
func TestZeroScalesIdleModelsAndWakesThemOnARequest(t *testing.T) {
	t.Parallel()
	cp := controlplane.ForTest(t, controlplane.Options{})
	c := cp.Client
	ctx := context.Background()
	// The activator's default address: this host's, as the API server
	// refuses loopback endpoints.
	act, err := activator.New(activator.Options{HoldTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(act.Close)
	var busy atomic.Bool
	const window = 1500 * time.Millisecond
	opts := Options{Image: "meridian:test", IdleWindow: window}
	events := make(chan string, 10)
	z := NewZero(ZeroOptions{
		Client: c, Activator: act, Options: opts, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Activity: func(namespace, name string) (bool, bool) { return busy.Load(), true },
		Event:    func(_ client.ObjectKey, reason, _ string) { events <- reason },
	})

	md := createModelDeployment(t, c, &v1alpha1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "idle", Namespace: "default"},
		Spec: v1alpha1.ModelDeploymentSpec{
			Model:       v1alpha1.ModelSource{Name: "sentiment"},
			Autoscaling: v1alpha1.Autoscaling{MinReplicas: ptr.To[int32](0), MaxReplicas: 2},
		},
	})
	key := client.ObjectKeyFromObject(md)
	if _, err := Apply(ctx, c, md, opts); err != nil {
		t.Fatal(err)
	}
	dep := &appsv1.Deployment{}
	replicas := func() int32 {
		t.Helper()
		if err := c.Get(ctx, key, dep); err != nil {
			t.Fatal(err)
		}
		return ptr.Deref(dep.Spec.Replicas, -1)
	}
	if n := replicas(); n != 1 {
		t.Fatalf("a new model with minReplicas 0 starts with %d replicas, want 1 (it scales to zero once idle)", n)
	}
	// No controller runs here: say what the Deployment controller would.
	setReady := func(n int32) {
		t.Helper()
		if err := c.Get(ctx, key, dep); err != nil {
			t.Fatal(err)
		}
		dep.Status.Replicas, dep.Status.ReadyReplicas, dep.Status.AvailableReplicas = n, n, n
		if err := c.Status().Update(ctx, dep); err != nil {
			t.Fatal(err)
		}
	}
	// Starting (no ready replica yet): never idle.
	st, err := z.Sync(ctx, md)
	if err != nil || !st.Enabled || st.AtZero {
		t.Fatalf("first Sync: %+v %v", st, err)
	}
	time.Sleep(window + 200*time.Millisecond)
	if st, err = z.Sync(ctx, md); err != nil || st.AtZero || replicas() != 1 {
		t.Fatalf("a model still starting was scaled to zero: %+v %v", st, err)
	}
	setReady(1)
	sliceKey := client.ObjectKey{Namespace: "default", Name: ActivatorSliceName(md)}

	// Busy: never scaled down, however long.
	busy.Store(true)
	if st, err = z.Sync(ctx, md); err != nil || st.AtZero {
		t.Fatalf("busy: %+v %v", st, err)
	}
	time.Sleep(window + 200*time.Millisecond)
	if st, err = z.Sync(ctx, md); err != nil || st.AtZero || replicas() != 1 {
		t.Fatalf("a busy model was scaled to zero: %+v %v", st, err)
	}
	// The Service has no ready endpoint yet (no node here): the activator
	// answers for it meanwhile.
	if !st.ActivatorPublished {
		t.Errorf("a Service without ready endpoints does not reach the activator")
	}
	if st.IdleFor != 0 {
		t.Errorf("a busy model idle for %s", st.IdleFor)
	}

	// Idle for the window: replicas 0, the activator published.
	busy.Store(false)
	if st, _ = z.Sync(ctx, md); st.AtZero {
		t.Fatalf("scaled to zero as soon as it turned idle: %+v", st)
	}
	time.Sleep(window + 200*time.Millisecond)
	st, err = z.Sync(ctx, md)
	if err != nil || !st.AtZero || !st.ScaledToZero || replicas() != 0 {
		t.Fatalf("idle for the window: %+v %v, replicas %d; want scaled to zero", st, err, replicas())
	}
	setReady(0) // its pod gone
	if r := <-events; r != "ScaledToZero" {
		t.Errorf("event %s, want ScaledToZero", r)
	}
	es := &discoveryv1.EndpointSlice{}
	if err := c.Get(ctx, sliceKey, es); err != nil {
		t.Fatalf("no activator EndpointSlice at zero: %v", err)
	}
	if es.Labels[discoveryv1.LabelServiceName] != "idle" || es.Labels[discoveryv1.LabelManagedBy] != ManagedBy ||
		len(es.Endpoints) != 1 || es.Endpoints[0].Addresses[0] != act.Host().String() || len(es.Ports) != 1 ||
		ptr.Deref(es.Ports[0].Name, "") != PortName || ptr.Deref(es.Ports[0].Port, 0) != int32(st.Activator.Port()) ||
		!metav1.IsControlledBy(es, md) {
		t.Errorf("activator EndpointSlice %+v %+v %+v; want the Service's port %q at %s, owned by the ModelDeployment", es.Labels, es.Endpoints, es.Ports, PortName, st.Activator)
	}
	// Apply (the agent's next reconcile) leaves the count to Zero.
	if _, err := Apply(ctx, c, md, opts); err != nil || replicas() != 0 {
		t.Fatalf("Apply changed the replicas of a model at zero to %d (%v)", replicas(), err)
	}

	// A request wakes it: 1 replica asked for at once. No pod can run
	// here, so the request is answered 503 after the hold timeout.
	sent := time.Now()
	resp, err := http.Post("http://"+st.Activator.String()+"/analyze", "application/json", strings.NewReader(`{"text":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "none became ready within 2s") {
		t.Errorf("request with no replica able to start: %d %s", resp.StatusCode, body)
	}
	if took := time.Since(sent); took < 1900*time.Millisecond {
		t.Errorf("answered after %s, before the hold timeout", took)
	}
	if n := replicas(); n != 1 {
		t.Fatalf("a request at zero left the Deployment at %d replicas, want 1", n)
	}
	if r := <-events; r != "ScaledFromZero" {
		t.Errorf("event %s, want ScaledFromZero", r)
	}
	// Starting again (no ready replica): not sent back to zero, though the
	// request was held longer than the idle window.
	time.Sleep(window)
	if st, _ = z.Sync(ctx, md); st.AtZero || replicas() != 1 || !st.ActivatorPublished {
		t.Fatalf("after a wake-up: %+v replicas %d; want 1 replica starting and the activator still published (no ready endpoint)", st, replicas())
	}

	// The Service's own endpoint turns ready: the activator is withdrawn.
	own := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "idle-abcde", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: "idle", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.1.2.3"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(PortName), Port: ptr.To[int32](8000), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if err := c.Create(ctx, own); err != nil {
		t.Fatal(err)
	}
	if st, err = z.Sync(ctx, md); err != nil || st.ActivatorPublished {
		t.Fatalf("with a ready endpoint: %+v %v; want the activator withdrawn", st, err)
	}
	if err := c.Get(ctx, sliceKey, es); !apierrors.IsNotFound(err) {
		t.Errorf("the activator's EndpointSlice is still there with a ready replica (%v)", err)
	}

	// minReplicas raised to 1: no longer in scale to zero.
	actAddr := st.Activator
	md = getModelDeployment(t, c, "idle")
	md.Spec.Autoscaling.MinReplicas = ptr.To[int32](1)
	if err := c.Update(ctx, md); err != nil {
		t.Fatal(err)
	}
	if st, err = z.Sync(ctx, md); err != nil || st.Enabled || z.Tracks("default", "idle") {
		t.Fatalf("minReplicas 1: %+v %v; want scale to zero off", st, err)
	}
	if resp, err := http.Get("http://" + actAddr.String()); err == nil {
		_ = resp.Body.Close()
		t.Errorf("the activator still serves a model that no longer scales to zero")
	}
}
