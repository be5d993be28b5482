package main

// ofBalancer selects the global balancers' series of the chosen instances.
const ofBalancer = `{instance=~"$instance"}`

func balancerDashboard() *dashboardBuilder {
	sumRate := func(metric, by string) string {
		return `sum by (` + by + `) (rate(` + metric + ofBalancer + win + `))`
	}
	return newDashboard("meridian-balancer", "Meridian / Global balancer",
		"The global balancers: DNS answers, the HTTP front, the health probes and the gossip pool they steer by.").
		WithVariable(labelVariable("instance", "Balancer", `meridian_glb_dns_requests_total, instance`)).
		WithRow(row("DNS")).
		WithPanel(stacked("DNS queries by type", "Queries received, by query type and transport.", "reqps",
			query(sumRate("meridian_glb_dns_requests_total", "type, proto"), "{{type}} {{proto}}"))).
		WithPanel(stacked("DNS responses by rcode", "Responses sent, by response code (NXDOMAIN: a name outside the endpoints; SERVFAIL: steering failed).", "reqps",
			query(sumRate("meridian_glb_dns_responses_total", "rcode"), "{{rcode}}"))).
		WithPanel(stacked("DNS answers by client region", "Queries for each GlobalEndpoint's model, by the fleet region nearest to the client (the region the answer steers toward first).", "reqps",
			query(`sum by (region, model) (rate(meridian_glb_demand_total{source="dns", `+inRegion+`, instance=~"$instance"}`+win+`))`, "{{region}} {{model}}"))).
		WithPanel(graph("DNS answer time", "p50, p95 and p99 of the time to build one response.", "s",
			quantiles(sumRate("meridian_glb_dns_request_duration_seconds_bucket", "le"), "")...)).
		WithPanel(graph("Rate limiting and truncation", "UDP responses withheld by response rate limiting, and UDP responses sent truncated (TC).", "reqps",
			query(sumRate("meridian_glb_dns_rrl_dropped_total", "instance"), "{{instance}} RRL"),
			query(sumRate("meridian_glb_dns_truncated_total", "instance"), "{{instance}} truncated"))).
		WithRow(row("Probes and health")).
		WithPanel(upDown("Targets by source",
			"Each balancer's per-source verdict on each target: probe (its own HTTP health checks) and gossip (the agents' pool). A target is answered only while every source says serving.",
			query(`min by (cluster, model, source) (meridian_glb_target_up`+ofBalancer+`)`, "{{cluster}} {{model}} {{source}}"))).
		WithPanel(graph("Targets held out", "Targets some source holds out now, by source.", "none",
			query(`count by (source) (meridian_glb_target_up`+ofBalancer+` == 0)`, "{{source}}"))).
		WithPanel(stacked("Taken out by gossip", "Times gossip took a target out, by reason: dead (a cluster's agent; all its models) or unready (one model).", "none",
			query(`sum by (reason) (increase(meridian_glb_gossip_marked_down_total`+ofBalancer+win+`))`, "{{reason}}"))).
		WithRow(row("Gossip")).
		WithPanel(stacked("Pool members as the balancers see them", "Other members of the gossip pool (agents, other balancers) by status.", "none",
			query(`max by (state) (meridian_glb_gossip_peers`+ofBalancer+`)`, "{{state}}"))).
		WithPanel(graph("Pool members as each agent sees them", "Members by status, from each agent (alive includes the agent itself).", "none",
			query(`sum by (instance, state) (meridian_gossip_members{`+inRegion+`})`, "{{instance}} {{state}}"))).
		WithPanel(stacked("Membership events", "Joins, leaves, updates and suspicions seen by every node of the pool.", "none",
			query(`sum by (event) (increase(meridian_gossip_events_total`+win+`))`, "{{event}}"))).
		WithPanel(graph("Probe round trip and rejected payloads", "p99 round trip of successful direct gossip probes, and payloads rejected unread by reason.", "s",
			query(`histogram_quantile(0.99, sum by (le, instance) (rate(meridian_gossip_probe_rtt_seconds_bucket`+win+`)))`, "{{instance}} p99 rtt"),
			query(`sum by (reason) (rate(meridian_gossip_rejected_total`+win+`))`, "rejected {{reason}} (/s)"))).
		WithRow(row("HTTP front")).
		WithPanel(stacked("Front requests by cluster and status", "Requests answered through the front, by the cluster that answered (none: the front itself) and status class.", "reqps",
			query(`sum by (cluster, class) (label_replace(rate(meridian_glb_http_requests_total`+ofBalancer+win+`), "class", "${1}xx", "code", "([0-9]).."))`, "{{cluster}} {{class}}"))).
		WithPanel(stacked("Retries by reason", "Extra copies of requests sent to another cluster: after a connection error, a timeout, a 429/502/503/504, or as a hedge.", "reqps",
			query(sumRate("meridian_glb_http_retries_total", "reason"), "{{reason}}"))).
		WithPanel(graph("Front failures", "Share of requests the front answered itself with a 5xx (no cluster could take them), and the retry ratio.", "percentunit",
			query(`sum(rate(meridian_glb_http_requests_total{cluster="none", code=~"5..", instance=~"$instance"}`+win+`)) / sum(rate(meridian_glb_http_requests_total`+ofBalancer+win+`))`, "failed"),
			query(`sum(rate(meridian_glb_http_retries_total`+ofBalancer+win+`)) / sum(rate(meridian_glb_http_requests_total`+ofBalancer+win+`))`, "retried"))).
		WithPanel(graph("Front latency", "p50, p95 and p99 from receiving a request to the end of its response, retries included.", "s",
			quantiles(sumRate("meridian_glb_http_request_duration_seconds_bucket", "le"), "")...)).
		WithPanel(graph("Outstanding requests and ejections", "Requests sent to each cluster and not yet finished, and clusters ejected for consecutive failures.", "none",
			query(`sum by (cluster) (meridian_glb_http_outstanding`+ofBalancer+`)`, "{{cluster}} outstanding"),
			query(`sum by (cluster) (increase(meridian_glb_http_ejections_total`+ofBalancer+win+`))`, "{{cluster}} ejected")))
}
