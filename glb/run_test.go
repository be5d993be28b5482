package glb

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/glb/front"
	"meridian.dev/meridian/glb/geo"
	"meridian.dev/meridian/internal/controlplane"
)

// Stopping the balancer (a deploy, SIGTERM) loses nothing: a request in
// flight through the HTTP front still gets its answer, and the demand of
// the last, unfinished window reaches the hub before Run returns.
func TestRunDrainsTheFrontAndReportsTheLastDemandWhenStopped(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			arrived <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, `{"outputs":[]}`)
	}))
	defer backend.Close()
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock() // before backend.Close, even when the test fails early
	ge := &v1.GlobalEndpoint{ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec: v1.GlobalEndpointSpec{Hostname: "sentiment.infer.test", Model: "sentiment", TTL: 5}}
	cl := &v1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "eu-west"},
		Spec: v1.ClusterSpec{ClusterIdentity: v1.ClusterIdentity{Region: "eu-west",
			Location: &v1.GeoLocation{Latitude: "53.35", Longitude: "-6.26"}}}}
	for _, o := range []client.Object{ge, cl} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cl.Status = v1.ClusterStatus{Health: v1.HealthReady, Capacity: v1.Capacity{CPU: resource.MustParse("4"), FreeCPU: resource.MustParse("3")},
		Models: []v1.ModelLoad{{Namespace: "default", Name: "sentiment", Model: "sentiment", Endpoint: backend.URL, ReadyReplicas: 1}}}
	if err := cp.Client.Status().Update(ctx, cl); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- Run(ctx, cp.Client, Options{Zone: "infer.test", DNSListen: "127.0.0.1:0", StateFile: filepath.Join(t.TempDir(), "snap.json"),
			HTTPListeners: []net.Listener{ln}, TrustForwardedFor: true, AllowLocalEndpoints: true, Site: "pop-1",
			GeoIPv4:       filepath.Join("..", geo.DefaultIPv4Path),
			RefreshPeriod: 200 * time.Millisecond, DemandPeriod: time.Hour, Logger: quiet(), Ready: ready})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	type answer struct {
		code int
		err  error
	}
	got := make(chan answer, 1)
	// The balancer reads the hub every 200 ms: retry until it routes.
	go func() {
		for {
			req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/v2/models/sentiment/infer", strings.NewReader(`{"inputs":[]}`))
			req.Header.Set("X-Forwarded-For", "193.0.0.1") // Amsterdam
			resp, err := http.DefaultClient.Do(req)
			if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
				_ = resp.Body.Close()
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if err == nil {
				_ = resp.Body.Close()
				got <- answer{code: resp.StatusCode}
				return
			}
			got <- answer{err: err}
			return
		}
	}()
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the request never reached the backend")
	}
	cancel() // stop the balancer with the request in flight
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) with a request still in flight through its front", err)
	default:
	}
	unblock()
	if a := <-got; a.err != nil || a.code != http.StatusOK {
		t.Fatalf("the request in flight at the stop got %d, %v; want 200", a.code, a.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	var rep v1.DemandReport
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Name: "pop-1"}, &rep); err != nil {
		t.Fatalf("no DemandReport after the stop (the period is an hour: only the last write could make it): %v", err)
	}
	if len(rep.Status.Models) != 1 || len(rep.Status.Models[0].Regions) != 1 || rep.Status.Models[0].Regions[0].Region != "eu-west" ||
		rep.Status.Models[0].Regions[0].RequestsPerSecond == nil {
		t.Fatalf("the last report does not carry the request from Amsterdam: %+v", rep.Status)
	}
}

// The command's front choices reach the front: affinity, hedging,
// trusting X-Forwarded-For, the retry budget and loopback endpoints, each
// off (or default) unless asked for.
func TestFrontOptionsCarryTheBalancersChoices(t *testing.T) {
	t.Parallel()
	off := frontOptions(Options{}, nil, quiet())
	if off.Affinity != (front.Affinity{}) || off.Hedge || off.ForwardedFor.Enabled() || off.RetryBudget != (front.RetryBudget{}) || off.AllowLocalEndpoints || off.Transport != nil {
		t.Fatalf("zero Options gave front options %+v: want affinity, hedging and X-Forwarded-For off, the default transport", off)
	}
	on := frontOptions(Options{
		Affinity: front.Affinity{Header: "X-Session-Id"}, HedgeAfter: 150 * time.Millisecond, TrustForwardedFor: true,
		RetryBudget: front.RetryBudget{Percent: 5}, AllowLocalEndpoints: true,
		Dial: (&net.Dialer{}).DialContext,
	}, nil, quiet())
	if on.Affinity.Header != "X-Session-Id" || !on.Hedge || on.HedgeAfter != 150*time.Millisecond || on.ForwardedFor.TrustedHops != 1 || on.Transport == nil ||
		on.RetryBudget.Percent != 5 || !on.AllowLocalEndpoints {
		t.Fatalf("front options %+v: want affinity by X-Session-Id, hedging after 150ms, one X-Forwarded-For hop trusted, the balancer's dialer, a 5%% retry budget, loopback endpoints", on)
	}
	hops := frontOptions(Options{TrustForwardedFor: true, ForwardedFor: front.ForwardedFor{TrustedHops: 2}}, nil, quiet())
	if hops.ForwardedFor.TrustedHops != 2 {
		t.Fatalf("explicit ForwardedFor %+v overridden by TrustForwardedFor", hops.ForwardedFor)
	}
}
