package hub

// What the hub reads and writes on the hub cluster, as RBAC markers:
// `make generate` turns them into charts/meridian/files/rbac/hub/role.yaml with
// controller-gen, and the Helm chart grants exactly those rules to the
// hub's ServiceAccount. Change them with the code that needs them. This file holds nothing but
// markers and imports nothing: make generate reads it alone.
//
// What the hub does in a push member (through the kubeconfig in the
// member's Secret) is not here: the chart's agent creates that ClusterRole
// on the member (agent.membership.push.hubAccess), and
// charts/meridian/README.md explains it.
//
// InferenceModels: watched and placed; the finalizer is added and removed
// with an update; placement, readiness and demand go into the status.
// +kubebuilder:rbac:groups=meridian.dev,resources=inferencemodels,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=meridian.dev,resources=inferencemodels/status,verbs=patch
//
// Clusters: one per member, created on engagement, identity updated,
// health and capacity patched into the status; imported ones
// (hub/inventory) deleted with their ClusterProfile.
// +kubebuilder:rbac:groups=meridian.dev,resources=clusters,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=meridian.dev,resources=clusters/status,verbs=patch
//
// DemandReports: the balancers' counts of where the users are, summed.
// +kubebuilder:rbac:groups=meridian.dev,resources=demandreports,verbs=get;list;watch
//
// Push members: their kubeconfig Secrets, in --members-namespace (the
// manager's cache watches Secrets there only).
// +kubebuilder:rbac:groups="",namespace=meridian-system,resources=secrets,verbs=get;list;watch
//
// Pull members (hub/membership): each is a namespace labelled
// meridian.dev/member, where the hub writes the member's ModelDeployments
// and reads its ClusterReport.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=meridian.dev,resources=modeldeployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=meridian.dev,resources=clusterreports,verbs=get;list;watch
//
// The cluster inventory (hub/inventory, --export-cluster-profiles and
// --import-cluster-profiles): ClusterProfiles in --cluster-profile-namespace.
// +kubebuilder:rbac:groups=multicluster.x-k8s.io,namespace=meridian-system,resources=clusterprofiles,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=multicluster.x-k8s.io,namespace=meridian-system,resources=clusterprofiles/status,verbs=patch
//
// ModelRollouts: watched and moved into the regions wave by wave, step
// by step (the rollout controller, hub/rollout*.go; the finalizer with an
// update, waves, verdicts and phase into the status); the fleet page
// (--page-listen) lists them beside the Clusters and InferenceModels.
// +kubebuilder:rbac:groups=meridian.dev,resources=modelrollouts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=meridian.dev,resources=modelrollouts/status,verbs=get;list;watch;update;patch
//
// Leader election between the hub's replicas (the Lease meridian-hub).
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=meridian-system,resources=leases,verbs=get;create;update
//
// Events: a change of leader and the inventory's work (in
// meridian-system), and each ModelRollout's progress and verdicts (in the
// rollout's own namespace, hence everywhere).
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch
