package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterIdentity is what a member cluster is and where it is; the agent
// reports it and the hub's Cluster repeats it.
type ClusterIdentity struct {
	// Region the cluster is in, e.g. "eu-west".
	// +required
	Region RegionName `json:"region"`
	// Zone within the region, e.g. "eu-west-1a".
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Zone string `json:"zone,omitempty"`
	// Location is where the cluster is on Earth, for proximity.
	// +optional
	Location *GeoLocation `json:"location,omitempty"`
	// Endpoint is the base URL users reach the cluster's models at, e.g.
	// "https://eu-west.infer.example.com" (the agent's --endpoint). It is
	// informational: the global balancer sends users to each model's own
	// endpoint (status.models[].endpoint), not to this.
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://`
	// +kubebuilder:validation:MaxLength=2048
	Endpoint string `json:"endpoint,omitempty"`
}

// ClusterSpec describes one member cluster to the hub.
type ClusterSpec struct {
	ClusterIdentity `json:",inline"`
	// Provider runs the cluster, e.g. "aws", "gcp", "on-prem".
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Provider string `json:"provider,omitempty"`
	// CostPerGPUHour is the price of one GPU-hour there, in any one
	// currency used across the fleet, e.g. "2.50".
	// +optional
	CostPerGPUHour *resource.Quantity `json:"costPerGPUHour,omitempty"`
	// KubeconfigSecret is reserved and not read. The hub finds a member's
	// kubeconfig by convention instead: the Secret in its meridian-system
	// namespace named after the Cluster and labelled
	// sigs.k8s.io/multicluster-runtime-kubeconfig, under the key
	// "kubeconfig" (multicluster-runtime's kubeconfig provider).
	// +optional
	KubeconfigSecret string `json:"kubeconfigSecret,omitempty"`
}

// ClusterHealth is the hub's verdict on a cluster.
// +kubebuilder:validation:Enum=Unknown;Ready;Degraded;Unreachable
type ClusterHealth string

// The health states.
const (
	HealthUnknown     ClusterHealth = "Unknown"
	HealthReady       ClusterHealth = "Ready"
	HealthDegraded    ClusterHealth = "Degraded"
	HealthUnreachable ClusterHealth = "Unreachable"
)

// ClusterStatus is the hub's view of a member, mirrored from its
// ClusterReport, which the hub reads from the member's API server. (The
// hub does not take part in gossip; the global balancers do, and judge
// clusters by it on their own.)
type ClusterStatus struct {
	// Health is Ready, Degraded (saturated), Unreachable (heartbeat too old
	// or API server unreachable) or Unknown.
	// +optional
	Health ClusterHealth `json:"health,omitempty"`
	// LastHeartbeat is the report's latest heartbeat.
	// +optional
	LastHeartbeat *metav1.Time `json:"lastHeartbeat,omitempty"`
	// Capacity mirrored from the report.
	// +optional
	Capacity Capacity `json:"capacity,omitempty"`
	// Models running there and their load.
	// +optional
	Models []ModelLoad `json:"models,omitempty"`
	// Conditions say why the health is what it is.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Cluster is one member cluster of the fleet, on the hub.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=mcl,categories=meridian
// +kubebuilder:printcolumn:name="Region",type=string,JSONPath=`.spec.region`
// +kubebuilder:printcolumn:name="Health",type=string,JSONPath=`.status.health`
// +kubebuilder:printcolumn:name="CPU",type=string,JSONPath=`.status.capacity.cpu`
// +kubebuilder:printcolumn:name="Free-CPU",type=string,JSONPath=`.status.capacity.freeCPU`
// +kubebuilder:printcolumn:name="Heartbeat",type=date,JSONPath=`.status.lastHeartbeat`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the cluster.
	// +required
	Spec ClusterSpec `json:"spec"`
	// Status is the hub's view of it.
	// +optional
	Status ClusterStatus `json:"status,omitempty"`
}

// ClusterList is a list of Clusters.
// +kubebuilder:object:root=true
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Cluster `json:"items"`
}

// Equal reports whether two identities describe the cluster the same way.
func (c ClusterIdentity) Equal(o ClusterIdentity) bool {
	return c.Region == o.Region && c.Zone == o.Zone && c.Endpoint == o.Endpoint &&
		(c.Location == nil) == (o.Location == nil) && (c.Location == nil || *c.Location == *o.Location)
}
