// Package inventory connects the hub to the cluster inventory of SIG
// Multicluster (sigs.k8s.io/cluster-inventory-api, ClusterProfile
// multicluster.x-k8s.io/v1alpha1), in both directions, in one namespace of
// the hub cluster (Options.Namespace, default meridian-system):
//
//   - Export publishes one ClusterProfile per Meridian Cluster, named after
//     it, labelled x-k8s.io/cluster-manager=meridian, with
//     spec.clusterManager.name "meridian". Its ControlPlaneHealthy
//     condition is True for a Ready or Degraded Cluster, False for an
//     Unreachable one and Unknown otherwise, with the reason of the
//     Cluster's Ready condition; Joined is True once the cluster's agent has
//     reported. Its properties (properties.go) give region, zone, provider,
//     location, endpoint, cost, health and capacity. The profile is owned by
//     the Cluster and deleted with it; the exporter also deletes it itself,
//     so no garbage collector is needed. A property keeps its
//     lastObservedTime while its value holds, so a heartbeat rewrites
//     nothing.
//   - Import turns every ClusterProfile of another cluster manager into a
//     Cluster that placement can choose: region from the property
//     topology.kubernetes.io/region (else Open Cluster Management's
//     region.open-cluster-management.io, else the label
//     topology.kubernetes.io/region), the profile's labels plus
//     meridian.dev/imported-from=<manager>, health from ControlPlaneHealthy
//     (True: Ready, False: Unreachable, else Unknown), capacity from
//     Meridian's capacity properties when the manager publishes them. A
//     profile that cannot be imported changes nothing and gets a Warning
//     event saying what to fix. Deleting the profile deletes the Cluster.
//
// Loops cannot form: the importer skips every profile whose spec or label
// names Meridian, and the exporter skips every imported Cluster and never
// writes a profile another manager owns.
//
// Import feeds the placement inventory only. The hub writes
// ModelDeployments into a member it has engaged, and an agent must run
// there to serve them; an imported cluster still needs both (README.md).
// Once its agent reports, the hub's own probe decides its health.
package inventory
