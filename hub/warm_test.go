package hub

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub/placement"
)

func TestWarmMinimum(t *testing.T) {
	as := []placement.Assignment{
		{Cluster: "eu-1", Region: "eu-west", Replicas: 0, Score: 40},
		{Cluster: "us-1", Region: "us-east", Replicas: 0, Score: 70},
		{Cluster: "us-2", Region: "us-east", Replicas: 0, Score: 90},
		{Cluster: "ap-1", Region: "ap-south", Replicas: 3, Score: 50},
	}
	warmMinimum(as, []v1.WarmRegion{{Region: "us-east", Replicas: 2}, {Region: "ap-south", Replicas: 1}, {Region: "sa-east", Replicas: 1}})
	got := map[string]int32{}
	for _, a := range as {
		got[a.Cluster] = a.Replicas
	}
	want := map[string]int32{"eu-1": 0, "us-1": 0, "us-2": 2, "ap-1": 3}
	for c, n := range want {
		if got[c] != n {
			t.Errorf("%s: %d replicas, want %d (all: %v)", c, got[c], n, got)
		}
	}
	if !strings.Contains(as[2].Reason, "warm") || strings.Contains(as[3].Reason, "warm") {
		t.Errorf("reasons: %q %q; only the raised assignment says it is kept warm", as[2].Reason, as[3].Reason)
	}
}

func TestWarmBuffers(t *testing.T) {
	rps := resource.MustParse("10")
	im := &v1.InferenceModel{Spec: v1.InferenceModelSpec{
		Autoscaling: v1.Autoscaling{Targets: v1.MetricTargets{RequestsPerSecond: &rps}},
		WarmBuffer:  &v1.WarmBufferPolicy{Percent: 25, MaxReplicas: 3},
	}}
	as := []placement.Assignment{
		{Cluster: "us-1", Region: "us-east", Replicas: 1},
		{Cluster: "us-2", Region: "us-east", Replicas: 1},
		{Cluster: "eu-1", Region: "eu-west", Replicas: 4},
		{Cluster: "ap-1", Region: "ap-south", Replicas: 2},
	}
	demand := []v1.RegionDemand{
		{Region: "us-east", RequestsPerSecond: resource.MustParse("160")},  // 80 each: 8 replicas → 2
		{Region: "ap-south", RequestsPerSecond: resource.MustParse("500")}, // 50 replicas → 13, capped 3
	}
	got := warmBuffers(im, as, demand)
	want := map[string]int32{"us-1": 2, "us-2": 2, "eu-1": 1 /* no demand: 25% of 4 placed */, "ap-1": 3}
	for c, n := range want {
		if got[c] != n {
			t.Errorf("%s: warm buffer %d, want %d (all: %v)", c, got[c], n, got)
		}
	}

	// Without a requests-per-second target, the replicas placed count.
	im.Spec.Autoscaling.Targets = v1.MetricTargets{}
	if got := warmBuffers(im, as, demand); got["ap-1"] != 1 || got["eu-1"] != 1 {
		t.Errorf("without a target: %v, want 25%% of the placed replicas rounded up", got)
	}
	im.Spec.WarmBuffer = nil
	if got := warmBuffers(im, as, demand); got != nil {
		t.Errorf("without a policy: %v, want none", got)
	}
}

// Pending GPU replicas are room only while a node is coming for them.
func TestGPURoomForPrevious(t *testing.T) {
	const h100 = "NVIDIA-H100-80GB-HBM3"
	cluster := func(g v1.GPUCapacity) *v1.Cluster {
		g.Type = h100
		return &v1.Cluster{Status: v1.ClusterStatus{Capacity: v1.Capacity{GPUs: []v1.GPUCapacity{g}}}}
	}
	for _, tc := range []struct {
		name              string
		c                 *v1.Cluster
		previous, pending int32
		want              int32
	}{
		{"all ready", cluster(v1.GPUCapacity{Allocatable: 4}), 2, 0, 4},
		{"pending, nodes provisioning", cluster(v1.GPUCapacity{Pending: 2, Provisioning: 2}), 2, 1, 4},
		{"pending, still addable", cluster(v1.GPUCapacity{Pending: 2, Addable: 2}), 2, 1, 4},
		{"pending, nothing coming", cluster(v1.GPUCapacity{Allocatable: 2, Pending: 2}), 2, 1, 2},
		{"others pending too: only this model's own count", cluster(v1.GPUCapacity{Pending: 6}), 2, 1, 2},
	} {
		if got := gpuRoomForPrevious(tc.c, h100, tc.previous, tc.pending, 2); got != tc.want {
			t.Errorf("%s: %d GPUs given back, want %d", tc.name, got, tc.want)
		}
	}
	if got := toClusters([]v1.Cluster{*cluster(v1.GPUCapacity{Pending: 3, Provisioning: 1, Addable: 4})})[0].Addable[h100]; got != 2 {
		t.Errorf("addable %d, want 2: two pending GPUs without a node coming take two of the four addable", got)
	}
}
