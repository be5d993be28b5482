package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of these types.
var GroupVersion = schema.GroupVersion{Group: "meridian.dev", Version: "v1alpha1"}

var (
	schemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the types of this group to a scheme.
	AddToScheme = schemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Cluster{}, &ClusterList{},
		&ClusterReport{}, &ClusterReportList{},
		&InferenceModel{}, &InferenceModelList{},
		&ModelDeployment{}, &ModelDeploymentList{},
		&GlobalEndpoint{}, &GlobalEndpointList{},
		&DemandReport{}, &DemandReportList{},
		&ModelRollout{}, &ModelRolloutList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
