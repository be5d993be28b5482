package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"meridian.dev/meridian/crds/v1alpha1"
)

// Labels on every object Apply creates (and on the pods of the Deployment).
const (
	// NameLabel is app.kubernetes.io/name; its value is always NameValue.
	NameLabel = "app.kubernetes.io/name"
	// NameValue marks the objects and pods of Meridian model replicas.
	NameValue = "meridian-model"
	// InstanceLabel is app.kubernetes.io/instance: the ModelDeployment's name.
	InstanceLabel = "app.kubernetes.io/instance"
	// ModelLabel is the name of the model served.
	ModelLabel = "meridian.dev/model"
)

// GPUResource is the extended resource NVIDIA's device plugin advertises.
const GPUResource corev1.ResourceName = "nvidia.com/gpu"

// GPUProductLabel is the node label naming a node's GPU product, as NVIDIA's
// GPU feature discovery sets it (e.g. "NVIDIA-H100-80GB-HBM3").
const GPUProductLabel = "nvidia.com/gpu.product"

// ContainerName is the name of the inference server's container.
const ContainerName = "server"

// PortName names the HTTP port of the container and of the Service.
const PortName = "http"

// Health endpoints of `meridian serve` (Open Inference Protocol v2).
const (
	ReadinessPath = "/v2/health/ready"
	LivenessPath  = "/v2/health/live"
)

// Options configure the replicas Apply creates. They are the same for every
// ModelDeployment an agent runs; the zero value is usable.
type Options struct {
	// Image is the container image holding the meridian binary (on PATH),
	// the ONNX Runtime library it loads, and the model repository at
	// ModelRepository. Default "meridian:dev", the image the build produces.
	Image string
	// ServiceType of each ModelDeployment's Service. Default
	// LoadBalancer: its address (status.loadBalancer.ingress, where a cloud
	// or MetalLB or the local fleet's load balancer writes it) is the
	// endpoint the global balancer steers clients to, on Port. ClusterIP
	// keeps replicas reachable only inside the cluster.
	ServiceType corev1.ServiceType
	// ImagePullPolicy of the container. Default: Always for an image
	// without a tag or tagged "latest", IfNotPresent otherwise, as
	// Kubernetes itself defaults it.
	ImagePullPolicy corev1.PullPolicy
	// ModelRepository is the model repository's path inside the image,
	// passed to `meridian serve --models`. Default "/models". A
	// ModelDeployment's spec.model.repository is not mounted by this
	// runtime yet; replicas always serve from this path.
	ModelRepository string
	// Port the server listens on in the container and the Service serves
	// on. Default 8000.
	Port int32
	// DrainTimeout is how long a replica that is asked to stop keeps
	// answering in-flight requests (`meridian serve --drain-timeout`); the
	// pods' termination grace period is this plus 5 seconds, so the kubelet
	// does not kill a replica while it drains. Default 30s.
	DrainTimeout time.Duration
	// NodeSelector is added to every replica's node selector (a GPU
	// product selector is added for GPU replicas on top of it).
	NodeSelector map[string]string
	// Tolerations are added to every replica's tolerations (GPU replicas
	// also tolerate the nvidia.com/gpu NoSchedule taint).
	Tolerations []corev1.Toleration
	// ServerArgs are extra flags appended to `meridian serve`, e.g.
	// "--cache-size=0".
	ServerArgs []string
	// NodeLossToleration is how long a replica stays bound to a node that
	// has stopped reporting (taint node.kubernetes.io/unreachable) or says
	// it is not ready (node.kubernetes.io/not-ready) before Kubernetes
	// evicts it and the Deployment starts a replacement on a healthy node:
	// every replica tolerates those NoExecute taints for this long. The
	// replica leaves its Service's endpoints as soon as the node turns
	// NotReady (the controller manager's node-monitor grace period, 50s by
	// default), whatever this is; this bounds how long its capacity is
	// missing after that. Default 30s (DefaultNodeLossToleration), where
	// Kubernetes gives pods 300s, too long for a real-time endpoint.
	// Rounded up to whole seconds. Negative: no such toleration is set and
	// the cluster's default applies. A toleration of the same taint in
	// Tolerations takes its place.
	NodeLossToleration time.Duration
	// PlaceholderImage runs the warm buffer's placeholder pods: it must
	// do nothing until stopped, as the pause image does. Default
	// DefaultPlaceholderImage, which every node running containerd
	// already holds as its sandbox image.
	PlaceholderImage string
	// IdleWindow is how long a ModelDeployment with minReplicas 0 serves
	// no request before the agent scales it to zero replicas; the agent's
	// activator wakes it on the next request (see Zero). Zero or negative:
	// no scale to zero (Apply then pins a model without metric targets to
	// minReplicas, 0 included, as before). The agent defaults it to
	// DefaultIdleWindow (5 minutes).
	IdleWindow time.Duration
}

