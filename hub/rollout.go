package hub

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// rollouts runs ModelRollouts: it moves traffic wave by wave and step by
// step by writing status.traffic, which the InferenceModel's placement
// copies into each region's ModelDeployments; judges each step by the
// versions' counts in the ModelDeployments' status; and rolls back, or
// promotes by setting the InferenceModel's spec.versions.
type rollouts struct {
	h      *Hub
	client client.Client
	events events.EventRecorder
	// check is how often a running rollout is looked at again.
	check time.Duration

	mu sync.Mutex
	// baselines are the counts at the start of each step, by rollout
	// UID, wave and step, then cluster and version. Kept in memory: a hub
	// that restarts starts the step's bake again.
	baselines map[string]map[string]v1.VersionStatus
}

func setupRollouts(mgr manager.Manager, h *Hub) error {
	r := &rollouts{h: h, client: mgr.GetClient(), events: mgr.GetEventRecorder("meridian-hub"),
		check: max(h.opts.ResyncPeriod/10, 2*time.Second), baselines: map[string]map[string]v1.VersionStatus{}}
	return ctrl.NewControllerManagedBy(mgr).Named("modelrollout").
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true)}).
		For(&v1.ModelRollout{}).Complete(r)
}

func terminal(p v1.RolloutPhase) bool {
	return p == v1.RolloutSucceeded || p == v1.RolloutRolledBack
}

// Reconcile takes one rollout one move further and looks again soon.
func (r *rollouts) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ro := &v1.ModelRollout{}
	if err := r.client.Get(ctx, req.NamespacedName, ro); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if terminal(ro.Status.Phase) {
		r.forget(ro)
		return ctrl.Result{}, nil
	}
	base := ro.DeepCopy()
	if err := r.advance(ctx, ro, time.Now()); err != nil {
		return ctrl.Result{}, err
	}
	ro.Status.ObservedGeneration = ro.Generation
	if !equality.Semantic.DeepEqual(base.Status, ro.Status) {
		if err := r.client.Status().Patch(ctx, ro, client.MergeFrom(base)); err != nil {
			return ctrl.Result{}, err
		}
	}
	if terminal(ro.Status.Phase) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: r.check}, nil
}

// hold keeps the rollout where it is, saying why.
func hold(ro *v1.ModelRollout, phase v1.RolloutPhase, format string, args ...any) {
	ro.Status.Phase, ro.Status.Message = phase, fmt.Sprintf(format, args...)
	v1.SetCondition(&ro.Status.Conditions, v1.ConditionType("Paused"), phase == v1.RolloutPaused, v1.ConditionReason(phaseReason(phase)), ro.Status.Message, ro.Generation)
}

func phaseReason(p v1.RolloutPhase) string { return cmp.Or(string(p), "Pending") }

