package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterReportName is the name of the one ClusterReport in each member.
const ClusterReportName = "local"

// ClusterReportStatus is the agent's latest report.
type ClusterReportStatus struct {
	// Heartbeat is when the agent last wrote the report.
	// +optional
	Heartbeat *metav1.Time `json:"heartbeat,omitempty"`
	// Capacity of the cluster, and what the cluster autoscaler can add.
	// +optional
	Capacity Capacity `json:"capacity,omitempty"`
	// Models running in the cluster and their load.
	// +optional
	Models []ModelLoad `json:"models,omitempty"`
	// Conditions of the agent itself.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterReport is a member cluster's report of itself, written by its
// agent: a singleton named "local". On the hub, a pull member's agent
// keeps a copy named "member.<member>" (hub/membership).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=crep,categories=meridian
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'local' || self.metadata.name.startsWith('member.')",message="the ClusterReport is a singleton named local (on the hub, a pull member's is member.<name>)"
// +kubebuilder:printcolumn:name="Region",type=string,JSONPath=`.spec.region`
// +kubebuilder:printcolumn:name="Heartbeat",type=date,JSONPath=`.status.heartbeat`
type ClusterReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the cluster's identity.
	// +required
	Spec ClusterIdentity `json:"spec"`
	// Status is its capacity and load.
	// +optional
	Status ClusterReportStatus `json:"status,omitempty"`
}

// ClusterReportList is a list of ClusterReports.
// +kubebuilder:object:root=true
type ClusterReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterReport `json:"items"`
}