// Defaults of Options.
const (
	DefaultImage           = "meridian:dev"
	DefaultModelRepository = "/models"
	DefaultPort            = int32(8000)
	DefaultDrainTimeout    = 30 * time.Second
	// DefaultNodeLossToleration is Options.NodeLossToleration's default.
	DefaultNodeLossToleration = 30 * time.Second
)

// gracePadding is how much longer than the drain the kubelet waits before
// it kills a replica.
const gracePadding = 5 * time.Second

func (o Options) withDefaults() Options {
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if o.ImagePullPolicy == "" {
		o.ImagePullPolicy = defaultPullPolicy(o.Image)
	}
	if o.ServiceType == "" {
		o.ServiceType = corev1.ServiceTypeLoadBalancer
	}
	if o.ModelRepository == "" {
		o.ModelRepository = DefaultModelRepository
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.PlaceholderImage == "" {
		o.PlaceholderImage = DefaultPlaceholderImage
	}
	if o.NodeLossToleration == 0 {
		o.NodeLossToleration = DefaultNodeLossToleration
	}
	return o
}

// defaultPullPolicy is Kubernetes' default for an image reference.
func defaultPullPolicy(image string) corev1.PullPolicy {
	if strings.Contains(image, "@") {
		return corev1.PullIfNotPresent
	}
	name := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(name, ":")
	if i < 0 || name[i+1:] == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// Status is what Apply read back about a ModelDeployment's replicas.
type Status struct {
	// Replicas is how many pods the Deployment has, ready or not.
	Replicas int32
	// ReadyReplicas pass their readiness probe and receive traffic.
	ReadyReplicas int32
	// DesiredReplicas is the autoscaler's latest decision: the HPA's
	// desired replicas while it is able to compute them, else the
	// Deployment's replica count (which the HPA sets when it scales).
	DesiredReplicas int32
	// PendingReplicas are pods the scheduler found no node for (the pods a
	// Cluster Autoscaler adds nodes for).
	PendingReplicas int32
	// PendingMessage explains PendingReplicas for the user: what the pods
	// wait for (a GPU node, or room), with the scheduler's own words.
	PendingMessage string
	// Endpoint is the Service's in-cluster URL,
	// http://<name>.<namespace>.svc:<port>; empty for an adoption without
	// a Service.
	Endpoint string
	// WarmBuffer is how many of spec.warmBuffer's placeholders run, each
	// holding a replica's worth of a node.
	WarmBuffer int32
	// Adopted lists the objects taken over through spec.adopt.
	Adopted []v1alpha1.AdoptedObject
	// Diagnoses say why adopted objects cannot work as written (empty when
	// they can, and without spec.adopt).
	Diagnoses []Diagnosis
}

// Labels returns the labels Apply puts on the objects and pods of md.
func Labels(md *v1alpha1.ModelDeployment) map[string]string {
	return map[string]string{
		NameLabel:     NameValue,
		InstanceLabel: md.Name,
		ModelLabel:    md.Spec.Model.Name,
	}
}

// selectorLabels select md's pods; they leave the model out because a
// Deployment's selector cannot change.
func selectorLabels(md *v1alpha1.ModelDeployment) map[string]string {
	return map[string]string{NameLabel: NameValue, InstanceLabel: md.Name}
}

// Endpoint is the in-cluster URL of md's Service.
func Endpoint(md *v1alpha1.ModelDeployment, opts Options) string {
	opts = opts.withDefaults()
	return fmt.Sprintf("http://%s.%s.svc:%d", md.Name, md.Namespace, opts.Port)
}

// PublicEndpoint is the URL of svc's load balancer address (an IP, or a
// hostname as cloud load balancers give) on port, or "" while it has none.
func PublicEndpoint(svc *corev1.Service, port int32) string {
	for _, in := range svc.Status.LoadBalancer.Ingress {
		host := in.IP
		if host == "" {
			host = in.Hostname
		}
		if host != "" {
			return "http://" + net.JoinHostPort(host, strconv.Itoa(int(port)))
		}
	}
	return ""
}

// Apply creates or updates md's Deployment, Service and
// HorizontalPodAutoscaler and returns their status. md must be the object as
// read from the API server (it needs its UID for the owner references), and
// c's scheme must know the meridian.dev/v1alpha1 types.
//
// With at least one metric target in spec.autoscaling.targets, the HPA owns
// the replica count: Apply sets the Deployment's replicas only when it
// creates it (to the HPA's minReplicas) and never again, as Kubernetes
// recommends. With no target, a HorizontalPodAutoscaler would fall back to
// 80% CPU, so Apply deletes the HPA it made, if any, and keeps the Deployment
// at minReplicas itself (0 included).
//
// Objects of the same name that md does not control are left alone and
// reported as an error wrapping ErrNotControlled, which says how to adopt
// them.
//
// With spec.adopt, Apply creates nothing: it takes over the named
// Deployment, Service and HorizontalPodAutoscaler as they are (see
// v1alpha1.Adoption), labels them with AdoptedByLabel and ModelLabel, sets
// the HPA's replica range, and returns their state with Status.Adopted and
// Status.Diagnoses. It sets no owner references: deleting md leaves them.
// When it refuses the adoption it returns an *AdoptionError and changes
// nothing. Objects md adopted before (md.Status.Adopted) that spec.adopt no
// longer names lose the labels.
func Apply(ctx context.Context, c client.Client, md *v1alpha1.ModelDeployment, opts Options) (Status, error) {
	if err := release(ctx, c, md); err != nil {
		return Status{}, err
	}
	if md.Spec.Adopt != nil {
		return adopt(ctx, c, md)
	}
	st, _, err := apply(ctx, c, md, opts)
	return st, err
}

// applied says what apply did to each object, for tests.
type applied struct {
	deployment, service, hpa controllerutil.OperationResult
}

func apply(ctx context.Context, c client.Client, md *v1alpha1.ModelDeployment, opts Options) (Status, applied, error) {
	var did applied
	if md.UID == "" {
		return Status{}, did, fmt.Errorf("applying ModelDeployment %s/%s: it has no UID; pass the object as read from the API server", md.Namespace, md.Name)
	}
	opts = opts.withDefaults()
	scheme := c.Scheme()
	autoscaled := hasTargets(md.Spec.Autoscaling.Targets)
	key := client.ObjectKeyFromObject(md)

	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: md.Name, Namespace: md.Namespace}}
	op, err := controllerutil.CreateOrUpdate(ctx, c, dep, func() error {
		if err := own(dep, "Deployment", md, scheme); err != nil {
			return err
		}
		mutateDeployment(dep, md, opts, autoscaled)
		return nil
	})
	if err != nil {
		return Status{}, did, fmt.Errorf("applying the Deployment of ModelDeployment %s: %w", key, err)
	}
	did.deployment = op

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: md.Name, Namespace: md.Namespace}}
	op, err = controllerutil.CreateOrUpdate(ctx, c, svc, func() error {
		if err := own(svc, "Service", md, scheme); err != nil {
			return err
		}
		mutateService(svc, md, opts)
		return nil
	})
	if err != nil {
		return Status{}, did, fmt.Errorf("applying the Service of ModelDeployment %s: %w", key, err)
	}
	did.service = op

	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: md.Name, Namespace: md.Namespace}}
	if autoscaled {
		op, err = controllerutil.CreateOrUpdate(ctx, c, hpa, func() error {
			if err := own(hpa, "HorizontalPodAutoscaler", md, scheme); err != nil {
				return err
			}
			mutateHPA(hpa, md)
			return nil
		})
		if err != nil {
			return Status{}, did, fmt.Errorf("applying the HorizontalPodAutoscaler of ModelDeployment %s: %w", key, err)
		}
		did.hpa = op
	} else {
		if err := deleteOwnHPA(ctx, c, hpa, md); err != nil {
			return Status{}, did, fmt.Errorf("deleting the HorizontalPodAutoscaler of ModelDeployment %s (it has no metric targets): %w", key, err)
		}
		hpa = nil
	}

	warm, err := applyWarmBuffer(ctx, c, md, opts)
	if err != nil {
		return Status{}, did, fmt.Errorf("applying the warm buffer of ModelDeployment %s: %w", key, err)
	}

	st, err := readStatus(ctx, c, md, dep, hpa, opts)
	if err != nil {
		return Status{}, did, fmt.Errorf("reading the status of ModelDeployment %s: %w", key, err)
	}
	st.WarmBuffer = warm
	if pub := PublicEndpoint(svc, opts.Port); pub != "" {
		st.Endpoint = pub
	}
	return st, did, nil
}

