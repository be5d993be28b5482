// Package kube is the Meridian agent's `kubernetes` runtime and its view of
// the cluster's capacity.
//
// Apply turns one ModelDeployment into the Kubernetes objects that serve it:
// an apps/v1 Deployment whose pods run `meridian serve`, a Service in front
// of them (type LoadBalancer by default, whose address is the model's
// endpoint; Options.ServiceType), and an autoscaling/v2
// HorizontalPodAutoscaler that the cluster's own HPA controller acts on,
// on CPU and memory (metrics-server) and on ServedPodsMetrics (the
// agent's metrics adapter, agent/metricsapi). All three are named after the
// ModelDeployment, carry the labels in Labels, and are controlled by it
// (owner references), so deleting the ModelDeployment lets the garbage
// collector delete them. Apply is idempotent: it reads what exists, changes
// only the fields it owns, and writes nothing when they already match. It
// returns the Status it read back: replicas, ready and desired replicas,
// replicas no node can take yet, and the endpoint (the load balancer's
// address once it has one, the in-cluster URL until then).
//
// With spec.adopt, Apply creates nothing and takes over a Deployment (and
// optionally a Service and a HorizontalPodAutoscaler) the user made: it
// labels them (AdoptedByLabel), never rewrites the pod template, sets the
// HPA's replica range, sets no owner references (deleting the
// ModelDeployment leaves them), and returns Status.Adopted and
// Status.Diagnoses: what keeps the objects from working as written, such as
// a CPU-utilization HPA over containers without CPU requests (Diagnose).
// ServedPodsMetrics are the per-pod metric names Meridian's metrics adapter
// serves, and all that the agent's own HPAs ask for.
//
// GPU replicas request `nvidia.com/gpu`, select the GPU product with the node
// label `nvidia.com/gpu.product`, and tolerate the `nvidia.com/gpu` NoSchedule
// taint that GPU node pools usually carry, so that pods which fit nowhere
// stay Pending and the real Cluster Autoscaler adds a node for them.
//
// MeasureCapacity reads nodes, pods and the Cluster Autoscaler's status
// ConfigMap and reports a v1alpha1.Capacity: CPU, memory and GPUs by product
// that nodes offer and that are still free, GPUs that pending pods wait for,
// and GPUs that the Cluster Autoscaler can still add, given the GPUs per node
// of each node group (CapacityOptions.NodeGroups). ParseAutoscalerStatus reads
// both formats the Cluster Autoscaler has written into that ConfigMap.
//
// Permissions the agent needs for this package: get, list, watch, create,
// update and delete on deployments (apps), services, and
// horizontalpodautoscalers (autoscaling); get, list and watch on pods and
// nodes; get on configmaps in kube-system; list on nodepools and
// nodeclaims (karpenter.sh) where Karpenter is installed; create, update
// and delete on endpointslices (discovery.k8s.io) for the activator of
// models that scale to zero; get and create on priorityclasses
// (scheduling.k8s.io) for the warm buffer's PriorityClass; and update on
// modeldeployments/finalizers (meridian.dev), because the owner references
// set blockOwnerDeletion.
package kube
