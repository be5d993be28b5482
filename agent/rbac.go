package agent

// What the agent reads and writes on its own cluster (the kubernetes
// runtime), as RBAC markers: `make generate` turns them into
// charts/meridian/files/rbac/agent/role.yaml with controller-gen, and the Helm
// chart grants exactly those rules to the agent's ServiceAccount. Change
// them with the code that needs them. This file holds nothing but markers
// and imports nothing: make generate reads it alone. Every type the agent
// reads through its manager's cache needs list and watch across the
// cluster.
//
// ModelDeployments (agent.go, kubernetes.go): reconciled, their status
// written; finalizers because the owner references of the objects made
// for them set blockOwnerDeletion. In pull mode (hubsync) the agent itself
// writes the ModelDeployments it pulls from the hub, and their namespaces.
// +kubebuilder:rbac:groups=meridian.dev,resources=modeldeployments,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=meridian.dev,resources=modeldeployments/status,verbs=patch
// +kubebuilder:rbac:groups=meridian.dev,resources=modeldeployments/finalizers,verbs=update
//
// The ClusterReport "local" (report.go): the heartbeat the hub reads.
// +kubebuilder:rbac:groups=meridian.dev,resources=clusterreports,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=meridian.dev,resources=clusterreports/status,verbs=patch
//
// The replicas (kube/apply.go, adopt.go, warm.go, zero.go): a Deployment,
// Service and HPA per model, the warm buffer's placeholder Deployment and
// PriorityClass, the activator's EndpointSlices while a model is at zero.
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=scheduling.k8s.io,resources=priorityclasses,verbs=get;list;watch;create
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch
//
// Capacity (kube/capacity.go, nodepool.go): nodes and pods measured,
// Karpenter's NodePools and NodeClaims listed where it runs.
// +kubebuilder:rbac:groups="",resources=nodes;pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=karpenter.sh,resources=nodepools;nodeclaims,verbs=list
//
// The metrics API for the HPAs (metricsapi): registered with server-side
// apply (namespace meridian-system, Service meridian-metrics and its
// EndpointSlice, covered above, and the APIServices), and serving with
// delegated authentication and authorization.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;create;patch
// +kubebuilder:rbac:groups=apiregistration.k8s.io,resources=apiservices,verbs=get;create;patch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups="",namespace=kube-system,resources=configmaps,resourceNames=extension-apiserver-authentication,verbs=get;list;watch
//
// Pull membership: the join bundle's Secret and the credential it is
// exchanged for, in the agent's namespace (create cannot be limited by
// name in RBAC).
// +kubebuilder:rbac:groups="",namespace=meridian-system,resources=secrets,resourceNames=meridian-hub-join;meridian-hub-credential,verbs=get;update
// +kubebuilder:rbac:groups="",namespace=meridian-system,resources=secrets,verbs=create
