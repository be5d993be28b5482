package glb

// What the global balancer reads and writes on the hub cluster, as RBAC
// markers: `make generate` turns them into
// charts/meridian/files/rbac/glb/role.yaml with controller-gen, and the Helm
// chart grants exactly those rules to the balancer's ServiceAccount.
// Change them with the code that needs them. This file holds nothing but
// markers and imports nothing: make generate reads it alone.
//
// The snapshot (snapshot.go): GlobalEndpoints and Clusters, listed every
// --refresh-period without a cache.
// +kubebuilder:rbac:groups=meridian.dev,resources=globalendpoints;clusters,verbs=list
//
// Demand (demand.go): this site's DemandReport, created once and its
// status patched every --demand-period.
// +kubebuilder:rbac:groups=meridian.dev,resources=demandreports,verbs=get;create
// +kubebuilder:rbac:groups=meridian.dev,resources=demandreports/status,verbs=patch