func (r *rollouts) advance(ctx context.Context, ro *v1.ModelRollout, now time.Time) error {
	st := &ro.Status
	if st.Phase == v1.RolloutRollingBack { // needs nothing but the time
		return r.finishRollback(ctx, ro, now)
	}
	if ro.Spec.Abort && st.StableVersion == 0 { // never started: nothing to undo
		st.Phase, st.Message = v1.RolloutRolledBack, "aborted by spec.abort before it started"
		r.emit(ro, corev1.EventTypeNormal, "Aborted", st.Message)
		return nil
	}
	older, err := r.older(ctx, ro)
	if err != nil {
		return err
	}
	if older != "" {
		// Only the oldest rollout of a model runs; a younger one that
		// started at the same moment starts again, from the version the
		// older one leaves.
		st.StableVersion, st.Waves, st.Traffic, st.StepStarted, st.Wave, st.Step = 0, nil, nil, nil, 0, 0
		hold(ro, v1.RolloutPaused, "ModelRollout %s of the same model is running; this one starts when it ends", older)
		return nil
	}
	im := &v1.InferenceModel{}
	if err := r.client.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: ro.Spec.Model}, im); err != nil {
		if apierrors.IsNotFound(err) {
			hold(ro, v1.RolloutPaused, "InferenceModel %s/%s not found", ro.Namespace, ro.Spec.Model)
			return nil
		}
		return err
	}
	if st.StableVersion == 0 && !r.start(ctx, ro, im) {
		return nil
	}
	switch {
	case ro.Spec.Abort:
		r.rollback(ctx, ro, now, "Aborted", "aborted by spec.abort")
		return nil
	case ro.Spec.Promote:
		return r.promote(ctx, ro, im, "promoted by spec.promote, without analysis")
	}
	st.Traffic = trafficFor(ro, false)
	if ro.Spec.Paused {
		st.StepStarted = nil // the step bakes again in full on resume
		hold(ro, v1.RolloutPaused, "paused by spec.paused; traffic stays as it is")
		return nil
	}
	wave := st.Waves[st.Wave].Regions
	clusters, down := r.waveClusters(ctx, im, wave)
	if down != "" {
		st.StepStarted = nil
		hold(ro, v1.RolloutPaused, "region %s is unreachable: waiting for it, traffic stays as it is", down)
		return nil
	}
	if len(clusters) == 0 {
		// The placement left the wave's regions since the start: nothing
		// there to move or judge.
		r.emit(ro, corev1.EventTypeNormal, "WaveSkipped", fmt.Sprintf("wave %d of %d: the model is no longer placed in %v", st.Wave+1, len(st.Waves), wave))
		st.Wave, st.Step, st.StepStarted = st.Wave+1, 0, nil
		if int(st.Wave) >= len(st.Waves) {
			return r.promote(ctx, ro, im, "every wave passed or was left")
		}
		st.Traffic = trafficFor(ro, false)
		return nil
	}
	counts, waiting := r.read(ctx, ro, clusters)
	if waiting != "" {
		st.StepStarted = nil
		hold(ro, v1.RolloutProgressing, "%s", waiting)
		return nil
	}
	if st.StepStarted == nil || r.baseline(ro) == nil {
		st.StepStarted = &metav1.Time{Time: now}
		r.setBaseline(ro, counts)
		hold(ro, v1.RolloutProgressing, "%s: baking", stepName(ro))
		return nil
	}
	baked := now.Sub(st.StepStarted.Time) >= stepBake(ro)
	v := judge(ro.Spec.Analysis, delta(r.baseline(ro), counts, ro.Spec.Version), delta(r.baseline(ro), counts, st.StableVersion), baked)
	switch {
	case v.result == resultFailed:
		r.verdict(ro, v, now)
		r.rollback(ctx, ro, now, "AnalysisFailed", fmt.Sprintf("%s failed: %s", stepName(ro), v.message))
	case !baked:
		hold(ro, v1.RolloutProgressing, "%s: baking, %s of %s; %s", stepName(ro),
			now.Sub(st.StepStarted.Time).Round(time.Second), stepBake(ro), v.message)
	case v.result == resultInconclusive:
		hold(ro, v1.RolloutPaused, "analysis cannot judge %s: %s; waiting for requests, not promoting", stepName(ro), v.message)
	default:
		r.verdict(ro, v, now)
		r.emit(ro, corev1.EventTypeNormal, "StepPassed", fmt.Sprintf("%s passed: %s", stepName(ro), v.message))
		st.Step++
		st.StepStarted = nil
		if int(st.Step) >= len(ro.Spec.Plan()) {
			st.Wave, st.Step = st.Wave+1, 0
		}
		if int(st.Wave) >= len(st.Waves) {
			return r.promote(ctx, ro, im, "every wave passed")
		}
		st.Traffic = trafficFor(ro, false)
		hold(ro, v1.RolloutProgressing, "moving to %s", stepName(ro))
	}
	return nil
}

// start resolves the stable version and the waves; false holds the
// rollout.
func (r *rollouts) start(ctx context.Context, ro *v1.ModelRollout, im *v1.InferenceModel) bool {
	stable := stableVersion(im)
	switch {
	case stable == 0:
		hold(ro, v1.RolloutPaused, "InferenceModel %s has no spec.versions: set it to the version it serves now, e.g. [{version: 1, weight: 100}]", im.Name)
		return false
	case stable == ro.Spec.Version:
		ro.Status.Phase, ro.Status.Message = v1.RolloutSucceeded, fmt.Sprintf("InferenceModel %s already serves version %d", im.Name, stable)
		return false
	}
	var placed []v1.RegionName
	for _, a := range im.Status.Clusters {
		if a.DesiredReplicas > 0 && !slices.Contains(placed, v1.RegionName(a.Region)) {
			placed = append(placed, v1.RegionName(a.Region))
		}
	}
	if len(placed) == 0 {
		hold(ro, v1.RolloutPaused, "InferenceModel %s is not placed anywhere yet", im.Name)
		return false
	}
	ro.Status.StableVersion = stable
	ro.Status.Waves = resolveWaves(ro.Spec.Waves, placed)
	ro.Status.Phase = v1.RolloutProgressing
	r.emit(ro, corev1.EventTypeNormal, "Started", fmt.Sprintf("rolling %s from version %d to %d in %d waves", im.Name, stable, ro.Spec.Version, len(ro.Status.Waves)))
	return true
}

