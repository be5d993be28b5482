// Package hub is Meridian's fleet control plane (`meridian hub`): a
// sigs.k8s.io/multicluster-runtime manager that engages every member
// cluster its provider finds, reads each member's ClusterReport to decide
// its health (Ready, Degraded, Unreachable) into a Cluster object on the
// hub, places every InferenceModel with hub/placement, writes a
// ModelDeployment into each chosen member (make-before-break when the
// placement moves), and rolls the members' readiness up into the
// InferenceModel's status. Nothing is deleted from a member the hub cannot
// reach. docs/hub.md is the user-facing reference.
package hub
