package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
// +kubebuilder:validation:XValidation:rule="!has(self.adopt) || (has(self.runtime) && self.runtime == 'kubernetes')",message="spec.adopt needs spec.runtime: kubernetes (only the kubernetes runtime adopts Deployments)"
// +kubebuilder:validation:XValidation:rule="!has(self.adopt) || !has(self.autoscaling) || ((!has(self.autoscaling.targets) || (!has(self.autoscaling.targets.cpuUtilization) && !has(self.autoscaling.targets.memoryUtilization) && !has(self.autoscaling.targets.requestsPerSecond) && !has(self.autoscaling.targets.p95Latency) && !has(self.autoscaling.targets.queueLength))) && !has(self.autoscaling.behavior))",message="with spec.adopt the adopted HorizontalPodAutoscaler's own metrics and behavior apply: remove spec.autoscaling.targets and spec.autoscaling.behavior (minReplicas and maxReplicas still apply)"
type ModelDeploymentSpec struct {
	// Model is the model to serve.
	// +required
	Model ModelSource `json:"model"`
	// Versions to serve with their traffic weights, as the hub writes them
	// from the InferenceModel or from a ModelRollout running in this
	// region. The process runtime runs each version's own replicas (at
	// least one each, a version at weight 0 kept warm) and its front splits
	// requests by weight; empty, every replica loads every version and
	// requests without a version in their path get the newest. The
	// kubernetes runtime does not split yet: its replicas load every
	// version.
	// +optional
	// +listType=map
	// +listMapKey=version
	// +kubebuilder:validation:MaxItems=8
	Versions []VersionWeight `json:"versions,omitempty"`
	// Traffic says how the front keeps users on a version.
	// +optional
	Traffic Traffic `json:"traffic,omitempty"`
	// Resources each replica needs.
	// +optional
	Resources Resources `json:"resources,omitempty"`
	// Autoscaling bounds and targets for this cluster.
	// +optional
	Autoscaling Autoscaling `json:"autoscaling,omitempty"`
	// Runtime overrides the agent's default runtime for this model.
	// +optional
	Runtime Runtime `json:"runtime,omitempty"`
	// Adopt, when set, makes the kubernetes runtime take over a Deployment
	// (and optionally a Service and a HorizontalPodAutoscaler) that you
	// created yourself in this ModelDeployment's namespace, instead of
	// creating its own. The agent never rewrites the adopted Deployment's
	// pod template (image, command, ports, resources stay yours) nor its
	// replica count; it labels the objects, sets the adopted HPA's
	// minReplicas and maxReplicas from spec.autoscaling (see
	// Adoption.ReplicaRange), reads their state into status, lists them in
	// status.adopted and explains, in the AdoptionHealthy condition and
	// Warning Events, what keeps them from working as written. Adopted
	// objects get no owner reference: deleting the ModelDeployment leaves
	// them running as they are. Needs runtime: kubernetes; with it,
	// spec.resources, spec.versions, spec.model.repository and
	// spec.autoscaling.burst do not apply (the pod template is yours), and
	// spec.autoscaling.targets and behavior must be empty (the adopted
	// HPA's metrics and behavior apply).
	// +optional
	Adopt *Adoption `json:"adopt,omitempty"`
	// WarmBuffer is how many placeholder pods, each requesting what one
	// replica requests (GPUs included) and scheduled where a replica would
	// be, the kubernetes runtime keeps at the lowest priority
	// (PriorityClass meridian-warm-buffer, value -1000, which never
	// preempts). They hold nodes ready: a new replica preempts a
	// placeholder and starts on its node at once instead of waiting
	// minutes for the node autoscaler, which then adds a node for the
	// evicted placeholder. The hub sizes it from demand (InferenceModel
	// spec.warmBuffer); 0 keeps none. The process runtime ignores it.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=64
	// +optional
	WarmBuffer int32 `json:"warmBuffer,omitempty"`
}

// AdoptionReplicaRange says whose minReplicas and maxReplicas an adopted
// HorizontalPodAutoscaler keeps.
// +kubebuilder:validation:Enum=ModelDeployment;HorizontalPodAutoscaler
type AdoptionReplicaRange string

// The replica ranges an adoption can keep.
const (
	// ReplicaRangeModelDeployment sets the adopted HPA's minReplicas and
	// maxReplicas to spec.autoscaling's (minReplicas raised to 1).
	ReplicaRangeModelDeployment AdoptionReplicaRange = "ModelDeployment"
	// ReplicaRangeHorizontalPodAutoscaler leaves the adopted HPA's range as
	// it is.
	ReplicaRangeHorizontalPodAutoscaler AdoptionReplicaRange = "HorizontalPodAutoscaler"
)

// Adoption names objects that already exist in the ModelDeployment's
// namespace and that the kubernetes runtime manages instead of creating
// its own. Each must exist, must not be created by Meridian for another
// ModelDeployment, and must not be adopted by another ModelDeployment.
type Adoption struct {
	// Deployment is the name of the apps/v1 Deployment that runs the
	// model's replicas. Its pod template (image, command, ports, resources)
	// and its replica count are left as they are.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Deployment string `json:"deployment"`
	// Service is the name of a Service in front of the Deployment's pods.
	// status.endpoint becomes http://<service>.<namespace>.svc:<port>, with
	// the Service's port named "http", else its only or first port.
	// Without it the model has no endpoint in this cluster, so the hub and
	// the global balancer send it no traffic.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Service string `json:"service,omitempty"`
	// HorizontalPodAutoscaler is the name of an HPA (autoscaling/v1 or v2)
	// whose scaleTargetRef is the adopted Deployment; the agent refuses one
	// that scales anything else. Its metrics stay as written; the agent
	// reports metrics that cannot work (CPU or memory utilization of
	// containers without requests, custom metrics no adapter of Meridian's
	// serves) in the AdoptionHealthy condition.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	HorizontalPodAutoscaler string `json:"horizontalPodAutoscaler,omitempty"`
	// ReplicaRange says whose minReplicas and maxReplicas the adopted HPA
	// keeps: ModelDeployment (the default) writes spec.autoscaling's into
	// it, so the hub's placement bounds the replicas in this cluster;
	// HorizontalPodAutoscaler leaves the HPA's own.
	// +kubebuilder:default=ModelDeployment
	// +optional
	ReplicaRange AdoptionReplicaRange `json:"replicaRange,omitempty"`
}

// AdoptedObject is one object a ModelDeployment adopted.
type AdoptedObject struct {
	// Kind is Deployment, Service or HorizontalPodAutoscaler.
	Kind string `json:"kind"`
	// APIVersion of the kind, e.g. apps/v1.
	APIVersion string `json:"apiVersion"`
	// Name of the object, in the ModelDeployment's namespace.
	Name string `json:"name"`
	// UID of the object adopted; an object deleted and created again under
	// the same name is adopted anew.
	UID types.UID `json:"uid"`
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
	// Versions are each version's replicas and the requests the front sent
	// it, with spec.versions; the hub's rollouts judge versions by them.
	// +optional
	// +listType=map
	// +listMapKey=version
	Versions []VersionStatus `json:"versions,omitempty"`
	// Adopted lists the objects taken over through spec.adopt.
	// +optional
	// +listType=map
	// +listMapKey=kind
	Adopted []AdoptedObject `json:"adopted,omitempty"`
	// Conditions: Ready (serving with at least one ready replica),
	// Progressing (replicas starting or scaling), Degraded (a model that
	// fails to load or replicas that crash, with the reason),
	// AdoptionHealthy (with spec.adopt only: whether the adopted objects can
	// work as written, and if not, what to change).
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
