package v1alpha1

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModelSource names the model to serve: a model of the model repository
// that every replica loads (its directory name under the repository).
type ModelSource struct {
	// Name is the model's name in the model repository, e.g. "sentiment".
	// +required
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Repository is the directory the process runtime's replicas load
	// models from: an absolute path with no . or .. segments, which the
	// hub places only when it lies under one of its
	// --allowed-model-sources. Empty means the agent's default repository
	// (its --models). The kubernetes runtime ignores it: its pods serve the
	// models baked into the image (the agent's --image-models, default
	// /models); nothing mounts or fetches a repository into them.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/') && !self.matches('(^|/)[.][.]?(/|$)')",message="repository must be an absolute directory path with no . or .. segments"
	Repository string `json:"repository,omitempty"`
}

// VersionWeight is one model version and its share of traffic.
type VersionWeight struct {
	// Version is the model version (its directory number in the repository).
	// +required
	// +kubebuilder:validation:Minimum=1
	Version int64 `json:"version"`
	// Weight is the percentage of requests this version receives, 0 to 100.
	// The weights of all versions add up to 100.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight int32 `json:"weight"`
}

// GPURequirement asks for GPUs for every replica.
type GPURequirement struct {
	// Count is the number of GPUs (`nvidia.com/gpu`) each replica requests.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +kubebuilder:default=1
	// +optional
	Count int32 `json:"count,omitempty"`
	// Type is the GPU product replicas must run on, as node label
	// `nvidia.com/gpu.product` reads (e.g. "NVIDIA-H100-80GB-HBM3"). Empty
	// accepts any product.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	Type string `json:"type,omitempty"`
}

// Resources is what one replica needs.
type Resources struct {
	// CPU each replica requests, e.g. "500m".
	// +kubebuilder:default="1"
	// +optional
	CPU resource.Quantity `json:"cpu,omitzero"`
	// Memory each replica requests, e.g. "512Mi".
	// +kubebuilder:default="1Gi"
	// +optional
	Memory resource.Quantity `json:"memory,omitzero"`
	// GPU, when set, makes every replica a GPU replica.
	// +optional
	GPU *GPURequirement `json:"gpu,omitempty"`
}

// MetricTargets are the per-replica values the autoscaler steers toward;
// each set target proposes a replica count and the largest wins, as in the
// Kubernetes HorizontalPodAutoscaler.
type MetricTargets struct {
	// CPUUtilization is the target average CPU use, in percent of the
	// replicas' CPU request.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	CPUUtilization *int32 `json:"cpuUtilization,omitempty"`
	// MemoryUtilization is the target average memory use, in percent of the
	// replicas' memory request.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MemoryUtilization *int32 `json:"memoryUtilization,omitempty"`
	// RequestsPerSecond is the target request rate per replica.
	// +optional
	RequestsPerSecond *resource.Quantity `json:"requestsPerSecond,omitempty"`
	// P95Latency is the target 95th-percentile request latency, e.g. "50ms".
	// +optional
	P95Latency *metav1.Duration `json:"p95Latency,omitempty"`
	// QueueLength is the target number of queued requests per replica.
	// +optional
	// +kubebuilder:validation:Minimum=1
	QueueLength *int32 `json:"queueLength,omitempty"`
}

// BurstPolicy is a Knative-style panic mode for sudden spikes: while the
// short-window demand is at least Threshold times the current capacity the
// autoscaler scales up at once, ignoring scale-up policies, and never
// scales down.
type BurstPolicy struct {
	// Threshold is the ratio of desired to current replicas that starts
	// burst mode, as a decimal string, e.g. "2" (the default).
	// +kubebuilder:default="2"
	// +optional
	Threshold resource.Quantity `json:"threshold,omitzero"`
	// Window is the short window over which burst demand is measured.
	// Default 6s.
	// +kubebuilder:default="6s"
	// +optional
	Window metav1.Duration `json:"window,omitzero"`
}

// Autoscaling bounds and steers the replica count in one cluster.
// +kubebuilder:validation:XValidation:rule="self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas"
type Autoscaling struct {
	// MinReplicas is the fewest replicas kept in a cluster (0 allows
	// scale to zero).
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// MaxReplicas is the most replicas run in a cluster.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxReplicas int32 `json:"maxReplicas,omitempty"`
	// Targets are the metric values to steer toward. With none set, the
	// replica count stays at MinReplicas.
	// +optional
	Targets MetricTargets `json:"targets,omitempty"`
	// Behavior configures scale-up and scale-down rates and stabilization
	// windows exactly as the HorizontalPodAutoscaler's behavior field does
	// (defaults: up at once, down after a 300s window).
	// +optional
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
	// Burst, when set, enables burst (panic) mode for real-time spikes.
	// The process runtime only: the kubernetes runtime's HPA has no burst
	// mode and ignores it.
	// +optional
	Burst *BurstPolicy `json:"burst,omitempty"`
}

