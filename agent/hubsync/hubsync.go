// Package hubsync is the agent's side of pull-mode membership
// (hub/membership): it joins the hub with a bootstrap bundle, keeps its
// credential renewed, copies the ModelDeployments the hub placed on this
// member into the member's own API server (and their status back), and
// pushes the member's ClusterReport to the hub. The hub never connects to
// the member.
//
// Everything the agent runs keeps running when the hub is out of reach or
// refuses the credential: nothing is deleted unless the hub answered with
// the list it holds. The member's ClusterReport says so, in its
// HubConnected condition.
package hubsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	meridianhub "meridian.dev/meridian/hub"
	"meridian.dev/meridian/hub/membership"
	"meridian.dev/meridian/internal/metricsreg"
	"meridian.dev/meridian/internal/scheme"
)

// Secrets of the member cluster that hold the bundles, under SecretKey.
const (
	DefaultNamespace        = "meridian-system"
	DefaultJoinSecret       = "meridian-hub-join"
	DefaultCredentialSecret = "meridian-hub-credential"
	SecretKey               = "bundle.json"
)

// DefaultPeriod between syncs, and between report writes: with the hub's
// production PullGrace (2s) a pull member is lost to the hub within 3s.
// Each period costs the hub one list of the member's ModelDeployments, two
// reads of its report and one status write.
const DefaultPeriod = 500 * time.Millisecond

// Options configure a Syncer.
type Options struct {
	// JoinSecret holds the bootstrap bundle from `meridian member add`;
	// CredentialSecret receives the agent's own, renewed credential.
	// Defaults: meridian-system/meridian-hub-join and
	// meridian-system/meridian-hub-credential.
	JoinSecret, CredentialSecret types.NamespacedName
	// Period between syncs; default DefaultPeriod. The hub calls a pull
	// member Unreachable after its report went unchanged for its
	// PullGrace (three periods on the production preset).
	Period time.Duration
	// TokenTTL of the agent's credential; default 24h, renewed after 80%.
	TokenTTL time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Registry receives meridian_agent_hub_* metrics; default none.
	Registry prometheus.Registerer
}