// ErrNotControlled is wrapped by the error Apply returns when an object of
// the name it would use exists and the ModelDeployment does not control it.
var ErrNotControlled = errors.New("exists and was not created by Meridian for this ModelDeployment, so Meridian leaves it alone")

// adoptField is the spec.adopt field that names an object of kind.
var adoptField = map[string]string{
	KindDeployment: "deployment", KindService: "service", KindHorizontalPodAutoscaler: "horizontalPodAutoscaler",
}

// own makes md the controller of obj, refusing an existing object that md
// does not control.
func own(obj client.Object, kind string, md *v1alpha1.ModelDeployment, scheme *runtime.Scheme) error {
	if ts := obj.GetCreationTimestamp(); !ts.IsZero() && !metav1.IsControlledBy(obj, md) {
		return fmt.Errorf("%s %s/%s %w. To run the model on your own objects instead, adopt them: set spec.runtime: kubernetes and spec.adopt.%s: %s on ModelDeployment %s, with your Deployment, Service and HorizontalPodAutoscaler in spec.adopt.deployment, .service and .horizontalPodAutoscaler (`kubectl explain modeldeployment.spec.adopt`); otherwise rename the ModelDeployment or delete the %s",
			kind, obj.GetNamespace(), obj.GetName(), ErrNotControlled, adoptField[kind], obj.GetName(), md.Name, kind)
	}
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range Labels(md) {
		labels[k] = v
	}
	obj.SetLabels(labels)
	return controllerutil.SetControllerReference(md, obj, scheme)
}

