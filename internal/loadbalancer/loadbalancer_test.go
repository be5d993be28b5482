package loadbalancer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/hostip"
	"meridian.dev/meridian/internal/testbin"
)

// backend is a real HTTP server on its own loopback address that says
// which it is.
func backend(t *testing.T, addr, name string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

// freePort finds a port free on addr.
func freePort(t *testing.T, addr string) int32 {
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

func get(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// A LoadBalancer Service on a real API server gets the pool's first
// address; connections to it reach the ready endpoints of its
// EndpointSlice, never an unready one; deleting the Service closes the
// address; a restarted load balancer keeps the addresses Services hold.
func TestLoadBalancerServesServices(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{NoCRDs: true})
	ctx := context.Background()
	pool := PoolFor(90, 2)
	run := func() context.CancelFunc {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- Run(rctx, cp.Config, Options{Pool: pool}) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("load balancer: %v", err)
			}
		}
	}
	stop := run()

	// The API server refuses loopback endpoints, as it would in a
	// cluster: the backends listen on this host's own address.
	ip, err := hostip.IPv4()
	if err != nil {
		t.Skipf("no global IPv4 address on this host for endpoints: %v", err)
	}
	h := ip.String()
	a, b, c := backend(t, h, "a"), backend(t, h, "b"), backend(t, h, "unready")
	port := freePort(t, pool[0].String())
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "model", Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Name: "http", Port: port, Protocol: corev1.ProtocolTCP}}},
	}
	if err := cp.Client.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	ep := func(ap netip.AddrPort, ready bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ap.Addr().String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}
	}
	// Each backend has its own port, so each gets its own slice.
	for i, e := range []struct {
		ap    netip.AddrPort
		ready bool
	}{{a, true}, {b, true}, {c, false}} {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("model-%d", i), Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "model"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{ep(e.ap, e.ready)},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(e.ap.Port())), Protocol: ptr.To(corev1.ProtocolTCP)}},
		}
		if err := cp.Client.Create(ctx, es); err != nil {
			t.Fatalf("creating EndpointSlice: %v", err)
		}
	}
	url := "http://" + net.JoinHostPort(pool[0].String(), strconv.Itoa(int(port))) + "/"
	testbin.Eventually(t, "the Service's address in its status", 30*time.Second, func() bool {
		got := &corev1.Service{}
		_ = cp.Client.Get(ctx, client.ObjectKeyFromObject(svc), got)
		in := got.Status.LoadBalancer.Ingress
		return len(in) == 1 && in[0].IP == pool[0].String() && in[0].IPMode != nil && *in[0].IPMode == corev1.LoadBalancerIPModeProxy
	})
	seen := map[string]int{}
	testbin.Eventually(t, "both ready endpoints answer through the address", 30*time.Second, func() bool {
		if body, err := get(url); err == nil {
			seen[body]++
		}
		return seen["a"] > 0 && seen["b"] > 0
	})
	for range 20 {
		if body, _ := get(url); body == "unready" {
			t.Fatal("an unready endpoint got a connection")
		}
	}

	// A restart keeps the address the Service holds.
	stop()
	stop = run()
	defer func() { stop() }()
	testbin.Eventually(t, "the restarted load balancer serves the same address", 30*time.Second, func() bool {
		body, err := get(url)
		return err == nil && (body == "a" || body == "b")
	})

	if err := cp.Client.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the address closed after the Service is deleted", 30*time.Second, func() bool {
		_, err := get(url)
		return err != nil
	})
}
