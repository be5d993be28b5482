package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RegionName names a region, e.g. "eu-west".
// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`
// +kubebuilder:validation:MaxLength=63
type RegionName string

// RegionDemand is the request rate coming from users in one region.
type RegionDemand struct {
	// Region the users are in.
	// +required
	Region RegionName `json:"region"`
	// RequestsPerSecond from that region.
	// +required
	RequestsPerSecond resource.Quantity `json:"requestsPerSecond"`
}

// PlacementPreferences weigh the placement score; each is 0 to 100 and 0
// ignores the criterion.
type PlacementPreferences struct {
	// Proximity favours clusters near the model's demand.
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Proximity *int32 `json:"proximity,omitempty"`
	// Cost favours clusters with a lower cost per GPU-hour.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Cost *int32 `json:"cost,omitempty"`
	// Capacity favours clusters with more free capacity.
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Capacity *int32 `json:"capacity,omitempty"`
}

// Placement says where a model may and should run.
type Placement struct {
	// ClusterSelector limits placement to Clusters whose labels match.
	// +optional
	ClusterSelector *metav1.LabelSelector `json:"clusterSelector,omitempty"`
	// AllowedRegions is the data-residency rule: the model never runs
	// outside these regions. Empty allows every region.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	AllowedRegions []RegionName `json:"allowedRegions,omitempty"`
	// MinRegions is how many distinct regions must run the model, for
	// availability.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	MinRegions int32 `json:"minRegions,omitempty"`
	// MaxClusters caps how many clusters run the model; 0 means no cap.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxClusters int32 `json:"maxClusters,omitempty"`
	// WarmRegions keep replicas running in the regions listed even when
	// autoscaling.minReplicas is 0 and the model is idle: scale to zero
	// everywhere else, while the first users in these regions never wait
	// for a cold start. A region listed is one the model runs in when it
	// is placed there; the listed count goes to its best cluster.
	// +optional
	// +listType=map
	// +listMapKey=region
	// +kubebuilder:validation:MaxItems=64
	WarmRegions []WarmRegion `json:"warmRegions,omitempty"`
	// Preferences weigh proximity to demand, cost and free capacity.
	// +optional
	Preferences PlacementPreferences `json:"preferences,omitempty"`
	// Demand is where the model's users are, until the global balancer
	// reports it.
	// +optional
	// +listType=map
	// +listMapKey=region
	Demand []RegionDemand `json:"demand,omitempty"`
}

// WarmRegion is a warm minimum of replicas in one region.
type WarmRegion struct {
	// Region to keep warm.
	// +required
	Region RegionName `json:"region"`
	// Replicas kept running there, at least 1.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=1
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
}

// WarmBufferPolicy sizes the placeholder pods that keep nodes ready for a
// model's next replicas in every cluster it runs in (ModelDeployment
// spec.warmBuffer).
type WarmBufferPolicy struct {
	// Percent of the replicas a cluster needs for its share of its
	// region's demand, held as placeholders (rounded up, at least 1 while
	// the cluster runs the model). The replicas needed are the demand's
	// requests per second over autoscaling.targets.requestsPerSecond, or
	// the replicas placed there when that target is unset or the region
	// reports no demand.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +required
	Percent int32 `json:"percent"`
	// MaxReplicas caps the placeholders per cluster.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +kubebuilder:default=8
	// +optional
	MaxReplicas int32 `json:"maxReplicas,omitempty"`
}

// SessionAffinity says how a cluster's front keeps each user on one model
// version while versions split traffic.
// +kubebuilder:validation:Enum=None;ClientIP;Header;Cookie
type SessionAffinity string

// The session affinities.
const (
	// AffinityNone draws each request's version at random by weight.
	AffinityNone SessionAffinity = "None"
	// AffinityClientIP keeps each client address on one version: the
	// first X-Forwarded-For address when the request came through the
	// balancer's front, else the connection's.
	AffinityClientIP SessionAffinity = "ClientIP"
	// AffinityHeader keeps each value of the header named by affinityKey
	// (default Meridian-Session) on one version.
	AffinityHeader SessionAffinity = "Header"
	// AffinityCookie keeps each value of the cookie named by affinityKey
	// (default meridian-session) on one version; a request without the
	// cookie gets one set in the answer.
	AffinityCookie SessionAffinity = "Cookie"
)

// Traffic says how each cluster's front splits requests between versions.
// +kubebuilder:validation:XValidation:rule="!has(self.affinityKey) || (has(self.sessionAffinity) && (self.sessionAffinity == 'Header' || self.sessionAffinity == 'Cookie'))",message="affinityKey names a header or cookie: it needs sessionAffinity Header or Cookie"
type Traffic struct {
	// SessionAffinity keeps each user on one version while spec.versions
	// splits traffic (A/B tests, canaries users should not flip in and
	// out of): the key (client address, header or cookie) is hashed into
	// one of 100 buckets and the buckets are given to versions newest
	// first, so a user stays on a version while its weight grows. The
	// version answering is in each answer's Meridian-Model-Version header
	// and in meridian_agent_version_requests_total. None (the default)
	// draws each request's version by weight.
	// +kubebuilder:default=None
	// +optional
	SessionAffinity SessionAffinity `json:"sessionAffinity,omitempty"`
	// AffinityKey is the header (Header) or cookie (Cookie) whose value
	// identifies a user. Default Meridian-Session, meridian-session.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[!#$%&'*+.^_|~0-9A-Za-z-]+$`
	// +optional
	AffinityKey string `json:"affinityKey,omitempty"`
}

