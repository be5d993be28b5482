package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/crds/v1alpha1"
)

// AdoptedByLabel is put on every object a ModelDeployment adopts
// (spec.adopt); its value is the ModelDeployment's name. ModelLabel is put
// beside it. The pod template is not labelled: that would restart the pods.
const AdoptedByLabel = "meridian.dev/adopted-by"

// Kinds an adoption takes over, as status.adopted names them.
const (
	KindDeployment              = "Deployment"
	KindService                 = "Service"
	KindHorizontalPodAutoscaler = "HorizontalPodAutoscaler"
)

// Reasons of the AdoptionHealthy condition (and of the Warning Events the
// agent records with them).
const (
	// ReasonAdoptionAsExpected: the adopted objects can work as written.
	ReasonAdoptionAsExpected = "AsExpected"
	// ReasonMissingResourceRequests: the HPA scales on CPU or memory
	// utilization of containers that request none.
	ReasonMissingResourceRequests = "MissingResourceRequests"
	// ReasonUnservedMetric: the HPA scales on a custom metric that
	// Meridian's metrics adapter does not serve.
	ReasonUnservedMetric = "UnservedMetric"
	// ReasonServiceSelectsNoPods: the adopted Service's selector does not
	// match the Deployment's pods.
	ReasonServiceSelectsNoPods = "ServiceSelectsNoPods"

	// Reasons that refuse the adoption (Apply returns an *AdoptionError).

	// ReasonAdoptedObjectNotFound: an object named in spec.adopt does not
	// exist.
	ReasonAdoptedObjectNotFound = "AdoptedObjectNotFound"
	// ReasonScaleTargetMismatch: the HPA's scaleTargetRef is not the
	// adopted Deployment.
	ReasonScaleTargetMismatch = "ScaleTargetMismatch"
	// ReasonAdoptedByAnother: another ModelDeployment adopted the object.
	ReasonAdoptedByAnother = "AdoptedByAnother"
	// ReasonCreatedByMeridian: the object is one Meridian created for a
	// ModelDeployment; only objects of your own can be adopted.
	ReasonCreatedByMeridian = "CreatedByMeridian"
)

// AdoptionError is the error Apply returns when it refuses spec.adopt;
// nothing was changed. Reason is one of the refusal reasons above.
type AdoptionError struct {
	Reason  string
	Message string
}

func (e *AdoptionError) Error() string { return e.Message }

// Diagnosis is one reason an adopted object cannot work as written, in
// words for the user, with the fix.
type Diagnosis struct {
	// Reason is a ReasonXxx constant.
	Reason string
	// Message says what is wrong and how to fix it.
	Message string
}

