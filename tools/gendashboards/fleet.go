package main

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/geomap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// inRegion selects the member-side series (agents, model servers) of the
// chosen regions, by the region label their scrape adds.
const inRegion = `region=~"$region"`

func fleetDashboard() *dashboardBuilder {
	return newDashboard("meridian-fleet", "Meridian / Fleet",
		"The whole fleet: where demand comes from, which member clusters serve, traffic and replicas by region.").
		WithRow(row("Regions")).
		WithPanel(regionMap()).
		WithPanel(single("Clusters serving", "Member clusters from which at least one global balancer answers with at least one model.", "none",
			query(`count(max by (cluster) (`+recTargetUp+`) == 1) or vector(0)`, ""))).
		WithPanel(single("Clusters held out", "Member clusters no balancer answers with for any model (MeridianRegionDown fires after 2 minutes).", "none",
			query(`count(max by (cluster) (`+recTargetUp+`) == 0) or vector(0)`, ""))).
		WithPanel(single("Alerts firing", "Meridian's alerts firing now.", "none",
			query(`count(ALERTS{alertname=~"Meridian.*", alertstate="firing"}) or vector(0)`, ""))).
		WithPanel(single("Model requests/s", "Requests answered by the model servers of the chosen regions.", "reqps",
			query(`sum(rate(meridian_inference_requests_total{`+inRegion+`}`+win+`))`, ""))).
		WithPanel(single("Replicas ready", "Ready replicas across the chosen regions' ModelDeployments.", "none",
			query(`sum(meridian_agent_replicas{state="ready", `+inRegion+`})`, ""))).
		WithPanel(single("Replicas desired", "Replicas the agents' autoscalers ask for in the chosen regions.", "none",
			query(`sum(meridian_agent_replicas{state="desired", `+inRegion+`})`, ""))).
		WithRow(row("Health")).
		WithPanel(upDown("Serving, by cluster and model",
			"The global balancers' verdict on each target: serving while probes and gossip both let it (the best of all balancers).",
			query(`max by (cluster, model) (`+recTargetUp+`)`, "{{cluster}} {{model}}"))).
		WithPanel(timeline("Member health", "Each member's health as the hub judges it now (docs/hub.md, Health): Unreachable members get no new placements.",
			query(memberHealth, "{{cluster}}"),
			state{"0", "Unknown", "text"}, state{"1", "Ready", "green"}, state{"2", "Degraded", "yellow"}, state{"3", "Unreachable", "red"})).
		WithPanel(graph("Heartbeat age", "Age of the newest heartbeat the hub has read from each member, by the member's clock. A push member turns Unreachable past --heartbeat-grace (30s in production); a pull member is judged by the hub's clock instead, so a skewed clock shows here but changes nothing.", "s",
			query(`time() - max by (cluster) (meridian_hub_cluster_heartbeat_timestamp_seconds)`, "{{cluster}}"))).
		WithPanel(graph("Member health changes", "The hub's changes of each member's health, by the health it changed to (Unreachable: API server or heartbeat lost).", "none",
			query(`sum by (cluster, health) (increase(meridian_hub_cluster_health_transitions_total`+win+`))`, "{{cluster}} → {{health}}"))).
		WithPanel(graph("Agent heartbeats", "ClusterReport writes by each agent, ok or error; every agent writes one each report period (10s).", "wps",
			query(`sum by (region, instance, result) (rate(meridian_agent_report_writes_total{`+inRegion+`}`+win+`))`, "{{region}} {{instance}} {{result}}"))).
		WithPanel(graph("Hub connection (pull mode)", "1 while a pull-mode agent's last sync with the hub succeeded; refused syncs (credential revoked or expired) per second.", "none",
			query(`max by (region, instance) (meridian_agent_hub_connected{`+inRegion+`})`, "{{region}} {{instance}} connected"),
			query(`sum by (region, instance) (rate(meridian_agent_hub_syncs_total{result="refused", `+inRegion+`}`+win+`))`, "{{region}} {{instance}} refused"))).
		WithPanel(graph("Hub credential lifetime left", "Time until each pull-mode agent's hub credential expires; the agent renews it after 80% of its life.", "s",
			query(`min by (region, instance) (meridian_agent_hub_credential_expiry_timestamp_seconds{`+inRegion+`}) - time()`, "{{region}} {{instance}}"))).
		WithRow(row("Traffic")).
		WithPanel(stacked("Demand by region", "DNS queries and HTTP requests reaching the global balancers, by the fleet region nearest to the client.", "reqps",
			query(`sum by (region, source) (rate(meridian_glb_demand_total{`+inRegion+`}`+win+`))`, "{{region}} {{source}}"))).
		WithPanel(stacked("Model requests by region", "Requests answered by model servers, by the region they run in.", "reqps",
			query(`sum by (region) (rate(meridian_inference_requests_total{`+inRegion+`}`+win+`))`, "{{region}}"))).
		WithPanel(stacked("HTTP front requests by cluster", "Requests the global HTTP front sent on, by the cluster that answered (none: the front answered itself).", "reqps",
			query(`sum by (cluster) (rate(meridian_glb_http_requests_total`+win+`))`, "{{cluster}}"))).
		WithPanel(graph("Model error ratio by region", "Share of model requests answered with a 5xx.", "percentunit",
			query(`sum by (region) (rate(meridian_inference_requests_total{code=~"5..", `+inRegion+`}`+win+`)) / sum by (region) (rate(meridian_inference_requests_total{`+inRegion+`}`+win+`))`, "{{region}}"))).
		WithRow(row("Replicas")).
		WithPanel(graph("Ready and desired replicas by region", "What the agents' autoscalers ask for (desired) and what is ready, per region.", "none",
			query(`sum by (region, state) (meridian_agent_replicas{`+inRegion+`})`, "{{region}} {{state}}"))).
		WithPanel(graph("Placed replicas by InferenceModel", "Replicas the hub's latest placement of each InferenceModel asks for, across the fleet.", "none",
			query(`sum by (namespace, name) (meridian_hub_placed_replicas)`, "{{namespace}}/{{name}}"))).
		WithPanel(timeline("Placement, by InferenceModel", "Whether the hub's latest placement of each InferenceModel met its policy (condition Placed). Unsatisfied: the best placement within the hard rules is applied; its status says what could not be met (MeridianPlacementUnsatisfied fires after 5 minutes).",
			query(`max by (namespace, name) (meridian_hub_inferencemodel_placed)`, "{{namespace}}/{{name}}"),
			state{"0", "unsatisfied", "red"}, state{"1", "satisfied", "green"}))
}

