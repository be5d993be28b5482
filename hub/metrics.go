package hub

import (
	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/metricsreg"
)

// metrics are the hub's meridian_hub_* series; docs/hub.md lists them.
type metrics struct {
	transitions *prometheus.CounterVec
	placed      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_hub_cluster_health_transitions_total",
			Help: "Changes of a member cluster's health, by cluster and the health it changed to.",
		}, []string{"cluster", "health"}),
		placed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_hub_placed_replicas",
			Help: "Replicas the latest placement of each InferenceModel asks for, across the fleet.",
		}, []string{"namespace", "name"}),
	}
	if err := metricsreg.Register(reg, "hub", m.transitions, m.placed); err != nil {
		return nil, err
	}
	return m, nil
}
