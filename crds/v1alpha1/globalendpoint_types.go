package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SteeringPolicy picks the cluster a user is sent to.
// +kubebuilder:validation:Enum=Geo;Latency;Weighted;Failover
type SteeringPolicy string

// The steering policies.
const (
	// SteerGeo sends users to the nearest healthy cluster with room.
	SteerGeo SteeringPolicy = "Geo"
	// SteerLatency sends users to the cluster with the lowest measured latency.
	SteerLatency SteeringPolicy = "Latency"
	// SteerWeighted splits users between the usable clusters by rendezvous
	// hashing of their subnet. Every cluster weighs the same today: no
	// field sets per-cluster weights yet (see EndpointTarget.Weight), so
	// it is an even, stable split, not a canary or A/B split.
	SteerWeighted SteeringPolicy = "Weighted"
	// SteerFailover sends everyone to the first healthy region of FailoverOrder.
	SteerFailover SteeringPolicy = "Failover"
)

// HealthCheck is how the balancer probes each cluster's endpoint.
type HealthCheck struct {
	// Path probed with GET; 200 means healthy.
	// +kubebuilder:default="/v2/health/ready"
	// +kubebuilder:validation:Pattern=`^/`
	// +optional
	Path string `json:"path,omitempty"`
	// Interval between probes. The defaults (500ms interval, 500ms
	// timeout, 2 failures) take a cluster that refuses connections or
	// silently drops packets out of answers within 1.5s, at 2 probes per
	// second per cluster per balancer (a GET the model server answers
	// from memory); far or lossy links want a longer timeout.
	// +kubebuilder:default="500ms"
	// +optional
	Interval metav1.Duration `json:"interval,omitzero"`
	// Timeout of one probe.
	// +kubebuilder:default="500ms"
	// +optional
	Timeout metav1.Duration `json:"timeout,omitzero"`
	// FailureThreshold is the consecutive failures that mark a target down.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +optional
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}

// GlobalEndpointSpec binds a public name to a model.
// +kubebuilder:validation:XValidation:rule="self.steering != 'Failover' || (has(self.failoverOrder) && size(self.failoverOrder) > 0)",message="steering Failover needs failoverOrder"
type GlobalEndpointSpec struct {
	// Hostname is the public DNS name, e.g. "sentiment.infer.example.com".
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`
	Hostname string `json:"hostname"`
	// Model names the InferenceModel (same namespace) served at Hostname.
	// +required
	// +kubebuilder:validation:MinLength=1
	Model string `json:"model"`
	// Steering picks the cluster for each user.
	// +kubebuilder:default=Geo
	// +optional
	Steering SteeringPolicy `json:"steering,omitempty"`
	// FailoverOrder lists regions in order of preference for Failover
	// steering, and as the fallback order for the others.
	// +optional
	// +listType=set
	FailoverOrder []RegionName `json:"failoverOrder,omitempty"`
	// TTL of DNS answers, in seconds.
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	// +optional
	TTL int32 `json:"ttl,omitempty"`
	// HealthCheck configures the active probes.
	// +optional
	HealthCheck HealthCheck `json:"healthCheck,omitempty"`
}

// EndpointTarget is one cluster behind a GlobalEndpoint. Reserved, like
// GlobalEndpointStatus: nothing writes it yet.
type EndpointTarget struct {
	// Cluster name.
	Cluster string `json:"cluster"`
	// Region of the cluster.
	Region string `json:"region"`
	// Address users are sent to.
	Address string `json:"address"`
	// Healthy as the balancer last saw it.
	Healthy bool `json:"healthy"`
	// Weight of the target for Weighted steering, 0 to 100. Not read: the
	// balancer gives every cluster the same weight.
	// +optional
	Weight int32 `json:"weight,omitempty"`
}

// GlobalEndpointStatus is reserved for what the name resolves to. Nothing
// writes it yet: neither the hub nor the global balancers, which decide
// targets per query from the hub's Clusters and their own probes and
// gossip and keep no shared record of it (each balancer's view is in its
// meridian_glb_target_up metric). It stays empty.
type GlobalEndpointStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Targets the name resolves to.
	// +optional
	Targets []EndpointTarget `json:"targets,omitempty"`
	// Conditions: Ready when at least one healthy target serves the name.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// GlobalEndpoint is a public name for a model, steered across clusters.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=gep,categories=meridian
// +kubebuilder:printcolumn:name="Hostname",type=string,JSONPath=`.spec.hostname`
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.model`
// +kubebuilder:printcolumn:name="Steering",type=string,JSONPath=`.spec.steering`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GlobalEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the name and its steering.
	// +required
	Spec GlobalEndpointSpec `json:"spec"`
	// Status is reserved and stays empty: nothing writes it yet.
	// +optional
	Status GlobalEndpointStatus `json:"status,omitempty"`
}

// GlobalEndpointList is a list of GlobalEndpoints.
// +kubebuilder:object:root=true
type GlobalEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GlobalEndpoint `json:"items"`
}