// memberHealth is each member's health as one number per cluster, for
// the Member health timeline: 1 Ready, 2 Degraded, 3 Unreachable, and 0
// Unknown, the one health whose series is not among these.
const memberHealth = `max by (cluster) (
    meridian_hub_cluster_health{health="Ready"}
  or 2 * meridian_hub_cluster_health{health="Degraded"}
  or 3 * meridian_hub_cluster_health{health="Unreachable"}
)`

// regionMap is the world map: a marker on each region with demand or
// replicas, sized and coloured by its requests per second, its ready
// replicas in the tooltip. The coordinates come from the recording rules
// recLatitude and recLongitude (Meridian's table of known regions); the
// four instant queries are joined on the region label.
func regionMap() *geomap.PanelBuilder {
	active := `(group by (region) (meridian_glb_demand_total{` + inRegion + `}) or group by (region) (meridian_agent_replicas{` + inRegion + `}))`
	table := func(ref, expr string) *prometheus.DataqueryBuilder {
		return query(expr, "").Instant().Format(prometheus.PromQueryFormatTable).RefId(ref)
	}
	qs := []*prometheus.DataqueryBuilder{
		table("demand", `sum by (region) (rate(meridian_glb_demand_total{`+inRegion+`}`+win+`)) or 0 * `+active),
		table("ready", `sum by (region) (meridian_agent_replicas{state="ready", `+inRegion+`}) or 0 * `+active),
		table("latitude", recLatitude+` and on (region) `+active),
		table("longitude", recLongitude+` and on (region) `+active),
	}
	marker := map[string]any{
		"showLegend": true,
		"style": map[string]any{
			"size":       map[string]any{"field": "requests/s", "fixed": 6, "min": 6, "max": 30},
			"color":      map[string]any{"field": "requests/s", "fixed": "green"},
			"opacity":    0.6,
			"symbol":     map[string]any{"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
			"text":       map[string]any{"mode": "field", "field": "region", "fixed": ""},
			"textConfig": map[string]any{"fontSize": 12, "offsetY": -16, "textAlign": "center", "textBaseline": "bottom"},
		},
	}
	return setup(geomap.NewPanelBuilder(), "Regions",
		"Each region Meridian knows that has demand or replicas, sized and coloured by the DNS queries and HTTP requests whose clients it is nearest to; its ready replicas in the tooltip.",
		"reqps", 24, 12, qs).
		View(geomap.NewMapViewConfigBuilder().Id("zero").Lat(20).Lon(0).Zoom(1)).
		Controls(geomap.NewControlsOptionsBuilder().ShowZoom(true).MouseWheelZoom(false)).
		Tooltip(geomap.NewTooltipOptionsBuilder().Mode(geomap.TooltipModeDetails)).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdContinuousGrYlRd)).
		Basemap(common.NewMapLayerOptionsBuilder().Type("default").Name("Basemap")).
		Layers([]cog.Builder[common.MapLayerOptions]{
			common.NewMapLayerOptionsBuilder().Type("markers").Name("Regions").Config(marker).Tooltip(true).
				Location(common.NewFrameGeometrySourceBuilder().Mode(common.FrameGeometrySourceModeCoords).
					Latitude("latitude").Longitude("longitude")),
		}).
		Transformations([]dashboard.DataTransformerConfig{
			{Id: "joinByField", Options: map[string]any{"byField": "region", "mode": "inner"}},
			{Id: "organize", Options: map[string]any{
				"renameByName": map[string]any{"Value #demand": "requests/s", "Value #ready": "ready replicas", "Value #latitude": "latitude", "Value #longitude": "longitude"},
			}},
		})
}
