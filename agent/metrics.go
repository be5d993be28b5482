package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"meridian.dev/meridian/internal/metricsreg"
)

// metrics are the agent's meridian_agent_* series; docs/agent.md lists them.
type metrics struct {
	replicas  *prometheus.GaugeVec
	restarts  *prometheus.GaugeVec
	decisions *prometheus.CounterVec
	burst     *prometheus.GaugeVec
	reports   *prometheus.CounterVec
	// versionRequests and versionLatency are what each cluster front
	// sent each version (process runtime).
	versionRequests *prometheus.CounterVec
	versionLatency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	md := []string{"namespace", "name"}
	m := &metrics{
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_agent_replicas",
			Help: "Replicas of each ModelDeployment by state: desired (the autoscaler's decision) or ready.",
		}, append(md, "state")),
		restarts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_agent_replica_restarts",
			Help: "Restarts of the current replicas of each ModelDeployment (process runtime).",
		}, md),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_agent_scale_decisions_total",
			Help: "Replica count changes, by the autoscaler's reason (ScaleUp, ScaleDown, BurstScaleUp, AtMin, ...).",
		}, append(md, "reason")),
		burst: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_agent_burst_mode",
			Help: "1 while a ModelDeployment's autoscaler is in burst (panic) mode.",
		}, md),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_agent_report_writes_total",
			Help: "ClusterReport writes, by result (ok or error).",
		}, []string{"result"}),
		versionRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_agent_version_requests_total",
			Help: "Requests the cluster's front sent each model version, by the version that answered and the HTTP status the client got (process runtime).",
		}, append(md, "version", "code")),
		versionLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meridian_agent_version_request_duration_seconds",
			Help:    "Time from a request's body to its answer at the cluster's front, by the version that answered (process runtime).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, append(md, "version")),
	}
	if err := metricsreg.Register(reg, "agent", m.replicas, m.restarts, m.decisions, m.burst, m.reports, m.versionRequests, m.versionLatency); err != nil {
		return nil, err
	}
	return m, nil
}

// forget drops the series of a ModelDeployment that is gone.
func (m *metrics) forget(key types.NamespacedName) {
	l := prometheus.Labels{"namespace": key.Namespace, "name": key.Name}
	m.replicas.DeletePartialMatch(l)
	m.restarts.DeletePartialMatch(l)
	m.burst.DeletePartialMatch(l)
	m.versionRequests.DeletePartialMatch(l)
	m.versionLatency.DeletePartialMatch(l)
}
