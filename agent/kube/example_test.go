package kube_test

import (
	"context"
	"fmt"
	"log"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	"meridian.dev/meridian/crds/v1alpha1"
)

// An agent's reconcile step for one ModelDeployment, and its capacity
// report. c is a client whose scheme has the meridian.dev types.
func ExampleApply() {
	var c client.Client // e.g. a manager's client
	if c == nil {
		return
	}
	ctx := context.Background()
	md := &v1alpha1.ModelDeployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "models", Name: "sentiment"}, md); err != nil {
		log.Fatal(err)
	}
	st, err := kube.Apply(ctx, c, md, kube.Options{Image: "registry.example.com/meridian:v0.3.0"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.ReadyReplicas, "of", st.DesiredReplicas, "ready at", st.Endpoint)

	capacity, err := kube.MeasureCapacity(ctx, c, kube.CapacityOptions{NodeGroups: []kube.NodeGroup{
		{Name: "eks-gpu-h100", GPUType: "NVIDIA-H100-80GB-HBM3", GPUsPerNode: 8},
	}})
	if err != nil {
		log.Fatal(err)
	}
	for _, g := range capacity.GPUs {
		fmt.Printf("%s: %d free of %d, %d pending, %d addable\n", g.Type, g.Free, g.Allocatable, g.Pending, g.Addable)
	}
}

func ExampleParseAutoscalerStatus() {
	groups, err := kube.ParseAutoscalerStatus(`autoscalerStatus: Running
nodeGroups:
- name: eks-gpu-h100
  health:
    status: Healthy
    cloudProviderTarget: 2
    minSize: 0
    maxSize: 5
  scaleUp:
    status: NoActivity
`)
	if err != nil {
		log.Fatal(err)
	}
	for _, g := range groups {
		fmt.Printf("%s: %d of at most %d nodes, room for %d more (scale-up possible: %v)\n",
			g.Name, g.TargetSize, g.MaxSize, g.Headroom(), g.CanScaleUp())
	}
	// Output:
	// eks-gpu-h100: 2 of at most 5 nodes, room for 3 more (scale-up possible: true)
}