func (o *Options) setDefaults() {
	o.JoinSecret.Namespace = cmp.Or(o.JoinSecret.Namespace, DefaultNamespace)
	o.JoinSecret.Name = cmp.Or(o.JoinSecret.Name, DefaultJoinSecret)
	o.CredentialSecret.Namespace = cmp.Or(o.CredentialSecret.Namespace, DefaultNamespace)
	o.CredentialSecret.Name = cmp.Or(o.CredentialSecret.Name, DefaultCredentialSecret)
	o.Period = cmp.Or(o.Period, DefaultPeriod)
	o.TokenTTL = cmp.Or(o.TokenTTL, membership.DefaultAgentTokenTTL)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Syncer keeps one member in sync with the hub.
type Syncer struct {
	opts    Options
	log     *slog.Logger
	local   client.Client
	metrics *metrics

	// credMu serializes credential(): the two loops must not both join
	// or renew.
	credMu sync.Mutex
	mu     sync.Mutex
	cred   *membership.Bundle
	hub    client.Client
	// issued is when cred's token was obtained, for RenewFraction.
	issued time.Time
	// refused is the stored token the hub refused last: the join Secret
	// is tried instead, so an operator rejoins a revoked member by
	// replacing that Secret alone.
	refused string
}

// New returns a Syncer writing into the member cluster at local.
func New(local *rest.Config, opts Options) (*Syncer, error) {
	opts.setDefaults()
	c, err := client.New(local, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return nil, fmt.Errorf("member cluster: %w", err)
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	return &Syncer{opts: opts, log: opts.Logger, local: c, metrics: m}, nil
}

// Run syncs every Period until ctx ends. Errors are reported, in the log,
// the metrics and the member's ClusterReport, and retried: a member whose
// hub is down or whose credential was revoked keeps serving.
func (s *Syncer) Run(ctx context.Context) error {
	// The report, the member's heartbeat on the hub, has a loop of its
	// own: a slow sync of many ModelDeployments must not make the hub
	// think the member is gone.
	done := make(chan struct{})
	go func() {
		defer close(done)
		every(ctx, s.opts.Period, func() {
			if hub, cred, err := s.credential(ctx); err == nil {
				if err := s.pushReport(ctx, hub, cred.Member); err != nil && ctx.Err() == nil {
					s.log.Debug("writing the report to the hub", "err", err)
				}
			}
		})
	}()
	var last error
	every(ctx, s.opts.Period, func() {
		err := s.SyncOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.record(ctx, err)
		if err != nil && (last == nil || err.Error() != last.Error()) {
			s.log.Error("syncing with the hub; replicas keep serving, retrying", "err", err, "every", s.opts.Period)
		} else if err == nil && last != nil {
			s.log.Info("syncing with the hub again")
		}
		last = err
	})
	<-done
	return nil
}

// every runs f now and then each period until ctx ends.
func every(ctx context.Context, period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SyncOnce joins or renews as needed, then copies the hub's
// ModelDeployments in, their status and the ClusterReport out.
func (s *Syncer) SyncOnce(ctx context.Context) error {
	hub, cred, err := s.credential(ctx)
	if err != nil {
		return err
	}
	if err := s.pullModels(ctx, hub, cred.Member); err != nil {
		return err
	}
	return s.pushReport(ctx, hub, cred.Member)
}

// credential returns a client of the hub with the agent's credential:
// the one in CredentialSecret, else one exchanged from JoinSecret's
// bootstrap bundle; renewed once RenewFraction of its life has passed.
func (s *Syncer) credential(ctx context.Context) (client.Client, membership.Bundle, error) {
	s.credMu.Lock()
	defer s.credMu.Unlock()
	s.mu.Lock()
	cred, hub, issued, refused := s.cred, s.hub, s.issued, s.refused
	s.mu.Unlock()
	if cred == nil {
		stored, err := s.readBundle(ctx, s.opts.CredentialSecret)
		if err == nil && stored.Token == refused {
			err = apierrors.NewNotFound(corev1.Resource("secrets"), s.opts.CredentialSecret.Name)
		}
		switch {
		case err == nil:
			cred = &stored
			issued = time.Now() // unknown: renew after RenewFraction of what is left
		case apierrors.IsNotFound(err):
			join, err := s.readBundle(ctx, s.opts.JoinSecret)
			if apierrors.IsNotFound(err) {
				return nil, membership.Bundle{}, fmt.Errorf("%w: neither Secret %s nor %s exists; put the output of `meridian member add` into %s (key %s), or run `meridian join`",
					errNotJoined, s.opts.CredentialSecret, s.opts.JoinSecret, s.opts.JoinSecret, SecretKey)
			}
			if err != nil {
				return nil, membership.Bundle{}, err
			}
			fresh, err := s.exchange(ctx, join)
			if err != nil {
				return nil, membership.Bundle{}, fmt.Errorf("joining with the bundle in Secret %s: %w", s.opts.JoinSecret, err)
			}
			s.log.Info("joined the hub", "hub", fresh.Server, "member", fresh.Member, "credentialExpires", fresh.Expires)
			cred, issued = &fresh, time.Now()
		default:
			return nil, membership.Bundle{}, err
		}
	}
	renewAt := issued.Add(time.Duration(float64(cred.Expires.Sub(issued)) * membership.RenewFraction))
	if time.Now().After(renewAt) {
		fresh, err := s.exchange(ctx, *cred)
		if err != nil {
			if membership.Refused(err) {
				return nil, *cred, err
			}
			s.log.Warn("renewing the hub credential; the current one still works until it expires", "err", err, "expires", cred.Expires)
		} else {
			s.log.Info("hub credential renewed", "member", fresh.Member, "expires", fresh.Expires)
			cred, issued, hub = &fresh, time.Now(), nil
		}
	}
	if hub == nil {
		var err error
		if hub, err = client.New(cred.RESTConfig(), client.Options{Scheme: scheme.Scheme}); err != nil {
			return nil, *cred, fmt.Errorf("hub %s: %w", cred.Server, err)
		}
	}
	s.mu.Lock()
	s.cred, s.hub, s.issued = cred, hub, issued
	s.mu.Unlock()
	s.metrics.expiry.Set(float64(cred.Expires.Unix()))
	return hub, *cred, nil
}

// exchange gets a fresh agent credential and stores it in the member.
func (s *Syncer) exchange(ctx context.Context, b membership.Bundle) (membership.Bundle, error) {
	fresh, err := membership.Exchange(ctx, b, s.opts.TokenTTL)
	if err != nil {
		return membership.Bundle{}, err
	}
	if err := WriteBundle(ctx, s.local, s.opts.CredentialSecret, fresh); err != nil {
		return membership.Bundle{}, fmt.Errorf("storing the hub credential: %w", err)
	}
	return fresh, nil
}

// Forget drops the credential held in memory, so the next sync reads the
// Secrets again (after an operator replaced them).
func (s *Syncer) Forget() {
	s.mu.Lock()
	s.cred, s.hub = nil, nil
	s.mu.Unlock()
}

// record writes the outcome of a sync into the metrics and the member's
// ClusterReport's HubConnected condition.
func (s *Syncer) record(ctx context.Context, err error) {
	reason, msg := v1.ReasonSynced, "in sync with the hub"
	switch {
	case err == nil:
		s.metrics.syncs.WithLabelValues("ok").Inc()
	case membership.Refused(err):
		reason, msg = v1.ReasonCredentialRejected, err.Error()
		s.metrics.syncs.WithLabelValues("refused").Inc()
		// Read the Secrets again, the join Secret first: an operator may
		// have put a new bundle there.
		s.mu.Lock()
		if s.cred != nil {
			s.refused = s.cred.Token
		}
		s.cred, s.hub = nil, nil
		s.mu.Unlock()
	case errors.Is(err, errNotJoined):
		reason, msg = v1.ReasonNotJoined, err.Error()
		s.metrics.syncs.WithLabelValues("error").Inc()
	default:
		reason, msg = v1.ReasonHubUnreachable, err.Error()
		s.metrics.syncs.WithLabelValues("error").Inc()
	}
	s.metrics.connected.Set(map[bool]float64{true: 1, false: 0}[err == nil])
	rep := &v1.ClusterReport{}
	if gerr := s.local.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, rep); gerr != nil {
		return // the agent has not written it yet
	}
	base := rep.DeepCopy()
	if v1.SetCondition(&rep.Status.Conditions, v1.ConditionHubConnected, err == nil, reason, truncate(msg), rep.Generation) {
		if perr := s.local.Status().Patch(ctx, rep, client.MergeFrom(base)); perr != nil {
			s.log.Warn("writing HubConnected into the ClusterReport", "err", perr)
		}
	}
}

var errNotJoined = errors.New("not joined")

func truncate(s string) string {
	if len(s) > 1024 {
		return s[:1021] + "..."
	}
	return s
}

// pullModels makes the member's hub-placed ModelDeployments what the hub
// holds for it, and copies their status back to the hub.
func (s *Syncer) pullModels(ctx context.Context, hub client.Client, member string) error {
	var want v1.ModelDeploymentList
	if err := hub.List(ctx, &want, client.InNamespace(membership.Namespace(member))); err != nil {
		return fmt.Errorf("listing this member's ModelDeployments on the hub: %w", err)
	}
	var have v1.ModelDeploymentList
	if err := s.local.List(ctx, &have, client.MatchingLabels{meridianhub.ManagedByLabel: meridianhub.ManagedByValue}); err != nil {
		return fmt.Errorf("listing ModelDeployments in the member: %w", err)
	}
	keep := map[types.NamespacedName]bool{}
	for i := range want.Items {
		h := &want.Items[i]
		ns, name, ok := membership.SplitHubName(h.Name)
		if !ok {
			s.log.Warn("ignoring a ModelDeployment on the hub whose name is not <namespace>.<name>", "name", h.Name)
			continue
		}
		keep[types.NamespacedName{Namespace: ns, Name: name}] = true
		local, err := s.apply(ctx, ns, name, h)
		if err != nil {
			return fmt.Errorf("writing ModelDeployment %s/%s into the member: %w", ns, name, err)
		}
		if !equality.Semantic.DeepEqual(h.Status, local.Status) {
			base := h.DeepCopy()
			h.Status = local.Status
			if err := hub.Status().Patch(ctx, h, client.MergeFrom(base)); err != nil {
				return fmt.Errorf("writing the status of %s/%s to the hub: %w", ns, name, err)
			}
		}
	}
	for i := range have.Items {
		md := &have.Items[i]
		if !keep[client.ObjectKeyFromObject(md)] {
			if err := client.IgnoreNotFound(s.local.Delete(ctx, md)); err != nil {
				return fmt.Errorf("removing ModelDeployment %s/%s the hub no longer places here: %w", md.Namespace, md.Name, err)
			}
			s.log.Info("ModelDeployment removed: the hub placed it elsewhere", "namespace", md.Namespace, "name", md.Name)
		}
	}
	return nil
}

// apply writes the hub's ModelDeployment h into the member as ns/name.
func (s *Syncer) apply(ctx context.Context, ns, name string, h *v1.ModelDeployment) (*v1.ModelDeployment, error) {
	md := &v1.ModelDeployment{}
	err := s.local.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, md)
	if apierrors.IsNotFound(err) {
		md = &v1.ModelDeployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: h.Labels}, Spec: h.Spec}
		err = s.local.Create(ctx, md)
		if apierrors.IsNotFound(err) { // its namespace, first
			if err := s.local.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
				return nil, err
			}
			err = s.local.Create(ctx, md)
		}
		if err == nil {
			s.log.Info("ModelDeployment placed here by the hub", "namespace", ns, "name", name)
		}
		return md, err
	}
	if err != nil {
		return nil, err
	}
	if md.Labels[meridianhub.ManagedByLabel] != meridianhub.ManagedByValue {
		return nil, fmt.Errorf("a ModelDeployment %s/%s not written by the hub is in the way", ns, name)
	}
	if equality.Semantic.DeepEqual(md.Spec, h.Spec) && equality.Semantic.DeepEqual(md.Labels, h.Labels) {
		return md, nil
	}
	md.Spec, md.Labels = h.Spec, h.Labels
	return md, s.local.Update(ctx, md)
}

