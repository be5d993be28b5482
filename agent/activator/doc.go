// Package activator lets a model scaled to zero replicas still answer: it
// holds the model's requests while the agent asks for a replica, then
// proxies them to the first replica that answers — Knative's activator,
// for the agent's kubernetes runtime.
//
// Each model gets a listener of its own on Options.Host; the agent
// publishes it as an extra EndpointSlice of the model's Service, so every
// Service implementation (kube-proxy, a cloud load balancer, the local
// fleet's balancer) sends the model's connections to the activator while
// no replica is ready, and the agent removes that slice once the Service's
// own endpoints are ready again.
//
// A request that finds a ready replica (Kubernetes says so, or the
// activator's own probe of Options.ReadyPath does) is proxied at once.
// Otherwise it is held, and the first held request starts a cold start:
// Target.Activate asks for a replica at once (not at the next sync), and
// every Options.ProbeInterval the activator lists the model's pods
// (Target.Backends) and probes those Kubernetes does not count ready yet
// — the kubelet's readiness probe runs only every few seconds, the
// activator's every 100ms. The first replica that answers gets every held
// request. Holding is bounded:
//
//   - Options.QueueLimit (default 100) requests per model; one more is
//     answered 503 with Retry-After at once;
//   - Options.HoldTimeout (default 2 minutes) per request; then 503 with
//     Retry-After.
//
// Both 503s carry a JSON body that says which limit was reached. A
// request that was held carries the header X-Meridian-Activator-Held with
// the seconds it waited.
//
// Health probes are not traffic. A GET or HEAD of `meridian serve`'s
// health paths (/v2/health/ready, /v2/health/live, and Options.ReadyPath)
// is proxied to a ready replica when there is one; without one the
// activator answers it itself, 200 with the header
// X-Meridian-Scaled-To-Zero: true and a JSON body that says requests are
// held until a replica is ready. Such a probe starts no cold start and is
// not the model's last request (LastRequest), so a global balancer that
// probes the model's address keeps it in its answers without keeping it
// awake.
//
// Metrics (labels namespace and name of the ModelDeployment):
//
//   - meridian_agent_activator_held_requests (gauge): requests held now;
//   - meridian_agent_activator_cold_starts_total (counter): cold starts
//     that ended with a ready replica;
//   - meridian_agent_activator_cold_start_seconds (histogram): from the
//     first held request to a ready replica;
//   - meridian_agent_activator_rejected_total{reason} (counter): 503s,
//     reason queue_full or timeout.
package activator
