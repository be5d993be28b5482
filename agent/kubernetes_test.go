package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/testbin"
)

const h100 = "NVIDIA-H100-80GB-HBM3"

// startKubernetesAgent runs an agent with the kubernetes runtime on cp
// until the test ends.
func startKubernetesAgent(t *testing.T, cp *controlplane.ControlPlane) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cp.Config, Options{
			ClusterName: "k8s", Identity: v1.ClusterIdentity{Region: "us-east"}, Runtime: v1.RuntimeKubernetes,
			SyncPeriod: 500 * time.Millisecond, ReportPeriod: 500 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(),
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
}

// The kubernetes runtime on a real control plane with the real
// controller-manager and scheduler and kwok nodes: one GPU node with one
// GPU, one CPU node. Two GPU replicas: one runs, one waits for a GPU, and
// both the ModelDeployment and the ClusterReport say so.
func TestKubernetesRuntimeReportsPendingGPUReplicas(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{
		ControllerManager: true, Scheduler: true,
		Nodes: []controlplane.Node{{Name: "gpu-a", GPUs: 1, GPUProduct: h100}, {Name: "cpu-a"}},
	})
	ctx := context.Background()
	startKubernetesAgent(t, cp)

	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "textdir", Namespace: "default"},
		Spec: v1.ModelDeploymentSpec{
			Model:       v1.ModelSource{Name: "textdir"},
			Resources:   v1.Resources{GPU: &v1.GPURequirement{Count: 1, Type: h100}},
			Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](2), MaxReplicas: 4},
		},
	}
	if err := cp.Client.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "one ready and one pending GPU replica in the status", 90*time.Second, func() bool {
		got := &v1.ModelDeployment{}
		if cp.Client.Get(ctx, client.ObjectKeyFromObject(md), got) != nil {
			return false
		}
		s := got.Status
		d := meta.FindStatusCondition(s.Conditions, "Degraded")
		return s.ReadyReplicas == 1 && s.Replicas == 2 && s.Endpoint == "http://textdir.default.svc:8000" &&
			meta.IsStatusConditionTrue(s.Conditions, "Ready") && d != nil && d.Reason == "ReplicasPending" &&
			strings.Contains(d.Message, "1 replica waits for a GPU node") && strings.Contains(d.Message, "none of the 1 GPU nodes")
	})
	dep := &appsv1.Deployment{}
	if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(md), dep); err != nil {
		t.Fatalf("the agent's Deployment: %v", err)
	}
	if len(dep.OwnerReferences) != 1 || dep.OwnerReferences[0].Name != "textdir" {
		t.Errorf("Deployment not owned by the ModelDeployment: %+v", dep.OwnerReferences)
	}
	testbin.Eventually(t, "the ClusterReport's GPU capacity", 60*time.Second, func() bool {
		rep := &v1.ClusterReport{}
		if cp.Client.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, rep) != nil {
			return false
		}
		for _, g := range rep.Status.Capacity.GPUs {
			if g.Type == h100 && g.Allocatable == 1 && g.Free == 0 && g.Pending == 1 {
				return len(rep.Status.Models) == 1 && rep.Status.Models[0].ReadyReplicas == 1
			}
		}
		return false
	})
}