// GeoLocation is a point on Earth in decimal degrees, written as strings
// (e.g. "38.9", "-77.4") because Kubernetes APIs avoid floats.
type GeoLocation struct {
	// Latitude in decimal degrees, -90 to 90.
	// +required
	// +kubebuilder:validation:Pattern=`^-?[0-9]{1,2}(\.[0-9]+)?$`
	// +kubebuilder:validation:XValidation:rule="double(self) >= -90.0 && double(self) <= 90.0",message="latitude must be between -90 and 90"
	Latitude string `json:"latitude"`
	// Longitude in decimal degrees, -180 to 180.
	// +required
	// +kubebuilder:validation:Pattern=`^-?[0-9]{1,3}(\.[0-9]+)?$`
	// +kubebuilder:validation:XValidation:rule="double(self) >= -180.0 && double(self) <= 180.0",message="longitude must be between -180 and 180"
	Longitude string `json:"longitude"`
}

// GPUCapacity is the GPU inventory of one product in a cluster.
type GPUCapacity struct {
	// Type is the GPU product (node label nvidia.com/gpu.product).
	Type string `json:"type"`
	// Allocatable is the GPUs of this type that nodes offer to pods.
	Allocatable int32 `json:"allocatable"`
	// Free is Allocatable minus what scheduled pods request.
	Free int32 `json:"free"`
	// Pending is the GPUs requested by pods waiting for a node.
	// +optional
	Pending int32 `json:"pending,omitempty"`
	// Addable is how many more GPUs of this type the cluster autoscaler can
	// still add (node-group maxima minus current size, or Karpenter NodePool
	// limits minus use).
	// +optional
	Addable int32 `json:"addable,omitempty"`
	// Provisioning is the GPUs on nodes the node autoscaler is adding now
	// (Karpenter NodeClaims launched but not yet Ready): not Allocatable
	// yet, and no longer Addable.
	// +optional
	Provisioning int32 `json:"provisioning,omitempty"`
}

// Capacity is what a cluster can run.
type Capacity struct {
	// CPU allocatable in the cluster (or configured for the process runtime).
	// +optional
	CPU resource.Quantity `json:"cpu,omitzero"`
	// FreeCPU is CPU not yet requested.
	// +optional
	FreeCPU resource.Quantity `json:"freeCPU,omitzero"`
	// Memory allocatable.
	// +optional
	Memory resource.Quantity `json:"memory,omitzero"`
	// FreeMemory is memory not yet requested.
	// +optional
	FreeMemory resource.Quantity `json:"freeMemory,omitzero"`
	// GPUs by product.
	// +optional
	// +listType=map
	// +listMapKey=type
	GPUs []GPUCapacity `json:"gpus,omitempty"`
}

// ModelLoad is the state and load of one model in one cluster.
type ModelLoad struct {
	// Namespace of the ModelDeployment.
	Namespace string `json:"namespace"`
	// Name of the ModelDeployment.
	Name string `json:"name"`
	// Model is the model served.
	Model string `json:"model"`
	// Endpoint is the URL that serves the model in this cluster.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// DesiredReplicas is what the autoscaler wants now.
	DesiredReplicas int32 `json:"desiredReplicas"`
	// ReadyReplicas answer requests now.
	ReadyReplicas int32 `json:"readyReplicas"`
	// RequestsPerSecond over the last measurement window, all replicas.
	// +optional
	RequestsPerSecond resource.Quantity `json:"requestsPerSecond,omitzero"`
	// P95Latency over the last measurement window.
	// +optional
	P95Latency metav1.Duration `json:"p95Latency,omitzero"`
	// QueueLength is the requests waiting, all replicas.
	// +optional
	QueueLength int32 `json:"queueLength,omitempty"`
	// ScaledToZero says the model has no replica here on purpose (idle
	// for the idle window) and the agent's activator answers for it: it
	// holds each request until a replica is ready (a cold start, seconds
	// on a warm node). The global balancer keeps such a cluster in its
	// answers, after every cluster with a ready replica.
	// +optional
	ScaledToZero bool `json:"scaledToZero,omitempty"`
}

// VersionStatus is one version's replicas and traffic in one cluster, as
// its front measured them.
type VersionStatus struct {
	// Version of the model.
	Version int64 `json:"version"`
	// Weight the front gives it now.
	Weight int32 `json:"weight"`
	// Replicas running it, and how many of them are ready.
	Replicas      int32 `json:"replicas"`
	ReadyReplicas int32 `json:"readyReplicas"`
	// Requests the front sent it and Errors (answers 500 and up, or no
	// answer) among them, counted since Since.
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// Since is when the counts began: they restart with the agent.
	Since metav1.Time `json:"since"`
	// P95Latency of its answers over the agent's metrics window.
	// +optional
	P95Latency metav1.Duration `json:"p95Latency,omitzero"`
	// Predictions counts its good answers by the label they predicted
	// (POST /analyze), since Since; labels past the 32nd are counted
	// under "(other)".
	// +optional
	// +kubebuilder:validation:MaxProperties=33
	Predictions map[string]int64 `json:"predictions,omitempty"`
}
