package kube

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"meridian.dev/meridian/crds/v1alpha1"
)

// The warm buffer (ModelDeployment spec.warmBuffer): a Deployment of
// placeholder pods, each requesting what one replica requests and allowed
// on the same nodes, at a priority below every workload. The scheduler
// places them like replicas, so the node autoscaler (Karpenter, the
// Cluster Autoscaler) keeps nodes up for them; when a new replica finds
// no room, the scheduler preempts a placeholder and the replica starts on
// its node at once, and the evicted placeholder, pending now, makes the
// node autoscaler add the next node in the background.
const (
	// WarmBufferPriorityClass is the PriorityClass of the placeholders.
	WarmBufferPriorityClass = "meridian-warm-buffer"
	// WarmBufferPriority is its value: below the default priority (0) of
	// every pod that names no class, so any of them preempts a
	// placeholder.
	WarmBufferPriority = int32(-1000)
	// WarmBufferNameValue is the NameLabel of placeholder pods: not
	// NameValue, so the model's Service, the activator and the metrics
	// adapter never take a placeholder for a replica.
	WarmBufferNameValue = "meridian-warm-buffer"
	// DefaultPlaceholderImage is Options.PlaceholderImage's default.
	DefaultPlaceholderImage = "registry.k8s.io/pause:3.10"
	// placeholderContainer names the placeholders' one container.
	placeholderContainer = "placeholder"
)

// WarmBufferName is the name of md's warm-buffer Deployment.
func WarmBufferName(md *v1alpha1.ModelDeployment) string { return md.Name + "-warm-buffer" }

// IsPlaceholder says whether p is a warm-buffer placeholder: capacity
// reports count what it holds as free, since any replica may take it.
func IsPlaceholder(p *corev1.Pod) bool {
	return p.Spec.PriorityClassName == WarmBufferPriorityClass && p.Labels[NameLabel] == WarmBufferNameValue
}

// applyWarmBuffer creates, updates or deletes md's warm-buffer Deployment
// and returns how many placeholders are ready (holding a node).
func applyWarmBuffer(ctx context.Context, c client.Client, md *v1alpha1.ModelDeployment, opts Options) (int32, error) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: WarmBufferName(md), Namespace: md.Namespace}}
	if md.Spec.WarmBuffer <= 0 {
		if err := c.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
			return 0, client.IgnoreNotFound(err)
		}
		if !metav1.IsControlledBy(dep, md) {
			return 0, nil
		}
		return 0, client.IgnoreNotFound(c.Delete(ctx, dep, client.Preconditions{UID: &dep.UID}))
	}
	if err := ensureWarmBufferPriorityClass(ctx, c); err != nil {
		return 0, err
	}
	if _, err := controllerutil.CreateOrUpdate(ctx, c, dep, func() error {
		if err := own(dep, "Deployment", md, c.Scheme()); err != nil {
			return err
		}
		mutateWarmBuffer(dep, md, opts)
		return nil
	}); err != nil {
		return 0, err
	}
	return dep.Status.ReadyReplicas, nil
}

// ensureWarmBufferPriorityClass creates the placeholders' PriorityClass,
// shared by every model, once.
func ensureWarmBufferPriorityClass(ctx context.Context, c client.Client) error {
	pc := &schedulingv1.PriorityClass{}
	err := c.Get(ctx, client.ObjectKey{Name: WarmBufferPriorityClass}, pc)
	if err == nil {
		if pc.Value != WarmBufferPriority {
			return fmt.Errorf("PriorityClass %s exists with value %d, not %d: placeholders at that priority might not give way to replicas; delete it and the agent creates it again", WarmBufferPriorityClass, pc.Value, WarmBufferPriority)
		}
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading PriorityClass %s: %w", WarmBufferPriorityClass, err)
	}
	pc = &schedulingv1.PriorityClass{
		ObjectMeta:       metav1.ObjectMeta{Name: WarmBufferPriorityClass, Labels: map[string]string{"app.kubernetes.io/managed-by": "meridian-agent"}},
		Value:            WarmBufferPriority,
		PreemptionPolicy: ptr.To(corev1.PreemptNever),
		Description:      "Meridian's warm-buffer placeholders: they hold nodes for a model's next replicas and give way to any pod",
	}
	if err := c.Create(ctx, pc); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating PriorityClass %s: %w", WarmBufferPriorityClass, err)
	}
	return nil
}

func mutateWarmBuffer(dep *appsv1.Deployment, md *v1alpha1.ModelDeployment, opts Options) {
	labels := map[string]string{NameLabel: WarmBufferNameValue, InstanceLabel: md.Name, ModelLabel: md.Spec.Model.Name}
	if dep.CreationTimestamp.IsZero() {
		dep.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{NameLabel: WarmBufferNameValue, InstanceLabel: md.Name}}
	}
	dep.Labels = labels
	dep.Spec.Replicas = ptr.To(md.Spec.WarmBuffer)
	tpl := &dep.Spec.Template
	tpl.Labels = labels
	ps := &tpl.Spec
	ps.PriorityClassName = WarmBufferPriorityClass
	ps.Priority = nil // the admission plugin fills it from the class
	// Preempted placeholders go at once: a replica waits for their exit.
	ps.TerminationGracePeriodSeconds = ptr.To(int64(0))
	ps.AutomountServiceAccountToken = ptr.To(false)
	ps.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To(int64(65535)),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	ps.NodeSelector, ps.Tolerations = nodeChoice(md, opts)
	ps.Containers = []corev1.Container{{
		Name:            placeholderContainer,
		Image:           opts.PlaceholderImage,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Resources:       resourceRequirements(md),
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}}
}
