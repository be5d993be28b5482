package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DemandReportSpec names the balancer site that writes the report.
type DemandReportSpec struct {
	// Site is the global balancer site (point of presence) that counted
	// the demand.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Site string `json:"site"`
}

// RegionRate is the demand for a model from users nearest one region.
type RegionRate struct {
	// Region of the fleet nearest to the users (by great-circle distance
	// from their geolocated address).
	// +required
	Region RegionName `json:"region"`
	// RequestsPerSecond the site's HTTP front took from those users.
	// +optional
	RequestsPerSecond *resource.Quantity `json:"requestsPerSecond,omitempty"`
	// QueriesPerSecond the site's DNS answered for those users' resolvers
	// (each answer is cached for its TTL, so it stands for many requests).
	// +optional
	QueriesPerSecond *resource.Quantity `json:"queriesPerSecond,omitempty"`
}

// ModelDemand is the demand for one InferenceModel, by client region.
type ModelDemand struct {
	// Namespace and Name of the InferenceModel.
	// +required
	Namespace string `json:"namespace"`
	// +required
	Name string `json:"name"`
	// Regions the demand came from.
	// +optional
	// +listType=map
	// +listMapKey=region
	Regions []RegionRate `json:"regions,omitempty"`
}

// DemandReportStatus is the site's latest measurement.
type DemandReportStatus struct {
	// ObservedAt is the end of the measurement window.
	// +optional
	ObservedAt *metav1.Time `json:"observedAt,omitempty"`
	// Window is the length of the window the rates are averaged over.
	// +optional
	Window metav1.Duration `json:"window,omitzero"`
	// Models with any demand in the window.
	// +optional
	Models []ModelDemand `json:"models,omitempty"`
}

// DemandReport is one global balancer site's count of where each model's
// users are, written on the hub every report period. The hub sums the
// fresh reports of every site into the proximity-to-demand input of
// placement; a model with no fresh report falls back to
// spec.placement.demand.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=dr,categories=meridian
// +kubebuilder:printcolumn:name="Site",type=string,JSONPath=`.spec.site`
// +kubebuilder:printcolumn:name="Observed",type=date,JSONPath=`.status.observedAt`
type DemandReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec names the site.
	// +required
	Spec DemandReportSpec `json:"spec"`
	// Status is its latest measurement.
	// +optional
	Status DemandReportStatus `json:"status,omitempty"`
}

// DemandReportList is a list of DemandReports.
// +kubebuilder:object:root=true
type DemandReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DemandReport `json:"items"`
}
