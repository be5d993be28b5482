package glb

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/scheme"
	"meridian.dev/meridian/internal/testbin"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// The balancer reads the hub, keeps serving what it last read when the hub
// is gone, and after a restart without the hub starts from the disk copy.
func TestSourceKeepsLastKnownGoodThroughHubLossAndRestart(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx := context.Background()
	c := cp.Client
	ge := &v1.GlobalEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec:       v1.GlobalEndpointSpec{Hostname: "sentiment.infer.example.com", Model: "sentiment"},
	}
	cl := &v1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "eu-west"},
		Spec: v1.ClusterSpec{ClusterIdentity: v1.ClusterIdentity{Region: "eu-west",
			Location: &v1.GeoLocation{Latitude: "53.35", Longitude: "-6.26"}}},
	}
	for _, o := range []client.Object{ge, cl} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cl.Status = v1.ClusterStatus{Health: v1.HealthReady,
		Capacity: v1.Capacity{CPU: resource.MustParse("4"), FreeCPU: resource.MustParse("1")},
		Models:   []v1.ModelLoad{{Namespace: "default", Name: "sentiment", Model: "sentiment", Endpoint: "http://127.0.1.2:8000", ReadyReplicas: 2}}}
	if err := c.Status().Update(ctx, cl); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "glb", "snapshot.json")
	src := NewSource(c, path, 100*time.Millisecond, quiet())
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(runCtx) }()
	testbin.Eventually(t, "a snapshot from the hub", 30*time.Second, func() bool { return src.Current() != nil })
	snap := src.Current()
	if len(snap.Endpoints) != 1 || snap.Endpoints[0].Hostname != "sentiment.infer.example.com" || snap.Endpoints[0].TTL != 30 ||
		snap.Endpoints[0].HealthPath != "/v2/health/ready" || snap.Endpoints[0].Steering != v1.SteerGeo {
		t.Fatalf("endpoints: %+v", snap.Endpoints)
	}
	got := snap.Clusters[0]
	if got.Name != "eu-west" || !got.HasLocation || got.Lat != 53.35 || got.Headroom != 0.25 ||
		got.Models["sentiment"].Endpoint != "http://127.0.1.2:8000" || got.Models["sentiment"].Ready != 2 {
		t.Fatalf("cluster: %+v", got)
	}
	// The snapshot is served first and written to disk just after.
	testbin.Eventually(t, "the last-known-good file", 30*time.Second, func() bool { _, err := os.Stat(path); return err == nil })

	// The hub goes away: the source keeps its snapshot.
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if s := src.Current(); s == nil || len(s.Clusters) != 1 {
		t.Fatalf("lost the config when the hub went away: %+v", s)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lastGood := src.Current() // what the file holds: the last read before the hub went away

	// A restarted balancer with no hub starts from the disk copy.
	dead, err := client.New(&rest.Config{Host: "https://127.0.0.1:1", Timeout: 200 * time.Millisecond}, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	again := NewSource(dead, path, 100*time.Millisecond, quiet())
	runCtx, stop = context.WithCancel(ctx)
	defer stop()
	go func() { _ = again.Run(runCtx) }()
	testbin.Eventually(t, "the disk copy", 30*time.Second, func() bool { return again.Current() != nil })
	if s := again.Current(); len(s.Endpoints) != 1 || s.Clusters[0].Models["sentiment"].Ready != 2 || !s.Taken.Equal(lastGood.Taken) {
		t.Fatalf("restored %+v, want what was saved", s)
	}
}

func TestLoadRejectsACorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil {
		t.Fatal("a corrupt file loaded")
	}
}

// A cluster's model is cold when none of its deployments has a ready
// replica and one is scaled to zero; a ready replica anywhere makes it warm.
func TestModelTargetsMarksAModelScaledToZeroCold(t *testing.T) {
	got := modelTargets([]v1.ModelLoad{
		{Namespace: "a", Name: "warm", Model: "warm", Endpoint: "http://10.0.0.1", ReadyReplicas: 2},
		{Namespace: "a", Name: "zero", Model: "zero", Endpoint: "http://10.0.0.2", ScaledToZero: true},
		{Namespace: "a", Name: "mixed-zero", Model: "mixed", Endpoint: "http://10.0.0.3", ScaledToZero: true},
		{Namespace: "b", Name: "mixed-ready", Model: "mixed", Endpoint: "http://10.0.0.4", ReadyReplicas: 1},
		{Namespace: "a", Name: "lost", Model: "lost", Endpoint: "http://10.0.0.5", DesiredReplicas: 1},
	})
	for model, want := range map[string]ModelTarget{
		"warm":  {Endpoint: "http://10.0.0.1", Ready: 2},
		"zero":  {Endpoint: "http://10.0.0.2", Cold: true},
		"mixed": {Endpoint: "http://10.0.0.3", Ready: 1},
		"lost":  {Endpoint: "http://10.0.0.5"},
	} {
		if g := got[model]; g.Endpoint != want.Endpoint || g.Ready != want.Ready || g.Cold != want.Cold {
			t.Errorf("%s: %+v, want %+v", model, g, want)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d models, want 4: %+v", len(got), got)
	}
}
