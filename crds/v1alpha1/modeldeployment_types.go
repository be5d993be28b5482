package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Runtime is how an agent runs replicas.
// +kubebuilder:validation:Enum=process;kubernetes
type Runtime string

// The runtimes.
const (
	// RuntimeProcess runs `meridian serve` replicas as local processes.
	RuntimeProcess Runtime = "process"
	// RuntimeKubernetes creates a Deployment, Service and HPA.
	RuntimeKubernetes Runtime = "kubernetes"
)

// ModelDeploymentSpec is what the hub asks of one member cluster.
// +kubebuilder:validation:XValidation:rule="!has(self.versions) || size(self.versions) == 0 || self.versions.map(v, v.weight).sum() == 100",message="version weights must add up to 100"
type ModelDeploymentSpec struct {
	// Model is the model to serve.
	// +required
	Model ModelSource `json:"model"`
	// Versions to serve with their traffic weights. Empty serves the
	// newest version in the repository.
	// +optional
	// +listType=map
	// +listMapKey=version
	// +kubebuilder:validation:MaxItems=8
	Versions []VersionWeight `json:"versions,omitempty"`
	// Resources each replica needs.
	// +optional
	Resources Resources `json:"resources,omitempty"`
	// Autoscaling bounds and targets for this cluster.
	// +optional
	Autoscaling Autoscaling `json:"autoscaling,omitempty"`
	// Runtime overrides the agent's default runtime for this model.
	// +optional
	Runtime Runtime `json:"runtime,omitempty"`
}

// ModelDeploymentStatus is written by the agent.
type ModelDeploymentStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Replicas is how many replicas exist (ready or not).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas answer requests now.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// DesiredReplicas is the autoscaler's latest decision.
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas,omitempty"`
	// Endpoint is the URL that serves this model in this cluster.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// RequestsPerSecond over the last window, all replicas.
	// +optional
	RequestsPerSecond resource.Quantity `json:"requestsPerSecond,omitzero"`
	// P95Latency over the last window.
	// +optional
	P95Latency metav1.Duration `json:"p95Latency,omitzero"`
	// QueueLength is the requests waiting, all replicas.
	// +optional
	QueueLength int32 `json:"queueLength,omitempty"`
	// LastScaleTime is when the replica count last changed.
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`
	// Conditions: Ready (serving with at least one ready replica),
	// Progressing (replicas starting or scaling), Degraded (a model that
	// fails to load or replicas that crash, with the reason).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ModelDeployment is one model running in one member cluster, as the hub
// placed it; the cluster's agent reconciles it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=md;mdep,categories=meridian
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.model.name`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredReplicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ModelDeployment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired deployment.
	// +required
	Spec ModelDeploymentSpec `json:"spec"`
	// Status is what the agent observed.
	// +optional
	Status ModelDeploymentStatus `json:"status,omitempty"`
}

// ModelDeploymentList is a list of ModelDeployments.
// +kubebuilder:object:root=true
type ModelDeploymentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModelDeployment `json:"items"`
}