// stableVersion is the version with the most weight.
func stableVersion(im *v1.InferenceModel) int64 {
	var best v1.VersionWeight
	for _, v := range im.Spec.Versions {
		if v.Weight > best.Weight || (v.Weight == best.Weight && v.Version > best.Version) {
			best = v
		}
	}
	return best.Version
}

// resolveWaves keeps the placed regions of each wave, and puts the
// placed regions no wave names in a last one.
func resolveWaves(spec []v1.RolloutWave, placed []v1.RegionName) []v1.RolloutWave {
	var out []v1.RolloutWave
	named := map[v1.RegionName]bool{}
	for _, w := range spec {
		var regions []v1.RegionName
		for _, r := range w.Regions {
			named[r] = true
			if slices.Contains(placed, r) {
				regions = append(regions, r)
			}
		}
		if len(regions) > 0 {
			out = append(out, v1.RolloutWave{Regions: regions})
		}
	}
	var rest []v1.RegionName
	for _, r := range placed {
		if !named[r] {
			rest = append(rest, r)
		}
	}
	if len(rest) > 0 {
		slices.Sort(rest)
		out = append(out, v1.RolloutWave{Regions: rest})
	}
	return out
}

// stepName names the current step for people, counting from 1 (the
// status counts from 0): "wave 1 of 2 (eu-west), step 2 of 3 at 50%".
func stepName(ro *v1.ModelRollout) string {
	st := ro.Status
	regions := make([]string, 0, len(st.Waves[st.Wave].Regions))
	for _, r := range st.Waves[st.Wave].Regions {
		regions = append(regions, string(r))
	}
	return fmt.Sprintf("wave %d of %d (%s), step %d of %d at %d%%", st.Wave+1, len(st.Waves), strings.Join(regions, ", "),
		st.Step+1, len(ro.Spec.Plan()), stepWeight(ro))
}

// step is the current step of the plan (the last one, should the spec's
// steps have changed under a running rollout).
func step(ro *v1.ModelRollout) v1.RolloutStep {
	plan := ro.Spec.Plan()
	return plan[min(int(ro.Status.Step), len(plan)-1)]
}

func stepWeight(ro *v1.ModelRollout) int32 { return step(ro).Weight }

func stepBake(ro *v1.ModelRollout) time.Duration { return step(ro).Bake.Duration }

// trafficFor is each placed region's weights: the waves done on the new
// version (the stable one kept warm at 0), the current wave at its step's
// weight, the rest on the stable version; back on the stable version
// everywhere (the new one still warm) when rolling back.
func trafficFor(ro *v1.ModelRollout, back bool) []v1.RegionTraffic {
	st := ro.Status
	var out []v1.RegionTraffic
	for i, w := range st.Waves {
		for _, region := range w.Regions {
			var newWeight int32
			switch {
			case back && int32(i) <= st.Wave: // the new version stays warm where it ran
			case int32(i) < st.Wave:
				newWeight = 100
			case int32(i) == st.Wave:
				newWeight = stepWeight(ro)
			default:
				out = append(out, v1.RegionTraffic{Region: region, Versions: []v1.VersionWeight{{Version: st.StableVersion, Weight: 100}}})
				continue
			}
			out = append(out, v1.RegionTraffic{Region: region, Versions: []v1.VersionWeight{
				{Version: st.StableVersion, Weight: 100 - newWeight}, {Version: ro.Spec.Version, Weight: newWeight}}})
		}
	}
	return out
}

// waveClusters are the model's clusters in the wave's regions, and the
// first of the model's clusters, in any region, that is unreachable: a
// region lost mid-rollout pauses it.
func (r *rollouts) waveClusters(ctx context.Context, im *v1.InferenceModel, wave []v1.RegionName) ([]string, string) {
	var out []string
	for _, a := range im.Status.Clusters {
		cl := &v1.Cluster{}
		if err := r.client.Get(ctx, client.ObjectKey{Name: a.Cluster}, cl); err == nil && cl.Status.Health == v1.HealthUnreachable {
			return nil, a.Region
		}
		if slices.Contains(wave, v1.RegionName(a.Region)) && a.DesiredReplicas > 0 {
			out = append(out, a.Cluster)
		}
	}
	return out, ""
}