func deleteOwnHPA(ctx context.Context, c client.Client, hpa *autoscalingv2.HorizontalPodAutoscaler, md *v1alpha1.ModelDeployment) error {
	if err := c.Get(ctx, client.ObjectKeyFromObject(hpa), hpa); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(hpa, md) {
		return nil // not ours; leave it
	}
	err := c.Delete(ctx, hpa, client.Preconditions{UID: &hpa.UID})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// minReplicas is spec.autoscaling.minReplicas, 1 when unset.
func minReplicas(md *v1alpha1.ModelDeployment) int32 {
	if m := md.Spec.Autoscaling.MinReplicas; m != nil && *m >= 0 {
		return *m
	}
	return 1
}

func mutateDeployment(dep *appsv1.Deployment, md *v1alpha1.ModelDeployment, opts Options, autoscaled bool) {
	if dep.CreationTimestamp.IsZero() {
		// The selector is immutable, and the replica count belongs to the
		// HPA once the Deployment exists.
		dep.Spec.Selector = &metav1.LabelSelector{MatchLabels: selectorLabels(md)}
		dep.Spec.Replicas = ptr.To(hpaMinReplicas(md))
	}
	if !autoscaled && !ScalesToZero(md, opts) {
		// With scale to zero, Zero sets the count (0 when idle, 1 when a
		// request comes).
		dep.Spec.Replicas = ptr.To(minReplicas(md))
	}

	tpl := &dep.Spec.Template
	if tpl.Labels == nil {
		tpl.Labels = map[string]string{}
	}
	for k, v := range Labels(md) {
		tpl.Labels[k] = v
	}
	ps := &tpl.Spec
	ps.TerminationGracePeriodSeconds = ptr.To(int64((opts.DrainTimeout + gracePadding + time.Second - 1) / time.Second))
	// The restricted Pod Security profile: the image's user is non-root
	// (65532), the server needs no privilege and no API token.
	ps.AutomountServiceAccountToken = ptr.To(false)
	ps.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}

	var tolerations []corev1.Toleration
	ps.NodeSelector, tolerations = nodeChoice(md, opts)
	tolerations = append(tolerations, nodeLossTolerations(tolerations, opts.NodeLossToleration)...)
	ps.Tolerations = tolerations
	// Replicas on different nodes, so that losing one node loses only its
	// share. Soft (ScheduleAnyway): a hard constraint would keep the
	// replacements of a lost node's replicas off the surviving nodes, as
	// the lost node still counts, holding none. pod-template-hash spreads
	// each rollout's replicas on their own.
	ps.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew:           1,
		TopologyKey:       corev1.LabelHostname,
		WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector:     &metav1.LabelSelector{MatchLabels: selectorLabels(md)},
		MatchLabelKeys:    []string{appsv1.DefaultDeploymentUniqueLabelKey},
	}}

	i := containerIndex(ps.Containers, ContainerName)
	if i < 0 {
		ps.Containers = append(ps.Containers, corev1.Container{Name: ContainerName})
		i = len(ps.Containers) - 1
	}
	ctr := &ps.Containers[i]
	ctr.Image = opts.Image
	ctr.ImagePullPolicy = opts.ImagePullPolicy
	ctr.Command = []string{"meridian"}
	ctr.Args = serverArgs(md, opts)
	ctr.Ports = []corev1.ContainerPort{{Name: PortName, ContainerPort: opts.Port, Protocol: corev1.ProtocolTCP}}
	ctr.Resources = resourceRequirements(md)
	ctr.SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	// Readiness turns off while a replica drains or its queue is full.
	ctr.ReadinessProbe = httpProbe(ReadinessPath, 5, 1, 3)
	ctr.LivenessProbe = httpProbe(LivenessPath, 10, 5, 3)
	// Loading large models may take minutes; liveness waits for start-up.
	ctr.StartupProbe = httpProbe(LivenessPath, 5, 1, 120)
}

