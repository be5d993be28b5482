// Package v1alpha1 is Meridian's API, group meridian.dev, version v1alpha1:
//
//   - InferenceModel (hub, namespaced): a model declared once for the fleet.
//   - ModelDeployment (member cluster, namespaced): what the hub asks of one
//     cluster; the agent reconciles it.
//   - ClusterReport (member cluster, cluster-scoped singleton named
//     "local"): capacity, load and heartbeat, written by the agent.
//   - Cluster (hub, cluster-scoped): one member cluster, with the hub's
//     copy of its ClusterReport and the health the hub judges from it.
//   - GlobalEndpoint (hub, namespaced): a public DNS name bound to a model,
//     with its steering policy; its status is reserved (nothing writes it).
//   - DemandReport (hub, cluster-scoped): one global balancer site's
//     demand per model and region, which placement follows.
//
// Fields that are accepted but not acted on yet say so in their comments:
// InferenceModel spec.versions and spec.traffic on the kubernetes runtime,
// and spec.slo; ModelSource.Repository on the kubernetes runtime; Cluster spec.kubeconfigSecret; GlobalEndpoint status and its
// targets' weights.
//
// The CRD YAML in crds/manifests is generated from these types by
// controller-gen (`make generate`), with the validation and defaults their
// markers declare.
//
// +kubebuilder:object:generate=true
// +groupName=meridian.dev
package v1alpha1