// adopt is Apply for a ModelDeployment with spec.adopt: it validates every
// named object first, then labels them and sets the HPA's range.
func adopt(ctx context.Context, c client.Client, md *v1alpha1.ModelDeployment) (Status, error) {
	spec := md.Spec.Adopt
	ns := md.Namespace
	refuse := func(reason, format string, args ...any) (Status, error) {
		return Status{}, &AdoptionError{Reason: reason, Message: fmt.Sprintf(format, args...)}
	}

	dep := &appsv1.Deployment{}
	var svc *corev1.Service
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	type named struct {
		kind, name, field string
		obj               client.Object
	}
	objs := []named{{KindDeployment, spec.Deployment, "spec.adopt.deployment", dep}}
	if spec.Service != "" {
		svc = &corev1.Service{}
		objs = append(objs, named{KindService, spec.Service, "spec.adopt.service", svc})
	}
	if spec.HorizontalPodAutoscaler != "" {
		hpa = &autoscalingv2.HorizontalPodAutoscaler{}
		objs = append(objs, named{KindHorizontalPodAutoscaler, spec.HorizontalPodAutoscaler, "spec.adopt.horizontalPodAutoscaler", hpa})
	}
	for _, o := range objs {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.name}, o.obj)
		if apierrors.IsNotFound(err) {
			return refuse(ReasonAdoptedObjectNotFound, "cannot adopt %s %s/%s (%s): it does not exist; create it first, or correct the name", o.kind, ns, o.name, o.field)
		}
		if err != nil {
			return Status{}, fmt.Errorf("reading %s %s/%s to adopt: %w", o.kind, ns, o.name, err)
		}
		if ref := metav1.GetControllerOf(o.obj); ref != nil && ref.Kind == "ModelDeployment" && strings.HasPrefix(ref.APIVersion, v1alpha1.GroupVersion.Group+"/") {
			return refuse(ReasonCreatedByMeridian, "cannot adopt %s %s/%s: Meridian created it for ModelDeployment %s, which owns it; adopt only objects of your own", o.kind, ns, o.name, ref.Name)
		}
		if other := o.obj.GetLabels()[AdoptedByLabel]; other != "" && other != md.Name {
			taken, err := adoptedBy(ctx, c, ns, other, o.kind, o.name)
			if err != nil {
				return Status{}, err
			}
			if taken {
				return refuse(ReasonAdoptedByAnother, "cannot adopt %s %s/%s: ModelDeployment %s adopted it already; an object is managed by one ModelDeployment at a time", o.kind, ns, o.name, other)
			}
		}
	}
	if hpa != nil {
		ref := hpa.Spec.ScaleTargetRef
		gv, _ := schema.ParseGroupVersion(ref.APIVersion)
		if ref.Kind != KindDeployment || gv.Group != appsv1.GroupName || ref.Name != dep.Name {
			return refuse(ReasonScaleTargetMismatch, "cannot adopt HorizontalPodAutoscaler %s/%s: it scales %s %q (apiVersion %q), not the adopted Deployment %s; set its scaleTargetRef to apiVersion: apps/v1, kind: Deployment, name: %s, or adopt the HPA that scales that Deployment",
				ns, hpa.Name, cmpOr(ref.Kind, "<no kind>"), ref.Name, ref.APIVersion, dep.Name, dep.Name)
		}
	}

	// Everything checks out: label, and set the HPA's range.
	for _, o := range objs {
		if err := labelAdopted(ctx, c, o.obj, md); err != nil {
			return Status{}, fmt.Errorf("labelling adopted %s %s/%s: %w", o.kind, ns, o.name, err)
		}
	}
	if hpa != nil && cmpOr(spec.ReplicaRange, v1alpha1.ReplicaRangeModelDeployment) == v1alpha1.ReplicaRangeModelDeployment {
		lo, hi := hpaMinReplicas(md), hpaMaxReplicas(md)
		if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != lo || hpa.Spec.MaxReplicas != hi {
			base := hpa.DeepCopy()
			hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas = ptr.To(lo), hi
			if err := c.Patch(ctx, hpa, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
				return Status{}, fmt.Errorf("setting the replica range of adopted HorizontalPodAutoscaler %s/%s to %d..%d: %w", ns, hpa.Name, lo, hi, err)
			}
		}
	}

	var selector labels.Selector
	if dep.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
		if err != nil {
			return Status{}, fmt.Errorf("adopted Deployment %s/%s: its selector: %w", ns, dep.Name, err)
		}
		selector = s
	} else {
		selector = labels.Nothing()
	}
	st, pods, err := readStatusOf(ctx, c, ns, dep, hpa, selector)
	if err != nil {
		return Status{}, fmt.Errorf("reading the status of adopted Deployment %s/%s: %w", ns, dep.Name, err)
	}
	if svc != nil {
		st.Endpoint = serviceEndpoint(svc)
	}
	st.Adopted = []v1alpha1.AdoptedObject{{Kind: KindDeployment, APIVersion: "apps/v1", Name: dep.Name, UID: dep.UID}}
	if svc != nil {
		st.Adopted = append(st.Adopted, v1alpha1.AdoptedObject{Kind: KindService, APIVersion: "v1", Name: svc.Name, UID: svc.UID})
	}
	if hpa != nil {
		st.Adopted = append(st.Adopted, v1alpha1.AdoptedObject{Kind: KindHorizontalPodAutoscaler, APIVersion: "autoscaling/v2", Name: hpa.Name, UID: hpa.UID})
	}
	st.Diagnoses = Diagnose(dep, svc, hpa, pods)
	return st, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// adoptedBy reports whether ModelDeployment ns/name exists and adopts the