// nodeChoice is where md's replicas (and its warm buffer's placeholders)
// may run: opts' node selector and tolerations, plus the GPU product's
// label and a toleration of GPU nodes' taint for a GPU model.
func nodeChoice(md *v1alpha1.ModelDeployment, opts Options) (map[string]string, []corev1.Toleration) {
	gpu := md.Spec.Resources.GPU
	var nodeSelector map[string]string
	if len(opts.NodeSelector) > 0 || (gpu != nil && gpu.Type != "") {
		nodeSelector = map[string]string{}
		for k, v := range opts.NodeSelector {
			nodeSelector[k] = v
		}
		if gpu != nil && gpu.Type != "" {
			nodeSelector[GPUProductLabel] = gpu.Type
		}
	}
	tolerations := append([]corev1.Toleration(nil), opts.Tolerations...)
	if gpu != nil {
		tolerations = append(tolerations, corev1.Toleration{
			Key: string(GPUResource), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
		})
	}
	return nodeSelector, tolerations
}

// nodeLossTaints are the NoExecute taints the node lifecycle controller
// puts on a node that stops reporting or reports not ready.
var nodeLossTaints = []string{corev1.TaintNodeUnreachable, corev1.TaintNodeNotReady}

// nodeLossTolerations tolerate the node-loss taints for d (see
// Options.NodeLossToleration), leaving out a taint that have already
// tolerates in any way (the shortest toleration of a taint is the one that
// counts, so adding ours would cut theirs short).
func nodeLossTolerations(have []corev1.Toleration, d time.Duration) []corev1.Toleration {
	if d < 0 {
		return nil
	}
	secs := int64((d + time.Second - 1) / time.Second)
	var out []corev1.Toleration
	for _, key := range nodeLossTaints {
		if slices.ContainsFunc(have, func(t corev1.Toleration) bool {
			return (t.Key == key || (t.Key == "" && t.Operator == corev1.TolerationOpExists)) &&
				(t.Effect == "" || t.Effect == corev1.TaintEffectNoExecute)
		}) {
			continue
		}
		out = append(out, corev1.Toleration{
			Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(secs),
		})
	}
	return out
}

