package kube

import (
	"reflect"
	"strings"
	"testing"
)

// yamlStatus130 is what cluster-autoscaler 1.30+ writes (the shape of its
// clusterstate/api types, marshalled with sigs.k8s.io/yaml).
const yamlStatus130 = `time: 2025-03-01 10:00:00.123456789 +0000 UTC
autoscalerStatus: Running
clusterWide:
  health:
    status: Healthy
    nodeCounts:
      registered:
        total: 5
        ready: 5
        notStarted: 0
      longUnregistered: 0
      unregistered: 0
    lastProbeTime: "2025-03-01T10:00:00Z"
    lastTransitionTime: "2025-03-01T09:00:00Z"
  scaleUp:
    status: NoActivity
  scaleDown:
    status: NoCandidates
nodeGroups:
- name: gpu-h100
  health:
    status: Healthy
    nodeCounts:
      registered:
        total: 2
        ready: 2
        notStarted: 0
        unready:
          total: 0
          resourceUnready: 0
      longUnregistered: 0
      unregistered: 0
    cloudProviderTarget: 2
    minSize: 0
    maxSize: 5
    lastProbeTime: "2025-03-01T10:00:00Z"
    lastTransitionTime: "2025-03-01T09:00:00Z"
  scaleUp:
    status: NoActivity
    lastProbeTime: "2025-03-01T10:00:00Z"
  scaleDown:
    status: NoCandidates
- name: gpu-a100
  health:
    status: Healthy
    nodeCounts:
      registered:
        total: 3
    cloudProviderTarget: 3
    minSize: 1
    maxSize: 12
  scaleUp:
    status: Backoff
    backoffInfo:
      errorCode: QUOTA_EXCEEDED
      errorMessage: "Quota 'GPUS' exceeded. Limit: 24.0 in region us-central1."
- name: cpu-pool
  health:
    status: Unhealthy
    nodeCounts:
      registered:
        total: 1
    cloudProviderTarget: 4
    minSize: 1
    maxSize: 10
  scaleUp:
    status: NoActivity
`

// textStatusOld is the human-readable status of cluster-autoscaler before
// 1.30 (as in kubernetes/autoscaler#2287 and #6318).
const textStatusOld = `Cluster-autoscaler status at 2019-09-02 14:57:47.683724023 +0000 UTC:
Cluster-wide:
  Health:      Healthy (ready=3 unready=0 (resourceUnready=0) notStarted=0 longNotStarted=0 registered=3 longUnregistered=0)
               LastProbeTime:      2019-09-02 14:57:47.467422992 +0000 UTC m=+238.237952298
               LastTransitionTime: 2019-09-02 14:54:02.209305948 +0000 UTC m=+12.979835247
  ScaleUp:     NoActivity (ready=3 registered=3)
               LastProbeTime:      2019-09-02 14:57:47.467422992 +0000 UTC m=+238.237952298
               LastTransitionTime: 2019-09-02 14:57:06.260551893 +0000 UTC m=+197.031081183
  ScaleDown:   NoCandidates (candidates=0)
               LastProbeTime:      2019-09-02 14:57:47.467422992 +0000 UTC m=+238.237952298
               LastTransitionTime: 2019-09-02 14:54:02.209305948 +0000 UTC m=+12.979835247

NodeGroups:
  Name:        gpu-h100
  Health:      Healthy (ready=2 unready=0 (resourceUnready=0) notStarted=0 longNotStarted=0 registered=2 longUnregistered=0 cloudProviderTarget=2 (minSize=0, maxSize=5))
               LastProbeTime:      2019-09-02 14:57:47.467422992 +0000 UTC m=+238.237952298
               LastTransitionTime: 2019-09-02 14:54:02.209305948 +0000 UTC m=+12.979835247
  ScaleUp:     NoActivity (ready=2 cloudProviderTarget=2)
               LastProbeTime:      2019-09-02 14:57:47.467422992 +0000 UTC m=+238.237952298
               LastTransitionTime: 2019-09-02 14:54:02.209305948 +0000 UTC m=+12.979835247
  ScaleDown:   NoCandidates (candidates=0)
               LastProbeTime:      2019-09-02 14:57:47.467422992 +0000 UTC m=+238.237952298
               LastTransitionTime: 2019-09-02 14:54:02.209305948 +0000 UTC m=+12.979835247

  Name:        work-default-eks-spot1
  Health:      Healthy (ready=1 unready=0 notStarted=0 longNotStarted=0 registered=1 longUnregistered=0 cloudProviderTarget=1 (minSize=1, maxSize=7))
               LastProbeTime:      2019-09-02 14:57:47.467422992 +0000 UTC m=+238.237952298
               LastTransitionTime: 2019-09-02 14:54:02.209305948 +0000 UTC m=+12.979835247
  ScaleUp:     Backoff (ready=1 cloudProviderTarget=1)
               LastProbeTime:      2019-09-02 14:57:47.467422992 +0000 UTC m=+238.237952298
               LastTransitionTime: 2019-09-02 14:57:06.260551893 +0000 UTC m=+197.031081183
  ScaleDown:   NoCandidates (candidates=0)
               LastProbeTime:      2019-09-02 14:57:47.467422992 +0000 UTC m=+238.237952298
               LastTransitionTime: 2019-09-02 14:54:02.209305948 +0000 UTC m=+12.979835247

`

func TestParseAutoscalerStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status string
		want   []AutoscalerNodeGroup
	}{
		{"yaml", yamlStatus130, []AutoscalerNodeGroup{
			{Name: "gpu-h100", Health: "Healthy", ScaleUp: "NoActivity", MinSize: 0, MaxSize: 5, TargetSize: 2},
			{Name: "gpu-a100", Health: "Healthy", ScaleUp: "Backoff", MinSize: 1, MaxSize: 12, TargetSize: 3},
			{Name: "cpu-pool", Health: "Unhealthy", ScaleUp: "NoActivity", MinSize: 1, MaxSize: 10, TargetSize: 4},
		}},
		{"yaml without cloudProviderTarget uses registered nodes", `autoscalerStatus: Running
nodeGroups:
- name: ng
  health:
    status: Healthy
    nodeCounts: {registered: {total: 3}}
    maxSize: 4
`, []AutoscalerNodeGroup{{Name: "ng", Health: "Healthy", MaxSize: 4, TargetSize: 3}}},
		{"yaml initializing", "time: 2025-03-01 10:00:00 +0000 UTC\nautoscalerStatus: Initializing\n", []AutoscalerNodeGroup{}},
		{"text", textStatusOld, []AutoscalerNodeGroup{
			{Name: "gpu-h100", Health: "Healthy", ScaleUp: "NoActivity", MinSize: 0, MaxSize: 5, TargetSize: 2},
			{Name: "work-default-eks-spot1", Health: "Healthy", ScaleUp: "Backoff", MinSize: 1, MaxSize: 7, TargetSize: 1},
		}},
		{"text of 2017 with min= and max=", `Cluster-autoscaler status at 2017-02-23 10:00:00 +0000 UTC:
Cluster-wide:
  Health:      Healthy (ready=0 unready=1 notStarted=0 longNotStarted=0 registered=1)
NodeGroups:
  Name:        ng1
  Health:      Unhealthy (ready=0 unready=1 notStarted=0 longNotStarted=0 registered=1 cloudProviderTarget=5 (min=5, max=5))
               LastProbeTime:      0001-01-01 00:00:00 +0000 UTC
`, []AutoscalerNodeGroup{{Name: "ng1", Health: "Unhealthy", MinSize: 5, MaxSize: 5, TargetSize: 5}}},
		{"text initializing", "Cluster-autoscaler status at 2019-09-02 14:54:00.1 +0000 UTC:\nInitializing", nil},
		{"text without node groups", "Cluster-autoscaler status at 2019-09-02 14:54:00.1 +0000 UTC:\nCluster-wide:\n  Health:      Healthy (ready=1)\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAutoscalerStatus(tc.status)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseAutoscalerStatusRejectsMalformed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, status, msg string
	}{
		{"empty", "  \n", "empty"},
		{"plain words", "the autoscaler is fine, thanks", "neither"},
		{"yaml of something else", "apiVersion: v1\nkind: Pod\n", "none of autoscalerStatus"},
		{"yaml group without sizes", "autoscalerStatus: Running\nnodeGroups:\n- name: ng\n  health:\n    status: Healthy\n", `"ng" lacks health.maxSize`},
		{"yaml group without name", "autoscalerStatus: Running\nnodeGroups:\n- health:\n    maxSize: 3\n    cloudProviderTarget: 1\n", "nodeGroups[0] has no name"},
		{"yaml with the wrong types", "autoscalerStatus: Running\nnodeGroups: many\n", "reading"},
		{"text group without sizes", "Cluster-autoscaler status at now:\nNodeGroups:\n  Name:        ng\n  Health:      Healthy (ready=1)\n", `"ng" has no Health line`},
		{"text health before name", "Cluster-autoscaler status at now:\nNodeGroups:\n  Health:      Healthy (cloudProviderTarget=1 (minSize=0, maxSize=2))\n", "before its Name"},
		{"text sizes out of range", "Cluster-autoscaler status at now:\nNodeGroups:\n  Name: ng\n  Health: Healthy (cloudProviderTarget=1 (minSize=0, maxSize=99999999999))\n", "out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAutoscalerStatus(tc.status)
			if err == nil {
				t.Fatalf("accepted %q: %+v", tc.status, got)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestNodeGroupHeadroom(t *testing.T) {
	t.Parallel()
	cases := []struct {
		g        AutoscalerNodeGroup
		headroom int32
		can      bool
	}{
		{AutoscalerNodeGroup{Health: "Healthy", ScaleUp: "NoActivity", MaxSize: 5, TargetSize: 2}, 3, true},
		{AutoscalerNodeGroup{Health: "Healthy", ScaleUp: "InProgress", MaxSize: 5, TargetSize: 5}, 0, true},
		{AutoscalerNodeGroup{Health: "Healthy", MaxSize: 2, TargetSize: 4}, 0, true}, // above max after a manual resize
		{AutoscalerNodeGroup{Health: "Unhealthy", MaxSize: 5, TargetSize: 2}, 3, false},
		{AutoscalerNodeGroup{Health: "Healthy", ScaleUp: "Backoff", MaxSize: 5, TargetSize: 2}, 3, false},
	}
	for _, tc := range cases {
		if h := tc.g.Headroom(); h != tc.headroom {
			t.Errorf("%+v: headroom %d, want %d", tc.g, h, tc.headroom)
		}
		if c := tc.g.CanScaleUp(); c != tc.can {
			t.Errorf("%+v: CanScaleUp %v, want %v", tc.g, c, tc.can)
		}
	}
}
