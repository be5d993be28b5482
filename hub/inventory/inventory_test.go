package inventory_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	cpv1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"meridian.dev/meridian/hub/inventory"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/scheme"
)

func init() { ctrl.SetLogger(logr.Discard()) }

const (
	ns      = inventory.DefaultNamespace
	ocm     = "open-cluster-management"
	timeout = 20 * time.Second
)

// installProfileCRD installs the ClusterProfile CRD that the pinned
// sigs.k8s.io/cluster-inventory-api module ships.
func installProfileCRD(t *testing.T, cp *controlplane.ControlPlane) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/cluster-inventory-api").Output()
	if err != nil {
		t.Fatalf("finding the sigs.k8s.io/cluster-inventory-api module (go list -m): %v", err)
	}
	crd := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "bases", "multicluster.x-k8s.io_clusterprofiles.yaml")
	if _, err := envtest.InstallCRDs(cp.Config, envtest.CRDInstallOptions{Paths: []string{crd}, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("installing %s: %v", crd, err)
	}
}

// start starts a control plane with the ClusterProfile CRD and namespace
// ns; before runs there before the manager starts.
func start(t *testing.T, opts inventory.Options, before func(client.Client)) *controlplane.ControlPlane {
	t.Helper()
	cp := controlplane.ForTest(t, controlplane.Options{})
	installProfileCRD(t, cp)
	if err := cp.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(cp.Client)
	}
	mgr := newManager(t, cp)
	if err := inventory.Setup(context.Background(), mgr, opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return cp
}

func newManager(t *testing.T, cp *controlplane.ControlPlane) manager.Manager {
	t.Helper()
	mgr, err := ctrl.NewManager(cp.Config, manager.Options{
		Scheme:                 scheme.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}

// foreign is a ClusterProfile of Open Cluster Management.
func foreign(name string, healthy metav1.ConditionStatus, props ...string) *cpv1.ClusterProfile {
	p := &cpv1.ClusterProfile{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{cpv1.LabelClusterManagerKey: ocm, "tier": "gpu"}},
		Spec:       cpv1.ClusterProfileSpec{DisplayName: name, ClusterManager: cpv1.ClusterManager{Name: ocm}},
	}
	if healthy != "" {
		p.Status.Conditions = []metav1.Condition{{Type: cpv1.ClusterConditionControlPlaneHealthy, Status: healthy,
			Reason: "ManagedClusterAvailable", Message: "cluster is available", LastTransitionTime: metav1.Now()}}
	}
	for i := 0; i+1 < len(props); i += 2 {
		p.Status.Properties = append(p.Status.Properties, cpv1.Property{Name: props[i], Value: props[i+1], LastObservedTime: metav1.Now()})
	}
	return p
}

// createProfile creates p with its status, as a cluster manager does.
func createProfile(t *testing.T, c client.Client, p *cpv1.ClusterProfile) {
	t.Helper()
	status := p.Status
	if err := c.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	p.Status = status
	if err := c.Status().Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// warning is the note of the Warning event with reason on profile name,
// "" when there is none.
func warning(t *testing.T, c client.Client, name, reason string) string {
	t.Helper()
	var list eventsv1.EventList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Regarding.Kind == "ClusterProfile" && e.Reason == reason && e.Type == corev1.EventTypeWarning {
			return e.Note
		}
	}
	return ""
}

func TestSetupSaysWhatIsMissing(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx := context.Background()
	if err := inventory.Setup(ctx, newManager(t, cp), inventory.Options{}); err != nil {
		t.Fatalf("with nothing asked, Setup must do nothing: %v", err)
	}
	err := inventory.Setup(ctx, newManager(t, cp), inventory.Options{Export: true})
	if err == nil || !strings.Contains(err.Error(), "no ClusterProfile CRD") || !strings.Contains(err.Error(), "multicluster.x-k8s.io_clusterprofiles.yaml") {
		t.Fatalf("without the CRD: %v, want an error naming the CRD to install", err)
	}
	installProfileCRD(t, cp)
	err = inventory.Setup(ctx, newManager(t, cp), inventory.Options{Import: true, Namespace: "fleet"})
	if err == nil || !strings.Contains(err.Error(), "kubectl create namespace fleet") {
		t.Fatalf("without the namespace: %v, want an error saying to create it", err)
	}
}
