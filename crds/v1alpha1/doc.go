// Package v1alpha1 is Meridian's API, group meridian.dev, version v1alpha1:
//
//   - InferenceModel (hub, namespaced): a model declared once for the fleet.
//   - ModelDeployment (member cluster, namespaced): what the hub asks of one
//     cluster; the agent reconciles it.
//   - ClusterReport (member cluster, cluster-scoped singleton named
//     "local"): capacity, load and heartbeat, written by the agent.
//   - Cluster (hub, cluster-scoped): one member cluster and its mirrored
//     report and health.
//   - GlobalEndpoint (hub, namespaced): a public DNS name bound to a model,
//     with its steering policy.
//
// The CRD YAML in crds/manifests is generated from these types by
// controller-gen (`make generate`), with the validation and defaults their
// markers declare.
//
// +kubebuilder:object:generate=true
// +groupName=meridian.dev
package v1alpha1