// read gets each cluster's version counts; waiting says what the step
// waits for (the new version ready at its weight everywhere in the wave).
func (r *rollouts) read(ctx context.Context, ro *v1.ModelRollout, clusters []string) (map[string]v1.VersionStatus, string) {
	want := map[int64]int32{}
	for _, t := range trafficFor(ro, false) {
		if slices.Contains(ro.Status.Waves[ro.Status.Wave].Regions, t.Region) {
			for _, v := range t.Versions {
				want[v.Version] = v.Weight
			}
		}
	}
	out := map[string]v1.VersionStatus{}
	for _, c := range clusters {
		md, err := r.h.memberModelDeployment(ctx, c, ro.Namespace, ro.Spec.Model)
		if err != nil {
			return nil, fmt.Sprintf("reading cluster %s: %v", c, err)
		}
		for version, weight := range want {
			i := slices.IndexFunc(md.Status.Versions, func(s v1.VersionStatus) bool { return s.Version == version })
			if i < 0 || md.Status.Versions[i].Weight != weight || (weight > 0 && md.Status.Versions[i].ReadyReplicas == 0) {
				return nil, fmt.Sprintf("waiting for version %d to be ready at weight %d in cluster %s", version, weight, c)
			}
			out[c+"/"+fmt.Sprint(version)] = md.Status.Versions[i]
		}
	}
	return out, ""
}

// counts are a version's requests, errors, worst p95 and predicted
// labels over a wave.
type counts struct {
	requests, errors int64
	p95              time.Duration
	predictions      map[string]int64
}

// delta sums a version's counts since the baseline over the clusters; a
// cluster whose counts restarted (Since moved) counts from zero.
func delta(base, now map[string]v1.VersionStatus, version int64) counts {
	var out counts
	suffix := "/" + fmt.Sprint(version)
	for key, n := range now {
		if !strings.HasSuffix(key, suffix) {
			continue
		}
		b, ok := base[key]
		if !ok || !b.Since.Equal(&n.Since) || n.Requests < b.Requests || n.Errors < b.Errors {
			b = v1.VersionStatus{} // the counts restarted (Since is to the second)
		}
		out.requests += n.Requests - b.Requests
		out.errors += n.Errors - b.Errors
		out.p95 = max(out.p95, n.P95Latency.Duration)
		for label, c := range n.Predictions {
			if out.predictions == nil {
				out.predictions = map[string]int64{}
			}
			out.predictions[label] += c - b.Predictions[label]
		}
	}
	return out
}

func (r *rollouts) key(ro *v1.ModelRollout) string {
	return fmt.Sprintf("%s/%d/%d", ro.UID, ro.Status.Wave, ro.Status.Step)
}

func (r *rollouts) baseline(ro *v1.ModelRollout) map[string]v1.VersionStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.baselines[r.key(ro)]
}

func (r *rollouts) setBaseline(ro *v1.ModelRollout, c map[string]v1.VersionStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.baselines[r.key(ro)] = c
}

func (r *rollouts) forget(ro *v1.ModelRollout) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.baselines {
		if strings.HasPrefix(k, string(ro.UID)+"/") {
			delete(r.baselines, k)
		}
	}
}

func (r *rollouts) verdict(ro *v1.ModelRollout, v verdict, now time.Time) {
	st := &ro.Status
	st.Verdicts = append(st.Verdicts, v1.RolloutVerdict{Wave: st.Wave, Step: st.Step, Result: string(v.result), Message: v.message, Time: metav1.Time{Time: now}})
	if len(st.Verdicts) > 32 {
		st.Verdicts = st.Verdicts[len(st.Verdicts)-32:]
	}
}

// rollback sends every region's traffic back to the stable version at
// once, the new version still warm; finishRollback then removes it.
func (r *rollouts) rollback(_ context.Context, ro *v1.ModelRollout, now time.Time, reason, why string) {
	ro.Status.Traffic = trafficFor(ro, true)
	ro.Status.StepStarted = &metav1.Time{Time: now}
	hold(ro, v1.RolloutRollingBack, "rolling back to version %d: %s", ro.Status.StableVersion, why)
	r.emit(ro, corev1.EventTypeWarning, reason, ro.Status.Message)
}