// applyYAML creates the objects of YAML files (documents separated by
// "---") in namespace default, as `kubectl create -f` would.
func applyYAML(t *testing.T, c client.Client, files ...string) []client.Object {
	t.Helper()
	decode := serializer.NewCodecFactory(c.Scheme()).UniversalDeserializer()
	var objs []client.Object
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("kube", "testdata", "adopt", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			obj, _, err := decode.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			o := obj.(client.Object)
			if o.GetNamespace() == "" {
				o.SetNamespace("default")
			}
			if err := c.Create(context.Background(), o); err != nil {
				t.Fatalf("%s: creating %s %s: %v", f, o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

// The blog's own Deployment, Service and each of its three HPAs, adopted by
// a ModelDeployment on a real control plane (controller-manager with the
// HPA controller and garbage collector, scheduler, a kwok node): the agent
// labels them without touching the pod template, sets the HPA's range,
// reports status, explains the CPU/memory-utilization HPA that cannot work
// until the user adds requests, and leaves everything in place when the
// ModelDeployment goes. The blog's GPU Deployment waits for a GPU node,
// and says so.
func TestKubernetesRuntimeAdoptsUsersObjects(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{
		ControllerManager: true, Scheduler: true, Nodes: []controlplane.Node{{Name: "cpu-a"}},
	})
	c := cp.Client
	ctx := context.Background()
	startKubernetesAgent(t, cp)

	applyYAML(t, c, "deployment-service.yaml", "hpa-cpu-v1.yaml", "gpu-deployment.yaml")
	key := func(name string) client.ObjectKey { return client.ObjectKey{Namespace: "default", Name: name} }
	const depName, svcName, hpaName = "sentiment-inference-deployment", "sentiment-inference-service", "sentiment-inference-hpa"
	dep, svc, hpa := &appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}
	for name, obj := range map[string]client.Object{depName: dep, svcName: svc, hpaName: hpa} {
		if err := c.Get(ctx, key(name), obj); err != nil {
			t.Fatal(err)
		}
	}
	tplBefore := dep.Spec.Template.DeepCopy()
	getMD := func(name string) *v1.ModelDeployment {
		md := &v1.ModelDeployment{}
		if err := c.Get(ctx, key(name), md); err != nil {
			return &v1.ModelDeployment{}
		}
		return md
	}
	condition := func(name, typ string) metav1.Condition {
		if cd := meta.FindStatusCondition(getMD(name).Status.Conditions, typ); cd != nil {
			return *cd
		}
		return metav1.Condition{}
	}
	hasEvent := func(regarding, typ, reason string, contains ...string) bool {
		var list eventsv1.EventList
		if c.List(ctx, &list, client.InNamespace("default")) != nil {
			return false
		}
	next:
		for _, e := range list.Items {
			if e.Regarding.Name != regarding || e.Type != typ || e.Reason != reason {
				continue
			}
			for _, s := range contains {
				if !strings.Contains(e.Note, s) {
					continue next
				}
			}
			return true
		}
		return false
	}

	t.Run("without spec.adopt the name is refused, saying how to adopt", func(t *testing.T) {
		md := &v1.ModelDeployment{
			ObjectMeta: metav1.ObjectMeta{Name: depName, Namespace: "default"},
			Spec:       v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "sentiment"}, Runtime: v1.RuntimeKubernetes},
		}
		if err := c.Create(ctx, md); err != nil {
			t.Fatal(err)
		}
		testbin.Eventually(t, "Degraded NameTaken", 30*time.Second, func() bool {
			d := condition(depName, "Degraded")
			return d.Reason == "NameTaken" && strings.Contains(d.Message, "spec.adopt.deployment: "+depName)
		})
		t.Logf("refusal: %s", condition(depName, "Degraded").Message)
		if err := c.Delete(ctx, md); err != nil {
			t.Fatal(err)
		}
	})

	mdObjs := applyYAML(t, c, "modeldeployment.yaml")
	mdName := mdObjs[0].GetName()
	gpu := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "gpu", Namespace: "default"},
		Spec: v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "textdir"}, Runtime: v1.RuntimeKubernetes,
			Adopt: &v1.Adoption{Deployment: "gpu-inference-deployment"}},
	}
	if err := c.Create(ctx, gpu); err != nil {
		t.Fatal(err)
	}

	// adoptedHPA waits until status.adopted lists the HPA now named
	// hpaName (a replaced HPA has a new UID) and returns it.
	adoptedHPA := func() *autoscalingv2.HorizontalPodAutoscaler {
		t.Helper()
		h := &autoscalingv2.HorizontalPodAutoscaler{}
		testbin.Eventually(t, "status.adopted to list the current HPA", 30*time.Second, func() bool {
			if c.Get(ctx, key(hpaName), h) != nil {
				return false
			}
			for _, a := range getMD(mdName).Status.Adopted {
				if a.Kind == "HorizontalPodAutoscaler" && a.UID == h.UID {
					return true
				}
			}
			return false
		})
		return h
	}
	checkRange := func(t *testing.T) {
		t.Helper()
		h := &autoscalingv2.HorizontalPodAutoscaler{}
		testbin.Eventually(t, "the HPA's range to follow the ModelDeployment (2..5)", 30*time.Second, func() bool {
			return c.Get(ctx, key(hpaName), h) == nil && h.Spec.MinReplicas != nil && *h.Spec.MinReplicas == 2 && h.Spec.MaxReplicas == 5
		})
	}
	setRequests := func(t *testing.T, reqs corev1.ResourceList) {
		t.Helper()
		// The HPA controller and the agent write these objects too:
		// read, change and write again on a conflict.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d := &appsv1.Deployment{}
			if err := c.Get(ctx, key(depName), d); err != nil {
				return err
			}
			d.Spec.Template.Spec.Containers[0].Resources.Requests = reqs
			return c.Update(ctx, d)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	editHPA := func(t *testing.T, edit func(*autoscalingv2.HorizontalPodAutoscaler)) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			h := &autoscalingv2.HorizontalPodAutoscaler{}
			if err := c.Get(ctx, key(hpaName), h); err != nil {
				return err
			}
			edit(h)
			return c.Update(ctx, h)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	replaceHPA := func(t *testing.T, file string) {
		t.Helper()
		old := &autoscalingv2.HorizontalPodAutoscaler{}
		if err := c.Get(ctx, key(hpaName), old); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		testbin.Eventually(t, "the old HPA to go", 30*time.Second, func() bool {
			return apierrors.IsNotFound(c.Get(ctx, key(hpaName), &autoscalingv2.HorizontalPodAutoscaler{}))
		})
		applyYAML(t, c, file)
	}

	t.Run("adopted as they are", func(t *testing.T) {
		testbin.Eventually(t, "status.adopted, the endpoint and two ready replicas", 90*time.Second, func() bool {
			s := getMD(mdName).Status
			want := []v1.AdoptedObject{
				{Kind: "Deployment", APIVersion: "apps/v1", Name: depName, UID: dep.UID},
				{Kind: "Service", APIVersion: "v1", Name: svcName, UID: svc.UID},
				{Kind: "HorizontalPodAutoscaler", APIVersion: "autoscaling/v2", Name: hpaName, UID: hpa.UID},
			}
			return reflect.DeepEqual(s.Adopted, want) && s.Endpoint == "http://sentiment-inference-service.default.svc:80" &&
				s.ReadyReplicas == 2 && s.Replicas == 2 && meta.IsStatusConditionTrue(s.Conditions, "Ready")
		})
		testbin.Eventually(t, "the Adopted Event", 30*time.Second, func() bool {
			return hasEvent(mdName, corev1.EventTypeNormal, "Adopted", "Deployment "+depName, "Service "+svcName, "HorizontalPodAutoscaler "+hpaName)
		})
		checkRange(t)
		got := &appsv1.Deployment{}
		for name, obj := range map[string]client.Object{depName: got, svcName: &corev1.Service{}, hpaName: &autoscalingv2.HorizontalPodAutoscaler{}} {
			if err := c.Get(ctx, key(name), obj); err != nil {
				t.Fatal(err)
			}
			if l := obj.GetLabels(); l["meridian.dev/adopted-by"] != mdName || l["meridian.dev/model"] != "sentiment" {
				t.Errorf("%s labels %v, want meridian.dev/adopted-by=%s and meridian.dev/model=sentiment", name, l, mdName)
			}
			if refs := obj.GetOwnerReferences(); len(refs) != 0 {
				t.Errorf("%s has owner references %+v; adopted objects must stay the user's", name, refs)
			}
		}
		// (The generation moves: the HPA scaled the Deployment to 2.)
		if !reflect.DeepEqual(&got.Spec.Template, tplBefore) {
			t.Errorf("the pod template changed:\n got %+v\nwant %+v", got.Spec.Template, *tplBefore)
		}
		ctr := got.Spec.Template.Spec.Containers[0]
		if ctr.Image != "meridian:dev" || ctr.Command != nil || ctr.Args != nil || len(ctr.Ports) != 1 || ctr.Ports[0].ContainerPort != 8000 || ctr.ReadinessProbe != nil {
			t.Errorf("the user's container was rewritten: %+v", ctr)
		}
	})

	t.Run("HPA (a): CPU utilization without a CPU request", func(t *testing.T) {
		testbin.Eventually(t, "AdoptionHealthy=False MissingResourceRequests", 30*time.Second, func() bool {
			cd := condition(mdName, "AdoptionHealthy")
			return cd.Status == metav1.ConditionFalse && cd.Reason == "MissingResourceRequests" &&
				strings.Contains(cd.Message, `container "sentiment-inference" has no CPU request`) &&
				strings.Contains(cd.Message, "<unknown>") && strings.Contains(cd.Message, "resources.requests.cpu") &&
				!strings.Contains(cd.Message, "memory")
		})
		t.Logf("diagnosis: %s", condition(mdName, "AdoptionHealthy").Message)
		testbin.Eventually(t, "the Warning Event", 30*time.Second, func() bool {
			return hasEvent(mdName, corev1.EventTypeWarning, "MissingResourceRequests", "resources.requests.cpu", hpaName)
		})
		setRequests(t, corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")})
		testbin.Eventually(t, "AdoptionHealthy=True once the CPU request is there", 30*time.Second, func() bool {
			cd := condition(mdName, "AdoptionHealthy")
			return cd.Status == metav1.ConditionTrue && cd.Reason == "AsExpected"
		})
	})

	t.Run("HPA (b): CPU and memory utilization without requests", func(t *testing.T) {
		setRequests(t, nil)
		replaceHPA(t, "hpa-cpu-memory-v2.yaml")
		adoptedHPA()
		checkRange(t) // the new HPA said 1..10
		testbin.Eventually(t, "AdoptionHealthy=False for CPU and memory", 30*time.Second, func() bool {
			cd := condition(mdName, "AdoptionHealthy")
			return cd.Status == metav1.ConditionFalse && cd.Reason == "MissingResourceRequests" &&
				strings.Contains(cd.Message, "resources.requests.cpu") && strings.Contains(cd.Message, "resources.requests.memory")
		})
		// events.k8s.io folds Events of the same reason and object into one
		// series whose note stays the first one (the CPU problem of HPA (a)),
		// so the memory problem is told by the condition; a Warning with
		// that reason exists.
		testbin.Eventually(t, "the MissingResourceRequests Warning", 30*time.Second, func() bool {
			return hasEvent(mdName, corev1.EventTypeWarning, "MissingResourceRequests", "resources.requests.")
		})
		setRequests(t, corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")})
		testbin.Eventually(t, "only memory left", 30*time.Second, func() bool {
			cd := condition(mdName, "AdoptionHealthy")
			return cd.Status == metav1.ConditionFalse && !strings.Contains(cd.Message, "resources.requests.cpu") && strings.Contains(cd.Message, "resources.requests.memory")
		})
		setRequests(t, corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")})
		testbin.Eventually(t, "AdoptionHealthy=True with both requests", 30*time.Second, func() bool {
			return meta.IsStatusConditionTrue(getMD(mdName).Status.Conditions, "AdoptionHealthy")
		})
	})

	t.Run("HPA (c): a served custom metric needs no requests", func(t *testing.T) {
		setRequests(t, nil)
		replaceHPA(t, "hpa-requests-per-second.yaml")
		adoptedHPA()
		checkRange(t) // the new HPA said 1..20
		// The status above may be one sync old: wait for a sync that
		// read the Deployment without requests.
		time.Sleep(2 * time.Second)
		testbin.Eventually(t, "AdoptionHealthy=True", 30*time.Second, func() bool {
			return meta.IsStatusConditionTrue(getMD(mdName).Status.Conditions, "AdoptionHealthy")
		})
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, key(depName), d); err != nil || d.Spec.Template.Spec.Containers[0].Resources.Requests != nil {
			t.Fatalf("the Deployment should have no requests here: %v %v", err, d.Spec.Template.Spec.Containers[0].Resources)
		}

		// A metric name Meridian's adapter does not serve.
		editHPA(t, func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.Metrics[0].Pods.Metric.Name = "http_requests" })
		testbin.Eventually(t, "AdoptionHealthy=False UnservedMetric", 30*time.Second, func() bool {
			cd := condition(mdName, "AdoptionHealthy")
			return cd.Reason == "UnservedMetric" && strings.Contains(cd.Message, `"http_requests"`) && strings.Contains(cd.Message, "requests_per_second")
		})
		testbin.Eventually(t, "the UnservedMetric Warning", 30*time.Second, func() bool {
			return hasEvent(mdName, corev1.EventTypeWarning, "UnservedMetric", "http_requests")
		})

		// An HPA that scales another Deployment is refused.
		editHPA(t, func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Metrics[0].Pods.Metric.Name = "requests_per_second"
			h.Spec.ScaleTargetRef.Name = "another-deployment"
		})
		testbin.Eventually(t, "the adoption refused: ScaleTargetMismatch", 30*time.Second, func() bool {
			cd, d := condition(mdName, "AdoptionHealthy"), condition(mdName, "Degraded")
			return cd.Reason == "ScaleTargetMismatch" && d.Reason == "AdoptionRefused" &&
				strings.Contains(d.Message, "not the adopted Deployment "+depName) && strings.Contains(d.Message, `"another-deployment"`)
		})
		t.Logf("refusal: %s", condition(mdName, "Degraded").Message)
		editHPA(t, func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.ScaleTargetRef.Name = depName })
		testbin.Eventually(t, "adopted again", 30*time.Second, func() bool {
			return meta.IsStatusConditionTrue(getMD(mdName).Status.Conditions, "AdoptionHealthy") &&
				condition(mdName, "Degraded").Reason != "AdoptionRefused"
		})
	})

	t.Run("the GPU Deployment waits for a GPU node", func(t *testing.T) {
		defer func() {
			if t.Failed() {
				t.Logf("status: %+v", getMD("gpu").Status)
			}
		}()
		testbin.Eventually(t, "Degraded ReplicasPending for a GPU node", 60*time.Second, func() bool {
			s := getMD("gpu").Status
			d := meta.FindStatusCondition(s.Conditions, "Degraded")
			return d != nil && d.Reason == "ReplicasPending" && strings.Contains(d.Message, "1 replica waits for a GPU node") &&
				strings.Contains(d.Message, "no schedulable node in the cluster offers nvidia.com/gpu") &&
				s.Replicas == 1 && s.ReadyReplicas == 0 && s.Endpoint == "" && len(s.Adopted) == 1
		})
		t.Logf("pending: %s", condition("gpu", "Degraded").Message)
	})

	t.Run("deleting the ModelDeployment leaves the user's objects", func(t *testing.T) {
		md := getMD(mdName)
		if err := c.Delete(ctx, md); err != nil {
			t.Fatal(err)
		}
		testbin.Eventually(t, "the ModelDeployment to go", 30*time.Second, func() bool {
			return apierrors.IsNotFound(c.Get(ctx, key(mdName), &v1.ModelDeployment{}))
		})
		// The garbage collector runs; it would delete dependents within
		// a second or two.
		time.Sleep(5 * time.Second)
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, key(depName), d); err != nil || d.UID != dep.UID || !d.DeletionTimestamp.IsZero() {
			t.Errorf("the Deployment: %v (deleting: %v)", err, d.DeletionTimestamp)
		}
		if err := c.Get(ctx, key(svcName), &corev1.Service{}); err != nil {
			t.Errorf("the Service: %v", err)
		}
		if err := c.Get(ctx, key(hpaName), &autoscalingv2.HorizontalPodAutoscaler{}); err != nil {
			t.Errorf("the HPA: %v", err)
		}
		if d.Status.Replicas != 2 {
			t.Errorf("the Deployment runs %d replicas, want the 2 it had", d.Status.Replicas)
		}
	})
}
