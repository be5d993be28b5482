// Package autoscaler decides how many replicas of a model to run, with the
// algorithm of the Kubernetes HorizontalPodAutoscaler plus a Knative-style
// burst (panic) mode for sudden spikes. The agent's process runtime feeds it
// one Input per tick — the ModelDeployment's v1alpha1.Autoscaling spec, the
// current replica count and one Sample per replica (CPU and memory as percent
// of request, requests per second, queue length, p95 latency) — and applies
// the Decision it returns: the desired replica count, a typed Reason (fit
// for a Kubernetes Event reason or a low-cardinality Prometheus label) and a
// message naming the metric that drove it. The maths follow kube-controller-manager's
// pkg/controller/podautoscaler (replica_calculator.go and horizontal.go):
// per-metric usage ratios with a tolerance band, Kubernetes' handling of
// replicas that are unready or report no metric, the largest proposal across
// metrics, stabilization windows over past recommendations, and scale-up and
// scale-down rate policies (HPAScalingRules) applied against a history of
// scale events, with the same defaults. The package does no I/O and reads no
// clock: time comes in as Input.Now, so every rule is testable by table.
// An Autoscaler keeps the recommendation and scale-event history that the
// windows and policies need; use one per ModelDeployment.
package autoscaler
