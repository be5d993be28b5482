package hub

import (
	"github.com/prometheus/client_golang/prometheus"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/metricsreg"
)

// metrics are the hub's meridian_hub_* series; docs/hub.md lists them.
type metrics struct {
	transitions *prometheus.CounterVec
	placed      *prometheus.GaugeVec
	satisfied   *prometheus.GaugeVec
	health      *prometheus.GaugeVec
	heartbeat   *prometheus.GaugeVec
}

// healths are the values of meridian_hub_cluster_health's health label.
var healths = []v1.ClusterHealth{v1.HealthUnknown, v1.HealthReady, v1.HealthDegraded, v1.HealthUnreachable}

// setHealth makes health the one series of cluster at 1.
func (m *metrics) setHealth(cluster string, health v1.ClusterHealth) {
	for _, h := range healths {
		v := 0.0
		if h == health {
			v = 1
		}
		m.health.WithLabelValues(cluster, string(h)).Set(v)
	}
}

// forgetCluster drops a disengaged member's series.
func (m *metrics) forgetCluster(cluster string) {
	m.health.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
	m.heartbeat.DeleteLabelValues(cluster)
}

// forgetModel drops a deleted InferenceModel's series.
func (m *metrics) forgetModel(namespace, name string) {
	m.placed.DeleteLabelValues(namespace, name)
	m.satisfied.DeleteLabelValues(namespace, name)
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
		satisfied: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_hub_inferencemodel_placed",
			Help: "1 when the latest placement of an InferenceModel satisfied its policy (condition Placed True), 0 when it did not (Unsatisfiable: see its status).",
		}, []string{"namespace", "name"}),
		health: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_hub_cluster_health",
			Help: "1 for a member cluster's current health (Unknown, Ready, Degraded, Unreachable), 0 for the others.",
		}, []string{"cluster", "health"}),
		heartbeat: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_hub_cluster_heartbeat_timestamp_seconds",
			Help: "The heartbeat in the member's report the hub last read (Unix seconds, by the member's clock: the agent's heartbeat for push members, the time of its last sync for pull members).",
		}, []string{"cluster"}),
	}
	if err := metricsreg.Register(reg, "hub", m.transitions, m.placed, m.satisfied, m.health, m.heartbeat); err != nil {
		return nil, err
	}
	return m, nil
}
