package v1alpha1_test

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
)

// The CRDs are checked by a real kube-apiserver: what it accepts, what it
// rejects and with which field-level message, and what it defaults.
func TestCRDValidationOnRealAPIServer(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx := context.Background()
	c := cp.Client

	md := func(name string, mutate func(*v1.ModelDeployment)) *v1.ModelDeployment {
		m := &v1.ModelDeployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec:       v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "sentiment"}},
		}
		if mutate != nil {
			mutate(m)
		}
		return m
	}

	t.Run("defaults", func(t *testing.T) {
		m := md("defaults", nil)
		if err := c.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
		got := &v1.ModelDeployment{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(m), got); err != nil {
			t.Fatal(err)
		}
		a := got.Spec.Autoscaling
		if a.MinReplicas == nil || *a.MinReplicas != 1 || a.MaxReplicas != 10 {
			t.Errorf("autoscaling defaults: min %v max %d, want 1 and 10", a.MinReplicas, a.MaxReplicas)
		}
		if got.Spec.Resources.CPU.String() != "1" || got.Spec.Resources.Memory.String() != "1Gi" {
			t.Errorf("resource defaults: cpu %s memory %s", &got.Spec.Resources.CPU, &got.Spec.Resources.Memory)
		}
	})

	t.Run("status is a subresource", func(t *testing.T) {
		m := md("status", nil)
		m.Status.ReadyReplicas = 5 // ignored on create
		if err := c.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
		if m.Status.ReadyReplicas != 0 {
			t.Fatalf("create kept status: %+v", m.Status)
		}
		m.Status.ReadyReplicas = 3
		if err := c.Status().Update(ctx, m); err != nil {
			t.Fatal(err)
		}
		if m.Status.ReadyReplicas != 3 {
			t.Fatalf("status update lost: %+v", m.Status)
		}
	})

	rollout := func(name string, mutate func(*v1.ModelRollout)) *v1.ModelRollout {
		r := &v1.ModelRollout{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec:       v1.ModelRolloutSpec{Model: "sentiment", Version: 2},
		}
		mutate(r)
		return r
	}

	rejected := []struct {
		name  string
		obj   client.Object
		field string // part of the field path the server names
		msg   string
	}{
		{"min above max", md("minmax", func(m *v1.ModelDeployment) {
			m.Spec.Autoscaling = v1.Autoscaling{MinReplicas: ptr.To[int32](5), MaxReplicas: 2}
		}), "spec.autoscaling", "minReplicas must not exceed maxReplicas"},
		{"weights not 100", md("weights", func(m *v1.ModelDeployment) {
			m.Spec.Versions = []v1.VersionWeight{{Version: 1, Weight: 90}, {Version: 2, Weight: 5}}
		}), "spec", "version weights must add up to 100"},
		{"weight over 100", md("weight", func(m *v1.ModelDeployment) {
			m.Spec.Versions = []v1.VersionWeight{{Version: 1, Weight: 101}}
		}), "spec.versions[0].weight", "less than or equal to 100"},
		{"duplicate version", md("dup", func(m *v1.ModelDeployment) {
			m.Spec.Versions = []v1.VersionWeight{{Version: 1, Weight: 50}, {Version: 1, Weight: 50}}
		}), "spec.versions[1]", "Duplicate value"},
		{"bad model name", md("name", func(m *v1.ModelDeployment) { m.Spec.Model.Name = "Bad Name!" }), "spec.model.name", "should match"},
		{"no model", md("nomodel", func(m *v1.ModelDeployment) { m.Spec.Model.Name = "" }), "spec.model.name", ""},
		{"too many GPUs", md("gpus", func(m *v1.ModelDeployment) {
			m.Spec.Resources.GPU = &v1.GPURequirement{Count: 17}
		}), "spec.resources.gpu.count", "less than or equal to 16"},
		{"unknown runtime", md("runtime", func(m *v1.ModelDeployment) { m.Spec.Runtime = "docker" }), "spec.runtime", "Unsupported value"},
		{"relative repository", md("relrepo", func(m *v1.ModelDeployment) { m.Spec.Model.Repository = "models" }), "spec.model.repository", "absolute directory path"},
		{"repository climbing out", md("dotdot", func(m *v1.ModelDeployment) { m.Spec.Model.Repository = "/srv/models/../../etc" }), "spec.model.repository", "no . or .. segments"},
		{"cpu target over 100%", md("cpu", func(m *v1.ModelDeployment) {
			m.Spec.Autoscaling.Targets.CPUUtilization = ptr.To[int32](150)
		}), "spec.autoscaling.targets.cpuUtilization", "less than or equal to 100"},
		{"latitude out of range", &v1.Cluster{
			ObjectMeta: metav1.ObjectMeta{Name: "lat"},
			Spec: v1.ClusterSpec{ClusterIdentity: v1.ClusterIdentity{Region: "eu-west",
				Location: &v1.GeoLocation{Latitude: "95", Longitude: "0"}}},
		}, "spec.location.latitude", "latitude must be between -90 and 90"},
		{"region name", &v1.Cluster{
			ObjectMeta: metav1.ObjectMeta{Name: "region"},
			Spec:       v1.ClusterSpec{ClusterIdentity: v1.ClusterIdentity{Region: "EU_West"}},
		}, "spec.region", "should match"},
		{"endpoint not a URL", &v1.Cluster{
			ObjectMeta: metav1.ObjectMeta{Name: "endpoint"},
			Spec:       v1.ClusterSpec{ClusterIdentity: v1.ClusterIdentity{Region: "eu-west", Endpoint: "eu-west:8000"}},
		}, "spec.endpoint", "should match"},
		{"report not a singleton", &v1.ClusterReport{
			ObjectMeta: metav1.ObjectMeta{Name: "other"},
			Spec:       v1.ClusterIdentity{Region: "eu-west"},
		}, "", "singleton named local"},
		{"failover without order", &v1.GlobalEndpoint{
			ObjectMeta: metav1.ObjectMeta{Name: "fo", Namespace: "default"},
			Spec:       v1.GlobalEndpointSpec{Hostname: "sentiment.infer.example.com", Model: "sentiment", Steering: v1.SteerFailover},
		}, "spec", "steering Failover needs failoverOrder"},
		{"bad hostname", &v1.GlobalEndpoint{
			ObjectMeta: metav1.ObjectMeta{Name: "host", Namespace: "default"},
			Spec:       v1.GlobalEndpointSpec{Hostname: "not a host", Model: "sentiment"},
		}, "spec.hostname", "should match"},
		{"global max below min", &v1.InferenceModel{
			ObjectMeta: metav1.ObjectMeta{Name: "gmax", Namespace: "default"},
			Spec: v1.InferenceModelSpec{Model: v1.ModelSource{Name: "sentiment"}, MaxReplicas: ptr.To[int32](1),
				Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](3), MaxReplicas: 5}},
		}, "spec", "maxReplicas (global) must be at least autoscaling.minReplicas"},
		{"duplicate allowed region", &v1.InferenceModel{
			ObjectMeta: metav1.ObjectMeta{Name: "regions", Namespace: "default"},
			Spec: v1.InferenceModelSpec{Model: v1.ModelSource{Name: "sentiment"},
				Placement: v1.Placement{AllowedRegions: []v1.RegionName{"eu-west", "eu-west"}}},
		}, "spec.placement.allowedRegions[1]", "Duplicate value"},
		{"blue-green with steps", rollout("bg", func(r *v1.ModelRollout) {
			r.Spec.Strategy, r.Spec.Steps = v1.StrategyBlueGreen, []v1.RolloutStep{{Weight: 50}}
		}), "spec", "BlueGreen switches each wave at once"},
		{"canary steps out of order", rollout("order", func(r *v1.ModelRollout) {
			r.Spec.Steps = []v1.RolloutStep{{Weight: 50}, {Weight: 10}}
		}), "spec", "steps must be in order of rising weight"},
		{"rollout to version 0", rollout("v0", func(r *v1.ModelRollout) { r.Spec.Version = 0 }), "spec.version", "greater than or equal to 1"},
		{"error rate not a fraction", rollout("rate", func(r *v1.ModelRollout) { r.Spec.Analysis.MaxErrorRateIncrease = "2%" }),
			"spec.analysis.maxErrorRateIncrease", "should match"},
		{"affinity key without a header or cookie", &v1.InferenceModel{
			ObjectMeta: metav1.ObjectMeta{Name: "affinity", Namespace: "default"},
			Spec: v1.InferenceModelSpec{Model: v1.ModelSource{Name: "sentiment"},
				Traffic: v1.Traffic{SessionAffinity: v1.AffinityClientIP, AffinityKey: "X-User"}},
		}, "spec.traffic", "affinityKey names a header or cookie"},
	}
	for _, r := range rejected {
		t.Run(r.name, func(t *testing.T) {
			err := c.Create(ctx, r.obj)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid, got %v", err)
			}
			if !strings.Contains(err.Error(), r.field) || !strings.Contains(err.Error(), r.msg) {
				t.Fatalf("error %q does not name %q with %q", err, r.field, r.msg)
			}
		})
	}

	t.Run("valid fleet objects", func(t *testing.T) {
		for _, obj := range []client.Object{
			&v1.Cluster{
				ObjectMeta: metav1.ObjectMeta{Name: "eu-west-1", Labels: map[string]string{"tier": "gold"}},
				Spec: v1.ClusterSpec{ClusterIdentity: v1.ClusterIdentity{Region: "eu-west", Zone: "eu-west-1a",
					Location: &v1.GeoLocation{Latitude: "53.35", Longitude: "-6.26"}, Endpoint: "http://127.0.0.1:9000"},
					Provider: "on-prem", CostPerGPUHour: ptr.To(resource.MustParse("2.5"))},
			},
			&v1.ClusterReport{ObjectMeta: metav1.ObjectMeta{Name: v1.ClusterReportName}, Spec: v1.ClusterIdentity{Region: "eu-west"}},
			&v1.InferenceModel{
				ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
				Spec: v1.InferenceModelSpec{Model: v1.ModelSource{Name: "sentiment"},
					Versions:  []v1.VersionWeight{{Version: 1, Weight: 90}, {Version: 2, Weight: 10}},
					Placement: v1.Placement{AllowedRegions: []v1.RegionName{"eu-west", "us-east"}, MinRegions: 2}},
			},
			&v1.GlobalEndpoint{
				ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
				Spec:       v1.GlobalEndpointSpec{Hostname: "sentiment.infer.example.com", Model: "sentiment"},
			},
		} {
			if err := c.Create(ctx, obj); err != nil {
				t.Errorf("%T: %v", obj, err)
			}
		}
		ro := rollout("sentiment-v2", func(*v1.ModelRollout) {})
		if err := c.Create(ctx, ro); err != nil {
			t.Fatal(err)
		}
		changed := ro.DeepCopy()
		changed.Spec.Version = 3
		if err := c.Update(ctx, changed); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "version cannot change") {
			t.Errorf("changing a rollout's version: %v, want Invalid", err)
		}
		if a := ro.Spec.Analysis; ro.Spec.Strategy != v1.StrategyCanary || ro.Spec.Bake.Duration != time.Minute ||
			a.MaxErrorRateIncrease != "0.02" || a.MaxLatencyRatio != "1.5" || a.MinRequests != 20 || a.LatencyTolerance.Duration != 20*time.Millisecond {
			t.Errorf("ModelRollout defaults: %+v", ro.Spec)
		}
		ge := &v1.GlobalEndpoint{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, ge); err != nil {
			t.Fatal(err)
		}
		if hc := ge.Spec.HealthCheck; ge.Spec.TTL != 30 || ge.Spec.Steering != v1.SteerGeo || hc.Path != "/v2/health/ready" ||
			hc.Interval.Duration != 500*time.Millisecond || hc.Timeout.Duration != 500*time.Millisecond || hc.FailureThreshold != 2 {
			t.Errorf("GlobalEndpoint defaults: %+v", ge.Spec)
		}
	})
}
