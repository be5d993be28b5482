package main

import (
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// dashboardBuilder builds the classic dashboard JSON model, which the SDK
// marks deprecated in favour of Grafana 12's v2 resources: the classic
// model is what Grafana's file provisioning and the dashboards sidecar
// load, on every Grafana version a platform team runs.
type dashboardBuilder = dashboard.DashboardBuilder //nolint:staticcheck // the classic model on purpose (above)

// ds is the data source every panel and variable reads: the dashboard's
// datasource variable.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// win is the window of every rate() and increase() in the dashboards:
// Grafana's $__rate_interval, at least four scrape intervals.
const win = "[$__rate_interval]"

// query is one PromQL target; legend "" leaves Grafana's default.
func query(expr, legend string) *prometheus.DataqueryBuilder {
	q := prometheus.NewDataqueryBuilder().Expr(expr).Datasource(ds)
	if legend != "" {
		q = q.LegendFormat(legend)
	}
	return q
}

// panelBuilder is what every SDK panel builder has in common, so that
// each kind of panel is set up in one place.
type panelBuilder[B any] interface {
	cog.Builder[dashboard.Panel]
	Title(string) B
	Description(string) B
	Datasource(common.DataSourceRef) B
	Span(uint32) B
	Height(uint32) B
	Unit(string) B
	WithTarget(cog.Builder[variants.Dataquery]) B
}

// setup gives a panel its title, help text, unit, width (of 24) and
// height, data source and queries.
func setup[B panelBuilder[B]](b B, title, help, unit string, width, height uint32, qs []*prometheus.DataqueryBuilder) B {
	b = b.Title(title).Description(help).Unit(unit).Span(width).Height(height).Datasource(ds)
	for _, q := range qs {
		b = b.WithTarget(q)
	}
	return b
}

// graph is a time series panel, half the width.
func graph(title, help, unit string, qs ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	return setup(timeseries.NewPanelBuilder(), title, help, unit, 12, 8, qs).FillOpacity(10)
}

// stacked is a graph whose series add up (traffic split by a label).
func stacked(title, help, unit string, qs ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	return graph(title, help, unit, qs...).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
}

// single is a stat panel, a sixth of the width.
func single(title, help, unit string, q *prometheus.DataqueryBuilder) *stat.PanelBuilder {
	return setup(stat.NewPanelBuilder(), title, help, unit, 4, 4, []*prometheus.DataqueryBuilder{q}).
		GraphMode(common.BigValueGraphModeArea).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
}

// state is one value of a state timeline's series, shown as text in a
// colour.
type state struct{ value, text, color string }

// timeline is a state timeline, the full width, of series whose values
// are states.
func timeline(title, help string, q *prometheus.DataqueryBuilder, states ...state) *statetimeline.PanelBuilder {
	texts := map[string]dashboard.ValueMappingResult{}
	for _, s := range states {
		texts[s.value] = dashboard.ValueMappingResult{Text: cog.ToPtr(s.text), Color: cog.ToPtr(s.color)}
	}
	return setup(statetimeline.NewPanelBuilder(), title, help, "", 24, 8, []*prometheus.DataqueryBuilder{q}).
		Mappings([]dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: texts}}}).
		ShowValue(common.VisibilityModeNever)
}

// upDown is a state timeline of 1/0 series, shown as up and down.
func upDown(title, help string, q *prometheus.DataqueryBuilder) *statetimeline.PanelBuilder {
	return timeline(title, help, q, state{"0", "held out", "red"}, state{"1", "serving", "green"})
}

// row starts a section of a dashboard.
func row(title string) *dashboard.RowBuilder { return dashboard.NewRowBuilder(title) }

// quantiles are the percentiles the dashboards draw, p50, p95 and p99,
// from a histogram's bucket rates summed by le and the legend's labels.
func quantiles(buckets, legend string) []*prometheus.DataqueryBuilder {
	var qs []*prometheus.DataqueryBuilder
	for _, q := range []string{"0.5", "0.95", "0.99"} {
		qs = append(qs, query("histogram_quantile("+q+", "+buckets+")", strings.TrimSpace(legend+" p"+q[2:])))
	}
	return qs
}

// newDashboard starts a dashboard with the variables all three share: the
// Prometheus data source, and region.
func newDashboard(uid, title, help string) *dashboardBuilder {
	b := dashboard.NewDashboardBuilder(title) //nolint:staticcheck // the classic model: see dashboardBuilder
	return b.Uid(uid).
		Description(help).
		Tags([]string{"meridian"}).
		Refresh("30s").
		Time("now-3h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Link(dashboard.NewDashboardLinkBuilder("Meridian").Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"meridian"}).AsDropdown(true).IncludeVars(true).KeepTime(true)).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(labelVariable("region", "Region", "region"))
}

// labelVariable is a multi-value variable over the values of label,
// "All" matching every series, those without the label too.
func labelVariable(name, label, query string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(" + query + ")")}).
		Datasource(ds).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(".*")
}
