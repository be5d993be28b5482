package controlplane

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"meridian.dev/meridian/internal/hostip"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// MetricsServerAPIService is the APIService metrics-server serves.
const MetricsServerAPIService = "v1beta1.metrics.k8s.io"

// MetricsServerResolution is metrics-server's --metric-resolution: how
// often it scrapes every kubelet. 15s is what metrics-server's own
// manifests run with (the binary's default is 60s).
const MetricsServerResolution = 15 * time.Second

// startMetricsServer runs metrics-server as a process of this host and
// registers it the way a cluster does, adapted to a control plane without
// pods of its own or kube-proxy:
//
//   - identity and RBAC: metrics-server's own manifests
//     (bin/metrics-server-rbac.yaml, copied from the pinned module by
//     `make controlplane`) — the ServiceAccount kube-system/metrics-server
//     with system:metrics-server (nodes, pods, nodes/metrics),
//     system:auth-delegator and extension-apiserver-authentication-reader.
//     metrics-server runs with a token of that ServiceAccount (TokenRequest)
//     in its kubeconfig, for the API server and for the kubelets, which
//     authenticate bearer tokens by TokenReview and authorize them by
//     SubjectAccessReview (an admin client certificate would not do: the
//     kubelets of internal/node have no client CA).
//   - serving: HTTPS on this host's first global IPv4 address (the API
//     server rejects loopback endpoints), with a certificate for
//     metrics-server.kube-system.svc signed by a CA generated here, which
//     the APIService carries as caBundle (its manifests skip verification
//     instead).
//   - registration: a selector-less Service kube-system/metrics-server, an
//     EndpointSlice with that address (the API server dials it directly:
//     --enable-aggregator-routing) and the APIService v1beta1.metrics.k8s.io.
//
// It waits until the APIService is Available.
func (cp *ControlPlane) startMetricsServer(ctx, pctx context.Context, bin string, logs io.Writer) error {
	path := filepath.Join(bin, "metrics-server")
	rbac, err := os.ReadFile(filepath.Join(bin, "metrics-server-rbac.yaml"))
	if err != nil {
		return fmt.Errorf("metrics-server: %w; run `make controlplane`", err)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("metrics-server missing in %s; run `make controlplane`", bin)
	}
	ip, err := hostip.IPv4()
	if err != nil {
		return fmt.Errorf("metrics-server: the API server needs a non-loopback address to dial it: %w", err)
	}
	port, err := freePort(ip)
	if err != nil {
		return fmt.Errorf("metrics-server: %w", err)
	}
	if err := cp.applyYAML(ctx, rbac); err != nil {
		return fmt.Errorf("metrics-server RBAC: %w", err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "metrics-server"}}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		// The control plane may run for days (`meridian up`); metrics-server
		// reads its kubeconfig once.
		ExpirationSeconds: ptr.To(int64(365 * 24 * 3600)),
	}}
	if err := cp.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return fmt.Errorf("metrics-server token: %w", err)
	}

	dir := filepath.Join(cp.dir, "metrics-server")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["cp"] = &clientcmdapi.Cluster{Server: cp.Config.Host, CertificateAuthorityData: cp.Config.CAData}
	kc.AuthInfos["metrics-server"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["metrics-server"] = &clientcmdapi.Context{Cluster: "cp", AuthInfo: "metrics-server"}
	kc.CurrentContext = "metrics-server"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		return err
	}
	ca, caKey, err := newCert(pkix.Name{CommonName: "metrics-server-ca"}, nil, nil)
	if err != nil {
		return err
	}
	cert, key, err := newCert(pkix.Name{CommonName: "metrics-server.kube-system.svc"}, ca, caKey,
		"metrics-server.kube-system.svc", "metrics-server.kube-system.svc.cluster.local", ip.String())
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	for name, b := range map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}

	done := cp.run(pctx, logs, path,
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--bind-address="+ip.String(),
		"--secure-port="+strconv.Itoa(port),
		"--tls-cert-file="+filepath.Join(dir, "tls.crt"),
		"--tls-private-key-file="+filepath.Join(dir, "tls.key"),
		"--metric-resolution="+MetricsServerResolution.String(),
		// Kubelets are reached at their InternalIP, on the port each node
		// reports, as metrics-server's manifests do.
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-use-node-status-port",
		// The kubelets of internal/node serve a self-signed certificate
		// they make at start, for the node's name only (not its IP, which
		// is what metrics-server dials) and signed by no CA that could be
		// given here, as kubelets do unless serving certificates are
		// bootstrapped (serverTLSBootstrap, signed by the cluster's CA; a
		// cluster that does that passes --kubelet-certificate-authority
		// instead). The kubelets do authenticate metrics-server's token.
		"--kubelet-insecure-tls",
	)

	if err := cp.registerMetricsServer(ctx, ip, port, caPEM); err != nil {
		return fmt.Errorf("metrics-server registration: %w", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		msg, ok := cp.apiServiceAvailable(ctx, MetricsServerAPIService)
		if ok {
			return nil
		}
		select {
		case <-done:
			return errors.New("metrics-server exited at start; set MERIDIAN_CONTROLPLANE_LOGS=1 to see why")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("APIService %s not Available after 2m (%s); set MERIDIAN_CONTROLPLANE_LOGS=1 to see metrics-server's log", MetricsServerAPIService, msg)
		}
	}
}

// registerMetricsServer points the APIService at ip:port through a
// selector-less Service and its EndpointSlice.
func (cp *ControlPlane) registerMetricsServer(ctx context.Context, ip net.IP, port int, caPEM []byte) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "metrics-server", Labels: map[string]string{"k8s-app": "metrics-server"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(int32(port))}}},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "metrics-server", Labels: map[string]string{
			discoveryv1.LabelServiceName: "metrics-server", discoveryv1.LabelManagedBy: "meridian-controlplane",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(port))}},
	}
	as := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": MetricsServerAPIService, "labels": map[string]any{"k8s-app": "metrics-server"}},
		"spec": map[string]any{
			"group": "metrics.k8s.io", "version": "v1beta1",
			"groupPriorityMinimum": int64(100), "versionPriority": int64(100),
			"caBundle": base64.StdEncoding.EncodeToString(caPEM),
			"service":  map[string]any{"namespace": "kube-system", "name": "metrics-server", "port": int64(443)},
		},
	}}
	for _, o := range []client.Object{svc, slice, as} {
		if err := cp.Client.Create(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// apiServiceAvailable says whether the APIService name is Available, and
// otherwise why not.
func (cp *ControlPlane) apiServiceAvailable(ctx context.Context, name string) (string, bool) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("apiregistration.k8s.io/v1")
	u.SetKind("APIService")
	if err := cp.Client.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
		return err.Error(), false
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Available" {
			return fmt.Sprintf("%v: %v", m["reason"], m["message"]), m["status"] == "True"
		}
	}
	return "no Available condition yet", false
}

// applyYAML creates the objects of a multi-document YAML file.
func (cp *ControlPlane) applyYAML(ctx context.Context, b []byte) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := cp.Client.Create(ctx, u); err != nil {
			return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
}

// freePort finds a TCP port free on ip now (for a process that takes a
// port number, not a listener).
func freePort(ip net.IP) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