// finishRollback ends the rollout once the traffic has been back on the
// stable version for a check period: the placement then drops the new
// version's replicas.
func (r *rollouts) finishRollback(_ context.Context, ro *v1.ModelRollout, now time.Time) error {
	if ro.Status.StepStarted != nil && now.Sub(ro.Status.StepStarted.Time) < r.check {
		return nil
	}
	ro.Status.Phase, ro.Status.Traffic, ro.Status.StepStarted = v1.RolloutRolledBack, nil, nil
	ro.Status.Message = strings.Replace(ro.Status.Message, "rolling back to", "rolled back to", 1)
	v1.SetCondition(&ro.Status.Conditions, v1.ConditionType("Paused"), false, "RolledBack", ro.Status.Message, ro.Generation)
	r.emit(ro, corev1.EventTypeWarning, "RolledBack", ro.Status.Message)
	r.forget(ro)
	return nil
}

// promote sets the InferenceModel to the new version alone.
func (r *rollouts) promote(ctx context.Context, ro *v1.ModelRollout, im *v1.InferenceModel, why string) error {
	im.Spec.Versions = []v1.VersionWeight{{Version: ro.Spec.Version, Weight: 100}}
	if err := r.client.Update(ctx, im); err != nil { // a conflict is tried again at the next check
		return fmt.Errorf("setting InferenceModel %s to version %d: %w", im.Name, ro.Spec.Version, err)
	}
	ro.Status.Phase, ro.Status.Traffic, ro.Status.StepStarted = v1.RolloutSucceeded, nil, nil
	ro.Status.Message = fmt.Sprintf("version %d serves every region: %s", ro.Spec.Version, why)
	v1.SetCondition(&ro.Status.Conditions, v1.ConditionType("Paused"), false, "Succeeded", ro.Status.Message, ro.Generation)
	r.emit(ro, corev1.EventTypeNormal, "Promoted", ro.Status.Message)
	r.forget(ro)
	return nil
}

func (r *rollouts) emit(ro *v1.ModelRollout, kind, reason, note string) {
	r.events.Eventf(ro, nil, kind, reason, "Rollout", "%s", note)
	r.h.log.Info("rollout", "modelrollout", client.ObjectKeyFromObject(ro), "reason", reason, "message", note)
}

// memberModelDeployment reads a model's ModelDeployment in a member.
func (h *Hub) memberModelDeployment(ctx context.Context, cluster, namespace, name string) (*v1.ModelDeployment, error) {
	cl, err := h.mgr.GetCluster(ctx, multicluster.ClusterName(cluster))
	if err != nil {
		return nil, err
	}
	md := &v1.ModelDeployment{}
	return md, cl.GetClient().Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, md)
}

// rolloutTraffic is the weights the running ModelRollout of im (the
// oldest, should there be several) gives each region; nil when none runs.
func (h *Hub) rolloutTraffic(ctx context.Context, im *v1.InferenceModel) map[string][]v1.VersionWeight {
	var list v1.ModelRolloutList
	if err := h.client.List(ctx, &list, client.InNamespace(im.Namespace)); err != nil {
		h.log.Warn("listing ModelRollouts; versions as the InferenceModel says", "inferencemodel", im.Name, "err", err)
		return nil
	}
	running := runningRollouts(list.Items, im.Name)
	if len(running) == 0 || len(running[0].Status.Traffic) == 0 {
		return nil
	}
	out := map[string][]v1.VersionWeight{}
	for _, t := range running[0].Status.Traffic {
		out[string(t.Region)] = t.Versions
	}
	return out
}

// runningRollouts are the rollouts of model that have not ended, oldest
// first (by creation, then name).
func runningRollouts(items []v1.ModelRollout, model string) []v1.ModelRollout {
	var out []v1.ModelRollout
	for _, ro := range items {
		if ro.Spec.Model == model && !terminal(ro.Status.Phase) {
			out = append(out, ro)
		}
	}
	slices.SortFunc(out, func(a, b v1.ModelRollout) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), strings.Compare(a.Name, b.Name))
	})
	return out
}

// older names a running rollout of the same model older than ro, if any.
func (r *rollouts) older(ctx context.Context, ro *v1.ModelRollout) (string, error) {
	var list v1.ModelRolloutList
	if err := r.client.List(ctx, &list, client.InNamespace(ro.Namespace)); err != nil {
		return "", err
	}
	if running := runningRollouts(list.Items, ro.Spec.Model); len(running) > 0 && running[0].Name != ro.Name {
		return running[0].Name, nil
	}
	return "", nil
}

// versionsIn is a region's spec.versions: a running rollout's, else the
// InferenceModel's.
func versionsIn(im *v1.InferenceModel, traffic map[string][]v1.VersionWeight, region string) []v1.VersionWeight {
	if v, ok := traffic[region]; ok {
		return v
	}
	return im.Spec.Versions
}