// pushReport copies the member's ClusterReport to the hub's report of
// this member (spec and status).
func (s *Syncer) pushReport(ctx context.Context, hub client.Client, member string) error {
	local := &v1.ClusterReport{}
	if err := s.local.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, local); err != nil {
		return fmt.Errorf("reading the member's ClusterReport (is the agent writing it?): %w", err)
	}
	rep := &v1.ClusterReport{}
	if err := hub.Get(ctx, client.ObjectKey{Name: membership.ReportName(member)}, rep); err != nil {
		return fmt.Errorf("reading this member's ClusterReport on the hub: %w", err)
	}
	if !rep.Spec.Equal(local.Spec) {
		rep.Spec = local.Spec
		if err := hub.Update(ctx, rep); err != nil {
			return fmt.Errorf("writing this member's ClusterReport on the hub: %w", err)
		}
	}
	// Written on every sync, with the time of the sync as its heartbeat:
	// the hub judges a pull member by how recently its report changed.
	base := rep.DeepCopy()
	rep.Status = local.Status
	rep.Status.Heartbeat = &metav1.Time{Time: time.Now()}
	if err := hub.Status().Patch(ctx, rep, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("writing this member's ClusterReport status on the hub: %w", err)
	}
	return nil
}

type metrics struct {
	syncs     *prometheus.CounterVec
	connected prometheus.Gauge
	expiry    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_agent_hub_syncs_total",
			Help: "Syncs with the hub in pull mode, by result: ok, error (hub unreachable, not joined) or refused (credential rejected)."}, []string{"result"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meridian_agent_hub_connected",
			Help: "1 when the last sync with the hub in pull mode succeeded, else 0."}),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meridian_agent_hub_credential_expiry_timestamp_seconds",
			Help: "When the agent's hub credential expires (Unix seconds); it is renewed after 80% of its life."}),
	}
	return m, metricsreg.Register(reg, "agent hub sync", m.syncs, m.connected, m.expiry)
}
