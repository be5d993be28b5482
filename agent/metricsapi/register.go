package metricsapi

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	discoveryv1ac "k8s.io/client-go/applyconfigurations/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldOwner is the field manager of everything the adapter applies.
const FieldOwner = "meridian-agent-metricsapi"

// managedBy labels the objects the adapter registers itself with.
var managedBy = map[string]string{"app.kubernetes.io/managed-by": "meridian-agent"}

// apiServices are the group versions the adapter serves, each registered
// with its own APIService, with the priorities custom-metrics adapters
// conventionally use (v1beta2 preferred).
var apiServices = []struct {
	group, version  string
	versionPriority int64
}{
	{"custom.metrics.k8s.io", "v1beta2", 200},
	{"custom.metrics.k8s.io", "v1beta1", 100},
	{"external.metrics.k8s.io", "v1beta1", 100},
}

// registration is where the API server reaches the adapter.
type registration struct {
	namespace, service string
	servicePort        int32
	ip                 net.IP
	port               int32
	caBundle           []byte
}

// apply creates or updates, with server-side apply, the namespace, a
// selector-less Service, its EndpointSlice pointing at the adapter, and one
// APIService per served group version. Applying again changes nothing
// unless the address or the CA changed.
func (r registration) apply(ctx context.Context, c client.Client) error {
	opts := []client.ApplyOption{client.FieldOwner(FieldOwner), client.ForceOwnership}
	if err := c.Apply(ctx, corev1ac.Namespace(r.namespace).WithLabels(managedBy), opts...); err != nil {
		return fmt.Errorf("namespace %s: %w", r.namespace, err)
	}
	svc := corev1ac.Service(r.service, r.namespace).WithLabels(managedBy).
		WithSpec(corev1ac.ServiceSpec().WithType(corev1.ServiceTypeClusterIP).
			WithPorts(corev1ac.ServicePort().WithName("https").WithProtocol(corev1.ProtocolTCP).
				WithPort(r.servicePort).WithTargetPort(intstr.FromInt32(r.port))))
	if err := c.Apply(ctx, svc, opts...); err != nil {
		return fmt.Errorf("service %s/%s: %w", r.namespace, r.service, err)
	}
	addrType := discoveryv1.AddressTypeIPv4
	if r.ip.To4() == nil {
		addrType = discoveryv1.AddressTypeIPv6
	}
	sliceLabels := map[string]string{
		discoveryv1.LabelServiceName: r.service,
		discoveryv1.LabelManagedBy:   "meridian-agent",
	}
	for k, v := range managedBy {
		sliceLabels[k] = v
	}
	slice := discoveryv1ac.EndpointSlice(r.service, r.namespace).WithLabels(sliceLabels).
		WithAddressType(addrType).
		WithEndpoints(discoveryv1ac.Endpoint().WithAddresses(r.ip.String()).
			WithConditions(discoveryv1ac.EndpointConditions().WithReady(true))).
		WithPorts(discoveryv1ac.EndpointPort().WithName("https").WithProtocol(corev1.ProtocolTCP).WithPort(r.port))
	if err := c.Apply(ctx, slice, opts...); err != nil {
		return fmt.Errorf("endpointslice %s/%s: %w", r.namespace, r.service, err)
	}
	for _, as := range apiServices {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiregistration.k8s.io/v1",
			"kind":       "APIService",
			"metadata":   map[string]any{"name": as.version + "." + as.group, "labels": map[string]any{"app.kubernetes.io/managed-by": "meridian-agent"}},
			"spec": map[string]any{
				"group":                as.group,
				"version":              as.version,
				"groupPriorityMinimum": int64(100),
				"versionPriority":      as.versionPriority,
				"caBundle":             base64.StdEncoding.EncodeToString(r.caBundle),
				"service": map[string]any{
					"namespace": r.namespace,
					"name":      r.service,
					"port":      int64(r.servicePort),
				},
			},
		}}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...); err != nil {
			return fmt.Errorf("apiservice %s: %w", u.GetName(), err)
		}
	}
	return nil
}

// APIServiceNames are the names of the APIServices the adapter registers.
func APIServiceNames() []string {
	out := make([]string, 0, len(apiServices))
	for _, as := range apiServices {
		out = append(out, as.version+"."+as.group)
	}
	return out
}
