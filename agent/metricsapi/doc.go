// Package metricsapi is the agent's metrics adapter: it serves
// custom.metrics.k8s.io (v1beta2 and v1beta1) and external.metrics.k8s.io
// (v1beta1) through the Kubernetes aggregation layer, so that the
// cluster's own HorizontalPodAutoscaler scales model replicas on
// Meridian's metrics. It is built on sigs.k8s.io/custom-metrics-apiserver.
//
// # Values
//
// Per pod (custom.metrics.k8s.io, resource pods, HPA metric type Pods):
// requests_per_second, p95_latency_seconds and queue_length (names in
// PodsMetrics). External (external.metrics.k8s.io, HPA metric type
// External): queue_length per ModelDeployment — the sum over its fresh
// pods, labelled modeldeployment=<name> and model=<model>, so an HPA
// selects one with matchLabels. gpu_utilization is not served: `meridian
// serve` exports no GPU metric.
//
// The values come from the replicas themselves. Every period (default
// 5s) a Scraper lists the ready pods labelled
// app.kubernetes.io/name=meridian-model, reads each one's /metrics at its
// pod IP and container port named http (default 8000), and keeps per pod:
// the request rate from the increase of meridian_inference_requests_total
// between its last two scrapes, the p95 from the increase of the
// meridian_inference_request_duration_seconds histogram over the same
// interval (interpolated as PromQL's histogram_quantile does), and the
// current meridian_inference_queue_depth — the same computation, with
// agent/process's Scraper, as the process runtime's autoscaler. A pod's
// rates need two scrapes; a pod that answered nothing has no p95; a pod
// whose last scrape failed, or whose last good scrape is older than three
// periods, is left out, which the HPA handles as a missing metric.
// Source is the seam for other feeds.
//
// # Registration
//
// The agent may run outside the cluster (the local fleet runs it as a host
// process), so it registers its own address: with server-side apply
// (field manager meridian-agent-metricsapi) it writes namespace
// meridian-system, a selector-less Service meridian-metrics (port 443 to
// the adapter's port), an EndpointSlice for that Service with the
// advertised IP (never loopback: the API server rejects loopback
// endpoints), and the APIServices v1beta2.custom.metrics.k8s.io,
// v1beta1.custom.metrics.k8s.io and v1beta1.external.metrics.k8s.io with
// the caBundle of a CA generated at start, which signed the adapter's
// serving certificate for meridian-metrics.meridian-system.svc. The
// registration is applied again every minute and left in place when the
// agent stops. The API server must run with the aggregation layer set up
// (--requestheader-* and --proxy-client-* flags) and, where no kube-proxy
// routes Service IPs, --enable-aggregator-routing=true; only one
// custom-metrics adapter can own each APIService in a cluster.
//
// Requests from the aggregator are authenticated by delegation: the
// front-proxy client certificate against the requestheader CA in
// kube-system/extension-apiserver-authentication, bearer tokens with
// TokenReviews, and authorized with SubjectAccessReviews. The agent's
// identity therefore needs, besides the kube runtime's permissions: the
// ClusterRole system:auth-delegator, the Role
// extension-apiserver-authentication-reader in kube-system, and
// get/create/patch on namespaces, services, endpointslices
// (discovery.k8s.io) and apiservices (apiregistration.k8s.io). The HPA
// controller's identity needs get on the metrics (the
// custom-metrics-reader / external-metrics-reader roles usual for
// adapters).
//
// # Metrics
//
// On the agent's registry (its --metrics-addr):
//
//   - meridian_agent_metricsapi_pods{state} (gauge): ready replica pods at
//     the last scrape, served or left_out (unscrapable).
//   - meridian_agent_metricsapi_scrape_errors_total (counter): pod scrapes
//     that failed.
//   - meridian_agent_metricsapi_scrape_duration_seconds (histogram): time
//     to list and scrape every selected pod once.
//   - meridian_agent_metricsapi_requests_total{api,result} (counter):
//     metric reads through the aggregation layer, api custom or external,
//     result ok, empty (no pod or ModelDeployment has a value) or error
//     (a metric the adapter does not serve).
//   - meridian_agent_metricsapi_registrations_total{result} (counter):
//     applications of the registration, ok or error.
package metricsapi
