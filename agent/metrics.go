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
	}
	if err := metricsreg.Register(reg, "agent", m.replicas, m.restarts, m.decisions, m.burst, m.reports); err != nil {
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
}