func containerIndex(cs []corev1.Container, name string) int {
	for i := range cs {
		if cs[i].Name == name {
			return i
		}
	}
	return -1
}

func serverArgs(md *v1alpha1.ModelDeployment, opts Options) []string {
	args := []string{
		"serve",
		"--listen", ":" + strconv.Itoa(int(opts.Port)),
		"--models", opts.ModelRepository,
		"--log-format", "json",
		"--drain-timeout", opts.DrainTimeout.String(),
	}
	if md.Spec.Resources.GPU != nil {
		args = append(args, "--device", "cuda")
	}
	return append(args, opts.ServerArgs...)
}

// resourceRequirements requests what spec.resources asks for and limits
// each replica to the same (the CRD's defaults, 1 CPU and 1Gi, stand in
// for zero values).
func resourceRequirements(md *v1alpha1.ModelDeployment) corev1.ResourceRequirements {
	r := md.Spec.Resources
	cpu, mem := r.CPU, r.Memory
	if cpu.IsZero() {
		cpu = resource.MustParse("1")
	}
	if mem.IsZero() {
		mem = resource.MustParse("1Gi")
	}
	list := corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem}
	if r.GPU != nil {
		list[GPUResource] = *resource.NewQuantity(int64(gpuCount(r.GPU)), resource.DecimalSI)
	}
	return corev1.ResourceRequirements{Requests: list, Limits: list.DeepCopy()}
}

func gpuCount(g *v1alpha1.GPURequirement) int32 {
	if g.Count < 1 {
		return 1
	}
	return g.Count
}

// httpProbe spells out every field the API server would otherwise default,
// so that a second Apply finds nothing to change.
func httpProbe(path string, period, timeout, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString(PortName), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    period,
		TimeoutSeconds:   timeout,
		SuccessThreshold: 1,
		FailureThreshold: failures,
	}
}

func mutateService(svc *corev1.Service, md *v1alpha1.ModelDeployment, opts Options) {
	svc.Spec.Type = opts.ServiceType
	svc.Spec.Selector = selectorLabels(md)
	// The API server allocates a LoadBalancer's node port; keep it, or
	// every Apply would write the Service again.
	var nodePort int32
	for _, p := range svc.Spec.Ports {
		if p.Name == PortName && opts.ServiceType != corev1.ServiceTypeClusterIP {
			nodePort = p.NodePort
		}
	}
	svc.Spec.Ports = []corev1.ServicePort{{
		Name: PortName, Protocol: corev1.ProtocolTCP, Port: opts.Port, TargetPort: intstr.FromString(PortName), NodePort: nodePort,
	}}
}