// SLO is the service level the model must meet. Not enforced yet:
// nothing reads it (placement, steering and autoscaling ignore it). To
// scale on latency, set autoscaling.targets.p95Latency, which the agent
// does act on.
type SLO struct {
	// P95Latency is the 95th-percentile latency users should see.
	// Recorded only: nothing reads it yet.
	// +optional
	P95Latency *metav1.Duration `json:"p95Latency,omitempty"`
}

// InferenceModelSpec is the global intent for one model.
// +kubebuilder:validation:XValidation:rule="!has(self.versions) || size(self.versions) == 0 || self.versions.map(v, v.weight).sum() == 100",message="version weights must add up to 100"
// +kubebuilder:validation:XValidation:rule="!has(self.maxReplicas) || self.maxReplicas >= self.autoscaling.minReplicas",message="maxReplicas (global) must be at least autoscaling.minReplicas"
type InferenceModelSpec struct {
	// Model is the model to serve.
	// +required
	Model ModelSource `json:"model"`
	// Versions the model serves, with their share of requests: each
	// version runs its own replicas in every cluster, and each cluster's
	// front splits requests by weight (see Traffic). A version at weight
	// 0 keeps its replicas warm with no traffic (blue-green). Empty: every
	// replica loads every version in the repository and a request without
	// a version in its path gets the newest. A ModelRollout of this model
	// overrides the weights region by region while it runs, and sets
	// them here when it succeeds.
	// +optional
	// +listType=map
	// +listMapKey=version
	// +kubebuilder:validation:MaxItems=8
	Versions []VersionWeight `json:"versions,omitempty"`
	// Resources each replica needs.
	// +optional
	Resources Resources `json:"resources,omitempty"`
	// Autoscaling per cluster.
	// +optional
	Autoscaling Autoscaling `json:"autoscaling,omitempty"`
	// MaxReplicas caps replicas across the whole fleet; unset means no cap.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`
	// Placement says where the model may and should run.
	// +optional
	Placement Placement `json:"placement,omitempty"`
	// WarmBuffer keeps spare nodes ready for the model's next replicas
	// (placeholder pods at the lowest priority); unset keeps none.
	// +optional
	WarmBuffer *WarmBufferPolicy `json:"warmBuffer,omitempty"`
	// Traffic says how clusters split requests between versions.
	// +optional
	Traffic Traffic `json:"traffic,omitempty"`
	// SLO is the service level to meet. Not enforced yet.
	// +optional
	SLO SLO `json:"slo,omitempty"`
}

// ClusterAssignment is the share of a model placed on one cluster.
type ClusterAssignment struct {
	// Cluster name.
	Cluster string `json:"cluster"`
	// Region of the cluster.
	Region string `json:"region"`
	// DesiredReplicas placed there (the ModelDeployment's minimum).
	DesiredReplicas int32 `json:"desiredReplicas"`
	// ReadyReplicas reported by the cluster.
	ReadyReplicas int32 `json:"readyReplicas"`
	// Reason the cluster was chosen, e.g. its score.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// ClusterExclusion is a cluster the model was kept off, and why.
type ClusterExclusion struct {
	// Cluster name.
	Cluster string `json:"cluster"`
	// Reason it was left out, e.g. "region eu-west not allowed".
	Reason string `json:"reason"`
}

// InferenceModelStatus is written by the hub.
type InferenceModelStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Clusters the model is placed on.
	// +optional
	// +listType=map
	// +listMapKey=cluster
	Clusters []ClusterAssignment `json:"clusters,omitempty"`
	// Excluded clusters, with the reason for each.
	// +optional
	// +listType=map
	// +listMapKey=cluster
	Excluded []ClusterExclusion `json:"excluded,omitempty"`
	// ReadyReplicas across the fleet.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Demand is the demand placement used: the global balancers' fresh
	// DemandReports when there are any (HTTP requests per second, or DNS
	// queries per second where no balancer saw HTTP requests for the
	// model: only the shares between regions matter), else
	// spec.placement.demand.
	// +optional
	// +listType=map
	// +listMapKey=region
	Demand []RegionDemand `json:"demand,omitempty"`
	// DemandSource says where Demand came from: "Reported" or "Spec".
	// +optional
	DemandSource string `json:"demandSource,omitempty"`
	// Conditions: Placed, Ready, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// InferenceModel declares a model once for the whole fleet; the hub places
// it on clusters as ModelDeployments.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=im,categories=meridian
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.model.name`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Placed",type=string,JSONPath=`.status.conditions[?(@.type=="Placed")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type InferenceModel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the global intent.
	// +required
	Spec InferenceModelSpec `json:"spec"`
	// Status is the placement and readiness the hub observed.
	// +optional
	Status InferenceModelStatus `json:"status,omitempty"`
}

// InferenceModelList is a list of InferenceModels.
// +kubebuilder:object:root=true
type InferenceModelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []InferenceModel `json:"items"`
}
