package hub

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub/membership"
)

// member is one engaged member cluster and what the hub last saw of it.
type member struct {
	name     string
	cluster  cluster.Cluster
	failures int // consecutive failed probes
	health   v1.ClusterHealth
	// pull members: their report's last resourceVersion and when the hub
	// saw it change, by its own clock (members' clocks may be skewed).
	pull       bool
	lastRV     string
	lastChange time.Time
}

// members tracks the clusters multicluster-runtime engages; it is the
// manager's multicluster.Aware runnable.
type members struct {
	h  *Hub
	mu sync.Mutex
	m  map[string]*member
}

var _ multicluster.Aware = (*members)(nil)

// Engage is called by the multicluster manager for each member cluster
// its provider finds; ctx ends when the cluster is disengaged.
func (ms *members) Engage(ctx context.Context, name multicluster.ClusterName, cl cluster.Cluster) error {
	m := &member{name: string(name), cluster: cl, health: v1.HealthUnknown, pull: membership.IsPull(cl), lastChange: time.Now()}
	ms.seed(ctx, m)
	seeded := m.health // once m is in the map, the probe loop owns it
	ms.mu.Lock()
	ms.m[string(name)] = m
	ms.mu.Unlock()
	ms.h.log.Info("member cluster engaged", "cluster", name, "health", seeded)
	go func() {
		<-ctx.Done()
		ms.mu.Lock()
		if m := ms.m[string(name)]; m != nil && m.cluster == cl {
			delete(ms.m, string(name))
			ms.h.metrics.forgetCluster(string(name))
		}
		ms.mu.Unlock()
		ms.h.log.Info("member cluster disengaged", "cluster", name)
	}()
	return nil
}

// seed starts a member's health where its Cluster status left it, so a
// restarted hub needs as many failed probes as a running one to call a
// Ready member Unreachable, and keeps an Unreachable one so until a probe
// succeeds.
func (ms *members) seed(ctx context.Context, m *member) {
	c := &v1.Cluster{}
	if err := ms.h.mgr.GetLocalManager().GetAPIReader().Get(ctx, client.ObjectKey{Name: m.name}, c); err != nil {
		if !apierrors.IsNotFound(err) {
			ms.h.log.Warn("reading the Cluster of a member to seed its health; starting from Unknown", "cluster", m.name, "err", err)
		}
		return
	}
	m.health = cmp.Or(c.Status.Health, v1.HealthUnknown)
	if m.health == v1.HealthUnreachable {
		m.failures = ms.h.opts.FailureThreshold
	}
}