func readStatus(ctx context.Context, c client.Client, md *v1alpha1.ModelDeployment, dep *appsv1.Deployment, hpa *autoscalingv2.HorizontalPodAutoscaler, opts Options) (Status, error) {
	st, _, err := readStatusOf(ctx, c, md.Namespace, dep, hpa, labels.SelectorFromSet(selectorLabels(md)))
	st.Endpoint = Endpoint(md, opts)
	return st, err
}

// readStatusOf reads the replicas of dep, whose pods in ns match selector,
// and returns the pods too.
func readStatusOf(ctx context.Context, c client.Client, ns string, dep *appsv1.Deployment, hpa *autoscalingv2.HorizontalPodAutoscaler, selector labels.Selector) (Status, []corev1.Pod, error) {
	st := Status{
		Replicas:      dep.Status.Replicas,
		ReadyReplicas: dep.Status.ReadyReplicas,
	}
	if dep.Spec.Replicas != nil {
		st.DesiredReplicas = *dep.Spec.Replicas
	}
	if hpa != nil && hpa.Status.DesiredReplicas > 0 && hpaScalingActive(hpa) {
		st.DesiredReplicas = hpa.Status.DesiredReplicas
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return Status{}, nil, fmt.Errorf("listing pods: %w", err)
	}
	var pending []*corev1.Pod
	for i := range pods.Items {
		if Unschedulable(&pods.Items[i]) {
			pending = append(pending, &pods.Items[i])
		}
	}
	st.PendingReplicas = int32(len(pending))
	if len(pending) > 0 {
		msg, err := pendingMessage(ctx, c, pending)
		if err != nil {
			return Status{}, nil, err
		}
		st.PendingMessage = msg
	}
	return st, pods.Items, nil
}

// pendingMessage says what the unschedulable pods wait for.
func pendingMessage(ctx context.Context, c client.Client, pending []*corev1.Pod) (string, error) {
	n := len(pending)
	replicas := fmt.Sprintf("%d replicas wait", n)
	if n == 1 {
		replicas = "1 replica waits"
	}
	var gpus int64
	for _, p := range pending {
		if q, ok := PodRequests(p)[GPUResource]; ok && q.Value() > gpus {
			gpus = q.Value()
		}
	}
	scheduler := ""
	for _, cond := range pending[0].Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Message != "" {
			scheduler = " (scheduler: " + strings.TrimSpace(cond.Message) + ")"
		}
	}
	if gpus == 0 {
		return replicas + " for a node with room for their CPU and memory requests; the Cluster Autoscaler may add one" + scheduler, nil
	}
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		return "", fmt.Errorf("listing nodes: %w", err)
	}
	offered := 0
	for i := range nodes.Items {
		nd := &nodes.Items[i]
		if q, ok := nd.Status.Allocatable[GPUResource]; ok && q.Value() > 0 && !nd.Spec.Unschedulable && nodeReady(nd) {
			offered++
		}
	}
	if offered == 0 {
		return fmt.Sprintf("%s for a GPU node: each requests %s: %d and no schedulable node in the cluster offers %s; add a GPU node (with NVIDIA's device plugin), or a GPU node group the Cluster Autoscaler can grow%s",
			replicas, GPUResource, gpus, GPUResource, scheduler), nil
	}
	return fmt.Sprintf("%s for a GPU node: each requests %s: %d and none of the %d GPU nodes has that many free that the pods may use (node selector, taints); the Cluster Autoscaler may add one%s",
		replicas, GPUResource, gpus, offered, scheduler), nil
}

func hpaScalingActive(hpa *autoscalingv2.HorizontalPodAutoscaler) bool {
	for _, c := range hpa.Status.Conditions {
		if c.Type == autoscalingv2.ScalingActive {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Unschedulable reports whether p waits for a node: not bound, not being
// deleted, and marked Unschedulable by the scheduler (pods the scheduler has
// not tried yet, or that scheduling gates hold, do not count).
func Unschedulable(p *corev1.Pod) bool {
	if p.Spec.NodeName != "" || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodPending {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			return c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable
		}
	}
	return false
}