// object kind/obj. A label left by a deleted ModelDeployment, or by one
// that adopts something else now, does not hold the object.
func adoptedBy(ctx context.Context, c client.Client, ns, name, kind, obj string) (bool, error) {
	other := &v1alpha1.ModelDeployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, other); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("reading ModelDeployment %s/%s, which adopted %s %s: %w", ns, name, kind, obj, err)
	}
	a := other.Spec.Adopt
	if a == nil || !other.DeletionTimestamp.IsZero() {
		return false, nil
	}
	switch kind {
	case KindDeployment:
		return a.Deployment == obj, nil
	case KindService:
		return a.Service == obj, nil
	default:
		return a.HorizontalPodAutoscaler == obj, nil
	}
}

// adoptionLabels are the labels an adopted object carries.
func adoptionLabels(md *v1alpha1.ModelDeployment) map[string]string {
	return map[string]string{AdoptedByLabel: md.Name, ModelLabel: md.Spec.Model.Name}
}

// labelAdopted adds adoptionLabels to obj's metadata (only there) with a
// merge patch that touches nothing else.
func labelAdopted(ctx context.Context, c client.Client, obj client.Object, md *v1alpha1.ModelDeployment) error {
	want := adoptionLabels(md)
	have := obj.GetLabels()
	missing := false
	for k, v := range want {
		if have[k] != v {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	base := obj.DeepCopyObject().(client.Object)
	l := map[string]string{}
	for k, v := range have {
		l[k] = v
	}
	for k, v := range want {
		l[k] = v
	}
	obj.SetLabels(l)
	return c.Patch(ctx, obj, client.MergeFrom(base))
}

// release removes the adoption labels of objects md adopted before (its
// status.adopted) that spec.adopt no longer names. Objects gone, or
// adopted by someone else since, are left alone.
func release(ctx context.Context, c client.Client, md *v1alpha1.ModelDeployment) error {
	named := map[string]string{}
	if a := md.Spec.Adopt; a != nil {
		named[KindDeployment], named[KindService], named[KindHorizontalPodAutoscaler] = a.Deployment, a.Service, a.HorizontalPodAutoscaler
	}
	for _, ad := range md.Status.Adopted {
		if named[ad.Kind] == ad.Name {
			continue
		}
		var obj client.Object
		switch ad.Kind {
		case KindDeployment:
			obj = &appsv1.Deployment{}
		case KindService:
			obj = &corev1.Service{}
		case KindHorizontalPodAutoscaler:
			obj = &autoscalingv2.HorizontalPodAutoscaler{}
		default:
			continue
		}
		if err := c.Get(ctx, client.ObjectKey{Namespace: md.Namespace, Name: ad.Name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("releasing %s %s/%s: %w", ad.Kind, md.Namespace, ad.Name, err)
		}
		if obj.GetUID() != ad.UID || obj.GetLabels()[AdoptedByLabel] != md.Name {
			continue
		}
		base := obj.DeepCopyObject().(client.Object)
		l := map[string]string{}
		for k, v := range obj.GetLabels() {
			if k != AdoptedByLabel && k != ModelLabel {
				l[k] = v
			}
		}
		obj.SetLabels(l)
		if err := c.Patch(ctx, obj, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("releasing %s %s/%s: %w", ad.Kind, md.Namespace, ad.Name, err)
		}
	}
	return nil
}

// serviceEndpoint is the in-cluster URL of svc: its port named "http",
// else its first port.
func serviceEndpoint(svc *corev1.Service) string {
	if len(svc.Spec.Ports) == 0 {
		return ""
	}
	port := svc.Spec.Ports[0].Port
	for _, p := range svc.Spec.Ports {
		if p.Name == PortName {
			port = p.Port
			break
		}
	}
	return fmt.Sprintf("http://%s.%s.svc:%d", svc.Name, svc.Namespace, port)
}

// Diagnose explains, for the user, why an adopted Deployment, Service and
// HorizontalPodAutoscaler (svc and hpa may be nil) cannot work as written.
// pods are the Deployment's current pods, which show requests that a
// LimitRange added at admission. It returns nil when nothing is wrong.
//
//   - A Resource (or ContainerResource) metric with a Utilization target
//     on CPU or memory needs a request of that resource in every container
//     it measures (limits alone count: Kubernetes copies them into the
//     requests of pods); else the HPA cannot compute utilization, shows
//     <unknown> and never scales.
//   - A Pods or Object metric must be one of ServedPodsMetrics, the
//     metrics Meridian's custom-metrics adapter serves.
//   - The Service's selector must match the pod template's labels.
func Diagnose(dep *appsv1.Deployment, svc *corev1.Service, hpa *autoscalingv2.HorizontalPodAutoscaler, pods []corev1.Pod) []Diagnosis {
	var ds []Diagnosis
	if hpa != nil {
		ds = append(ds, diagnoseRequests(dep, hpa, pods)...)
		ds = append(ds, diagnoseMetrics(hpa)...)
	}
	if svc != nil && len(svc.Spec.Selector) > 0 &&
		!labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		ds = append(ds, Diagnosis{Reason: ReasonServiceSelectsNoPods, Message: fmt.Sprintf(
			"Service %s selects pods labelled %s, but the pods of Deployment %s are labelled %s: the Service sends no request to them; make spec.selector of the Service match the Deployment's spec.template.metadata.labels",
			svc.Name, labels.Set(svc.Spec.Selector), dep.Name, labels.Set(dep.Spec.Template.Labels))})
	}
	return ds
}

var exampleRequest = map[corev1.ResourceName]string{corev1.ResourceCPU: "500m", corev1.ResourceMemory: "512Mi"}

func resourceWord(r corev1.ResourceName) string {
	if r == corev1.ResourceCPU {
		return "CPU"
	}
	return string(r)
}

func diagnoseRequests(dep *appsv1.Deployment, hpa *autoscalingv2.HorizontalPodAutoscaler, pods []corev1.Pod) []Diagnosis {
	ps := dep.Spec.Template.Spec
	var ds []Diagnosis
	seen := map[string]bool{}
	for _, m := range hpa.Spec.Metrics {
		var name corev1.ResourceName
		var target autoscalingv2.MetricTarget
		only := "" // a ContainerResource metric measures one container
		switch {
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil:
			name, target = m.Resource.Name, m.Resource.Target
		case m.Type == autoscalingv2.ContainerResourceMetricSourceType && m.ContainerResource != nil:
			name, target, only = m.ContainerResource.Name, m.ContainerResource.Target, m.ContainerResource.Container
		default:
			continue
		}
		if target.Type != autoscalingv2.UtilizationMetricType {
			continue // AverageValue needs no request
		}
		if only == "" && ps.Resources != nil {
			if _, ok := ps.Resources.Requests[name]; ok {
				continue // pod-level requests
			}
			if _, ok := ps.Resources.Limits[name]; ok {
				continue
			}
		}
		pct := "?"
		if target.AverageUtilization != nil {
			pct = fmt.Sprint(*target.AverageUtilization)
		}
		var lacking []string
		for _, ctr := range measuredContainers(ps) {
			if only != "" && ctr.Name != only {
				continue
			}
			if hasRequest(ctr, name) || podsHaveRequest(pods, ctr.Name, name) {
				continue
			}
			lacking = append(lacking, fmt.Sprintf("%q", ctr.Name))
		}
		if len(lacking) == 0 || seen[string(name)] {
			continue
		}
		seen[string(name)] = true
		which := "container " + lacking[0] + " has"
		if len(lacking) > 1 {
			which = "containers " + strings.Join(lacking, ", ") + " have"
		}
		example := exampleRequest[name]
		if example == "" {
			example = "a quantity"
		}
		ds = append(ds, Diagnosis{Reason: ReasonMissingResourceRequests, Message: fmt.Sprintf(
			"HorizontalPodAutoscaler %s scales on %s utilization (target %s%%), but %s no %s request in Deployment %s: utilization is a percentage of the request, so Kubernetes cannot compute it, the HPA shows <unknown> and never scales. Fix: add resources.requests.%s (e.g. %s) to %s in the Deployment's pod template",
			hpa.Name, resourceWord(name), pct, which, resourceWord(name), dep.Name, name, example, strings.Join(lacking, ", "))})
	}
	return ds
}

// measuredContainers are the containers whose requests the HPA adds up:
// the regular ones and the sidecars (restartable init containers).
func measuredContainers(ps corev1.PodSpec) []corev1.Container {
	cs := slices.Clone(ps.Containers)
	for _, c := range ps.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			cs = append(cs, c)
		}
	}
	return cs
}