func (ms *members) list() []*member {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make([]*member, 0, len(ms.m))
	for _, m := range ms.m {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *member) int { return compare(a.name, b.name) })
	return out
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Start probes every member each HealthPeriod until ctx ends.
func (ms *members) Start(ctx context.Context) error {
	t := time.NewTicker(ms.h.opts.HealthPeriod)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, m := range ms.list() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ms.probe(ctx, m)
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// probe reads the member's ClusterReport straight from its API server
// (not from a cache, which would hide an unreachable server), decides its
// health and mirrors the report into the hub's Cluster object.
func (ms *members) probe(ctx context.Context, m *member) {
	opts := ms.h.opts
	pctx, cancel := context.WithTimeout(ctx, opts.ProbeTimeout)
	defer cancel()
	rep := &v1.ClusterReport{}
	err := m.cluster.GetAPIReader().Get(pctx, client.ObjectKey{Name: v1.ClusterReportName}, rep)
	if ctx.Err() != nil {
		return
	}
	health, reason, msg := v1.HealthReady, v1.ReasonReportFresh, "heartbeat is fresh"
	switch {
	case err != nil:
		m.failures++
		if m.failures < opts.FailureThreshold && m.health != v1.HealthUnknown {
			return // one lost probe is not an outage
		}
		health, reason = v1.HealthUnreachable, v1.ReasonAPIServerUnreachable
		msg = fmt.Sprintf("%d probes failed: %v", m.failures, err)
		if apierrors.IsNotFound(err) {
			reason, msg = v1.ReasonNoReport, "no ClusterReport yet: is the agent running?"
		}
	case m.pull && ms.pullStale(m, rep):
		m.failures = 0
		health, reason = v1.HealthUnreachable, v1.ReasonHeartbeatStale
		msg = fmt.Sprintf("no sync from the pull member's agent for %s (grace %s)", time.Since(m.lastChange).Round(time.Millisecond), opts.PullGrace)
	case !m.pull && (rep.Status.Heartbeat == nil || time.Since(rep.Status.Heartbeat.Time) > opts.HeartbeatGrace):
		m.failures = 0
		health, reason = v1.HealthUnreachable, v1.ReasonHeartbeatStale
		msg = fmt.Sprintf("the agent's last heartbeat is older than %s", opts.HeartbeatGrace)
	default:
		m.failures = 0
		if saturated(rep.Status) {
			health, reason, msg = v1.HealthDegraded, v1.ReasonSaturated, "no free CPU left for more replicas"
		}
	}
	if health != m.health {
		ms.h.log.Info("member health changed", "cluster", m.name, "from", m.health, "to", health, "reason", reason, "message", msg)
		ms.h.metrics.transitions.WithLabelValues(m.name, string(health)).Inc()
	}
	m.health = health
	ms.h.metrics.setHealth(m.name, health)
	if err == nil && rep.Status.Heartbeat != nil {
		ms.h.metrics.heartbeat.WithLabelValues(m.name).Set(float64(rep.Status.Heartbeat.Unix()))
	}
	if err := ms.h.writeCluster(ctx, m.name, rep, err == nil, health, reason, msg); err != nil {
		ms.h.log.Warn("writing Cluster status", "cluster", m.name, "err", err)
	}
}

// pullStale reports a pull member whose report has not changed for
// PullGrace: its agent writes it on every sync.
func (ms *members) pullStale(m *member, rep *v1.ClusterReport) bool {
	if rep.ResourceVersion != m.lastRV {
		m.lastRV, m.lastChange = rep.ResourceVersion, time.Now()
	}
	return rep.Status.Heartbeat == nil || time.Since(m.lastChange) > ms.h.opts.PullGrace
}

// saturated reports a member that cannot take one more replica.
func saturated(s v1.ClusterReportStatus) bool {
	return !s.Capacity.CPU.IsZero() && s.Capacity.FreeCPU.Cmp(resource.MustParse("100m")) < 0
}

// writeCluster creates or updates the hub's Cluster object for a member
// and its status. The first report of a member with no Cluster creates it
// (`meridian member add` writes it first, with the operator's identity);
// from then on the hub owns its region, zone and location (and its labels,
// cost and provider, which reports do not carry): a report that says
// otherwise changes nothing and sets IdentityAgreed False, so no member
// can move itself past a residency rule or nearer its users. A zone or
// location the Cluster lacks is taken from a report of the same region.
// The endpoints
// follow the reports, less those the endpoint policy refuses
// (EndpointsAllowed).
func (h *Hub) writeCluster(ctx context.Context, name string, rep *v1.ClusterReport, fresh bool, health v1.ClusterHealth, reason v1.ConditionReason, msg string) error {
	c := &v1.Cluster{}
	err := h.client.Get(ctx, client.ObjectKey{Name: name}, c)
	switch {
	case apierrors.IsNotFound(err):
		if !fresh {
			return nil // nothing known to describe it with yet
		}
		c = &v1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.ClusterSpec{ClusterIdentity: rep.Spec}}
		c.Spec.Endpoint, _, _ = h.allowedEndpoints(rep)
		if err := h.client.Create(ctx, c); err != nil {
			return err
		}
	case err != nil:
		return err
	case fresh:
		id := c.Spec.ClusterIdentity
		if rep.Spec.Region == id.Region { // nothing is taken from a member that claims another region
			id.Zone = cmp.Or(id.Zone, rep.Spec.Zone)
			if id.Location == nil {
				id.Location = rep.Spec.Location
			}
		}
		id.Endpoint, _, _ = h.allowedEndpoints(rep)
		if !id.Equal(c.Spec.ClusterIdentity) {
			c.Spec.ClusterIdentity = id
			if err := h.client.Update(ctx, c); err != nil {
				return err
			}
		}
	}
	base := c.DeepCopy()
	c.Status.Health = health
	if fresh {
		c.Status.LastHeartbeat = rep.Status.Heartbeat
		c.Status.Capacity = rep.Status.Capacity
		_, models, refused := h.allowedEndpoints(rep)
		c.Status.Models = models
		h.setEndpointsCondition(c, refused)
		agreed := rep.Spec.Region == c.Spec.Region && (rep.Spec.Zone == "" || rep.Spec.Zone == c.Spec.Zone) &&
			(rep.Spec.Location == nil || c.Spec.Location == nil || *rep.Spec.Location == *c.Spec.Location)
		why, idMsg := v1.ReasonIdentityMatches, "the agent reports the region, zone and location the hub has"
		if !agreed {
			why = v1.ReasonIdentityConflict
			idMsg = fmt.Sprintf("the agent reports region %q zone %q location %s; the hub keeps %q %q %s (change them on the Cluster, or fix the agent's --region/--zone/--location)",
				rep.Spec.Region, rep.Spec.Zone, where(rep.Spec.Location), c.Spec.Region, c.Spec.Zone, where(c.Spec.Location))
		}
		if v1.SetCondition(&c.Status.Conditions, v1.ConditionIdentityAgreed, agreed, why, idMsg, c.Generation) && !agreed {
			h.log.Warn("a member reports another identity than its Cluster's; keeping the hub's", "cluster", name, "message", idMsg)
		}
	}
	v1.SetCondition(&c.Status.Conditions, v1.ConditionReady, health == v1.HealthReady, reason, msg, c.Generation)
	if equality.Semantic.DeepEqual(base.Status, c.Status) {
		return nil // most probes: nothing to tell the hub's API server
	}
	return h.client.Status().Patch(ctx, c, client.MergeFrom(base))
}

// where prints a location for a message.
func where(l *v1.GeoLocation) string {
	if l == nil {
		return "none"
	}
	return l.Latitude + "," + l.Longitude
}
