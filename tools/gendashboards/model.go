package main

// ofModel selects a model server's series of the chosen models and regions.
const (
	modelMatch = `model=~"$model", ` + inRegion
	ofModel    = `{` + modelMatch + `}`
)

// ofDeployment selects an agent's series of the chosen ModelDeployments.
const ofDeployment = `{name=~"$deployment", ` + inRegion + `}`

// modelRate is the per-model rate of a model server counter or histogram
// series, summed over versions, replicas and clusters.
func modelRate(metric, by string) string {
	return `sum by (` + by + `) (rate(` + metric + ofModel + win + `))`
}

func modelDashboard() *dashboardBuilder {
	const hits = "meridian_inference_cache_hits_total"
	return newDashboard("meridian-model", "Meridian / Model",
		"One model across the fleet: latency against its SLO, errors, queueing and batching, the result cache, and the agents' autoscaling.").
		WithVariable(labelVariable("model", "Model", "meridian_inference_requests_total, model")).
		WithVariable(labelVariable("deployment", "ModelDeployment", "meridian_agent_replicas, name")).
		WithRow(row("Latency")).
		WithPanel(graph("Request latency", "p50, p95 and p99 from arrival to answer, queueing included, over every replica of the chosen regions (recorded 5-minute rates). The latency SLO: p95 at most "+latencyThreshold+"s.", "s",
			quantiles(`sum by (le, model) (`+recLatencyBuckets+ofModel+`)`, "{{model}}")...)).
		WithPanel(graph("Latency SLO: slow requests", "Share of requests slower than "+latencyThreshold+"s; the objective allows "+pct(1-latencyObjective)+"%. Over 1 hour and 5 minutes, as the burn-rate alert reads them.", "percentunit",
			query(latencySLI.recorded("1h")+`{model=~"$model"}`, "{{model}} 1h"),
			query(latencySLI.recorded("5m")+`{model=~"$model"}`, "{{model}} 5m"))).
		WithPanel(graph("Queue wait", "p50, p95 and p99 of the time requests waited before their batch started.", "s",
			quantiles(modelRate("meridian_inference_queue_duration_seconds_bucket", "le, model"), "{{model}}")...)).
		WithPanel(graph("Run time per batch", "p50, p95 and p99 of ONNX Runtime's time for one batch.", "s",
			quantiles(modelRate("meridian_inference_run_duration_seconds_bucket", "le, model"), "{{model}}")...)).
		WithRow(row("Requests and errors")).
		WithPanel(stacked("Requests by status", "Answers by HTTP status code (429: shed by a full queue; 499: the client left).", "reqps",
			query(modelRate("meridian_inference_requests_total", "code"), "{{code}}"))).
		WithPanel(graph("Error SLO: 5xx ratio", "Share of requests answered with a 5xx; the objective allows "+pct(1-errorObjective)+"%. Over 1 hour and 5 minutes, as the burn-rate alert reads them.", "percentunit",
			query(errorSLI.recorded("1h")+`{model=~"$model"}`, "{{model}} 1h"),
			query(errorSLI.recorded("5m")+`{model=~"$model"}`, "{{model}} 5m"))).
		WithPanel(graph("Shed and expired", "Requests shed with 429 and requests dropped from the queue because their deadline passed or their client left.", "reqps",
			query(`sum by (model) (rate(meridian_inference_requests_total{code="429", `+modelMatch+`}`+win+`))`, "{{model}} shed"),
			query(modelRate("meridian_inference_expired_total", "model"), "{{model}} expired"))).
		WithPanel(graph("In flight", "Requests admitted and not yet answered (queued or running), summed over replicas.", "none",
			query(`sum by (model) (meridian_inference_inflight_requests`+ofModel+`)`, "{{model}}"))).
		WithRow(row("Queue and batching")).
		WithPanel(graph("Queue depth", "Requests waiting for a worker, against the queue size beyond which requests are shed (summed over replicas).", "none",
			query(`sum by (model) (meridian_inference_queue_depth`+ofModel+`)`, "{{model}} waiting"),
			query(`sum by (model) (meridian_inference_queue_capacity`+ofModel+`)`, "{{model}} capacity"))).
		WithPanel(graph("Batch size", "Rows per batch: the mean and p95 (batched models only).", "none",
			query(modelRate("meridian_inference_batch_size_sum", "model")+" / "+modelRate("meridian_inference_batch_size_count", "model"), "{{model}} mean"),
			query(`histogram_quantile(0.95, `+modelRate("meridian_inference_batch_size_bucket", "le, model")+`)`, "{{model}} p95"))).
		WithRow(row("Result cache")).
		WithPanel(graph("Cache hit ratio", "Share of cacheable requests answered from the result cache.", "percentunit",
			query(modelRate(hits, "model")+" / ("+modelRate(hits, "model")+" + "+modelRate("meridian_inference_cache_misses_total", "model")+")", "{{model}}"))).
		WithPanel(graph("Cache entries", "Entries each model server holds (one cache per server, all its models).", "none",
			query(`meridian_inference_cache_entries{`+inRegion+`}`, "{{region}} {{instance}}"))).
		WithRow(row("Autoscaling")).
		WithPanel(graph("Desired and ready replicas", "What each agent's autoscaler decided (desired) and what is ready, per ModelDeployment and region.", "none",
			query(`sum by (namespace, name, region, state) (meridian_agent_replicas`+ofDeployment+`)`, "{{region}} {{namespace}}/{{name}} {{state}}"))).
		WithPanel(stacked("Scaling decisions", "Changes of the replica count, by the autoscaler's reason.", "none",
			query(`sum by (reason) (increase(meridian_agent_scale_decisions_total`+ofDeployment+win+`))`, "{{reason}}"))).
		WithPanel(graph("Burst mode and restarts", "1 while an autoscaler is in burst (panic) mode; restarts of the current replicas.", "none",
			query(`max by (namespace, name, region) (meridian_agent_burst_mode`+ofDeployment+`)`, "{{region}} {{name}} burst"),
			query(`sum by (namespace, name, region) (meridian_agent_replica_restarts`+ofDeployment+`)`, "{{region}} {{name}} restarts"))).
		WithPanel(graph("Cold starts", "Requests the activator holds at zero ready replicas, cold-start p95, and requests it rejected.", "none",
			query(`sum by (name) (meridian_agent_activator_held_requests`+ofDeployment+`)`, "{{name}} held"),
			query(`histogram_quantile(0.95, sum by (le, name) (rate(meridian_agent_activator_cold_start_seconds_bucket`+ofDeployment+win+`)))`, "{{name}} cold start p95 (s)"),
			query(`sum by (name, reason) (rate(meridian_agent_activator_rejected_total`+ofDeployment+win+`))`, "{{name}} rejected {{reason}}")))
}