func hasRequest(c corev1.Container, name corev1.ResourceName) bool {
	_, req := c.Resources.Requests[name]
	_, lim := c.Resources.Limits[name]
	return req || lim
}

// podsHaveRequest reports whether there are pods and each has a request of
// name in its container ctr (a LimitRange's default, say).
func podsHaveRequest(pods []corev1.Pod, ctr string, name corev1.ResourceName) bool {
	if len(pods) == 0 {
		return false
	}
	for i := range pods {
		found := false
		for _, c := range measuredContainers(pods[i].Spec) {
			if c.Name == ctr {
				_, found = c.Resources.Requests[name]
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func diagnoseMetrics(hpa *autoscalingv2.HorizontalPodAutoscaler) []Diagnosis {
	var ds []Diagnosis
	for _, m := range hpa.Spec.Metrics {
		var kind, name string
		switch {
		case m.Type == autoscalingv2.PodsMetricSourceType && m.Pods != nil:
			kind, name = "Pods", m.Pods.Metric.Name
		case m.Type == autoscalingv2.ObjectMetricSourceType && m.Object != nil:
			kind, name = "Object", m.Object.Metric.Name
		default:
			continue
		}
		if IsServedMetric(name) {
			continue
		}
		if name == GPUUtilizationMetric {
			ds = append(ds, Diagnosis{Reason: ReasonUnservedMetric, Message: fmt.Sprintf(
				"HorizontalPodAutoscaler %s scales on the %s metric %q, which Meridian's metrics adapter does not serve yet (meridian serve exports no GPU metric): the HPA cannot read it and will not scale on it. Fix: scale on %s instead for now",
				hpa.Name, kind, name, strings.Join(ServedPodsMetrics(), ", "))})
			continue
		}
		ds = append(ds, Diagnosis{Reason: ReasonUnservedMetric, Message: fmt.Sprintf(
			"HorizontalPodAutoscaler %s scales on the %s metric %q, which Meridian's metrics adapter does not serve (it serves %s): the HPA cannot read it and will not scale on it. Fix: use one of those names, or install an adapter that serves %q",
			hpa.Name, kind, name, strings.Join(ServedPodsMetrics(), ", "), name)})
	}
	return ds
}

// AsAdoptionError returns the *AdoptionError in err's chain, if any.
func AsAdoptionError(err error) (*AdoptionError, bool) {
	var ae *AdoptionError
	ok := errors.As(err, &ae)
	return ae, ok
}
