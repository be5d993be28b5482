package hub_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub"
	"meridian.dev/meridian/inference/oip"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/fleet"
	"meridian.dev/meridian/internal/netfault"
	"meridian.dev/meridian/internal/testbin"
)

// A whole fleet on real control planes: a hub and three members, each
// with a real agent serving the real models. Its phases share the fleet
// because each start costs several control planes.
func TestFleetPlacementResidencyFailoverAndReturn(t *testing.T) {
	if _, err := controlplane.FindBinDir(); err != nil {
		testbin.Need(t, err)
	}
	models, lib := testbin.Models(t), testbin.ORTLibrary(t)
	geo4, geo6 := testbin.GeoDatabases(t)
	dir := t.TempDir()
	bin, err := testbin.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var progress io.Writer
	logs := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("MERIDIAN_FLEET_LOGS") != "" { // to watch a run
		progress, logs = os.Stderr, slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := fleet.Up(ctx, fleet.Options{
		HTTPListeners: []net.Listener{front},
		StateDir:      dir, Binary: bin, ModelRepository: models, ServeArgs: []string{"--ort-lib", lib, "--cache-size", "0"},
		Progress: progress, Logger: logs, DNSListen: "127.0.0.1:0",
		GeoIPv4: geo4, GeoIPv6: geo6,
		// The production timing preset, whose heartbeat grace (30s) is three
		// of the agents' report periods (10s). Only the resync is shorter:
		// a change of demand waits for it.
		Hub: hub.Options{ResyncPeriod: time.Second, AllowLocalEndpoints: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	wait, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := f.WaitReady(wait); err != nil {
		t.Fatalf("the bundled models never became ready everywhere: %v", err)
	}
	c := f.Client()

	t.Run("every member is a Ready Cluster with its capacity", func(t *testing.T) {
		var list v1.ClusterList
		if err := c.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 3 {
			t.Fatalf("%d Cluster objects, want 3", len(list.Items))
		}
		for _, cl := range list.Items {
			if cl.Status.Health != v1.HealthReady || cl.Status.Capacity.CPU.IsZero() || cl.Spec.Location == nil || string(cl.Spec.Region) != cl.Name {
				t.Errorf("cluster %s: %+v %+v", cl.Name, cl.Spec, cl.Status.Health)
			}
		}
	})

	t.Run("propagation: one ModelDeployment per member, answering", func(t *testing.T) {
		for region, cp := range f.Members {
			var mds v1.ModelDeploymentList
			if err := cp.Client.List(ctx, &mds, client.InNamespace("default")); err != nil {
				t.Fatal(err)
			}
			if len(mds.Items) != 2 {
				t.Errorf("%s has %d ModelDeployments, want sentiment and textdir", region, len(mds.Items))
			}
		}
		endpoints, err := f.Endpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for region, e := range endpoints {
			if e["sentiment"] == "" || e["textdir"] == "" {
				t.Errorf("%s reports no endpoint: %v", region, e)
			}
		}
	})

	place := func(t *testing.T, im *v1.InferenceModel, check func(*v1.InferenceModel) bool) *v1.InferenceModel {
		t.Helper()
		if err := c.Create(ctx, im); err != nil {
			t.Fatal(err)
		}
		got := &v1.InferenceModel{}
		testbin.Eventually(t, "the placement of "+im.Name, 90*time.Second, func() bool {
			return c.Get(ctx, client.ObjectKeyFromObject(im), got) == nil && check(got)
		})
		return got
	}

	t.Run("the global balancer steers each client to its region", func(t *testing.T) {
		regionOf := map[string]string{}
		var list v1.ClusterList
		if err := c.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		for _, cl := range list.Items {
			for _, m := range cl.Status.Models {
				if m.Model == "sentiment" {
					u, _ := url.Parse(m.Endpoint)
					regionOf[u.Hostname()] = cl.Name
				}
			}
		}
		kdig, err := testbin.Kdig()
		testbin.Need(t, err)
		for subnet, want := range map[string]string{"193.0.0.0/24": "eu-west", "3.80.0.0/24": "us-east", "13.126.0.0/24": "ap-south"} {
			// The balancer reads the hub every 2s: wait for it to converge.
			var got string
			testbin.Eventually(t, want+" in the DNS answer for "+subnet, 30*time.Second, func() bool {
				out, err := exec.Command(kdig, "@"+hostOf(f.DNSAddr), "-p", portOf(f.DNSAddr), "+short", "+subnet="+subnet, "sentiment."+f.Zone).Output()
				if err != nil {
					t.Fatalf("kdig: %v", err)
				}
				got = regionOf[strings.TrimSpace(string(out))]
				return got == want
			})
		}
	})

	t.Run("the balancer's HTTP front answers from a region", func(t *testing.T) {
		var body, cluster string
		tc, err := f.ClientTLS()
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		post := func(key string) (*http.Response, error) {
			req, err := http.NewRequest(http.MethodPost, f.Scheme()+"://"+front.Addr().String()+"/analyze", strings.NewReader(`{"text":"I love this"}`))
			if err != nil {
				return nil, err
			}
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			return hc.Do(req)
		}
		testbin.Eventually(t, "an answer through the front", 30*time.Second, func() bool {
			resp, err := post(f.APIKey())
			if err != nil {
				return false
			}
			defer func() { _ = resp.Body.Close() }()
			b, _ := io.ReadAll(resp.Body)
			body, cluster = string(b), resp.Header.Get("X-Meridian-Cluster")
			return resp.StatusCode == http.StatusOK
		})
		if !strings.Contains(body, "POSITIVE") || f.Members[cluster] == nil {
			t.Fatalf("front answered %s from cluster %q", body, cluster)
		}
		// The fleet is secured as a real one: HTTPS, and no key, no model.
		resp, err := post("")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.TLS == nil {
			t.Errorf("a request without a key: %d (TLS %v), want 401 over TLS", resp.StatusCode, resp.TLS != nil)
		}
	})

	t.Run("gRPC calls go through the balancer's front to a region's replica", func(t *testing.T) {
		tc, err := f.ClientTLS()
		if err != nil {
			t.Fatal(err)
		}
		creds := insecure.NewCredentials()
		if f.Scheme() == "https" {
			creds = credentials.NewTLS(tc)
		}
		conn, err := grpc.NewClient(front.Addr().String(), grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		client := oip.NewGRPCInferenceServiceClient(conn)
		keyed := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+f.APIKey())
		call := &oip.ModelInferRequest{
			ModelName: "sentiment",
			Inputs: []*oip.ModelInferRequest_InferInputTensor{{Name: "tokens", Datatype: "BYTES", Shape: []int64{1, 3},
				Contents: &oip.InferTensorContents{BytesContents: [][]byte{[]byte("i"), []byte("love"), []byte("this")}}}},
			Outputs: []*oip.ModelInferRequest_InferRequestedOutputTensor{{Name: "p_pos"}},
		}
		var header metadata.MD
		var resp *oip.ModelInferResponse
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if resp, err = client.ModelInfer(keyed, call, grpc.Header(&header)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no gRPC answer through the front within 30s: %v", err)
			}
		}
		cluster := header.Get("x-meridian-cluster")
		if len(cluster) != 1 || f.Members[cluster[0]] == nil {
			t.Errorf("answered by cluster %v, want a member's name", cluster)
		}
		if len(resp.Outputs) != 1 || resp.Outputs[0].Name != "p_pos" || len(resp.RawOutputContents) != 1 || len(resp.RawOutputContents[0]) != 4 {
			t.Fatalf("answer %v: want p_pos as one raw FP32", resp)
		}
		if p := math.Float32frombits(binary.LittleEndian.Uint32(resp.RawOutputContents[0])); p <= 0.5 {
			t.Errorf("p_pos of %q = %v, want positive", "i love this", p)
		}
		// No key, no model, over gRPC as over HTTP.
		if _, err := client.ModelInfer(context.Background(), call); status.Code(err) != codes.Unauthenticated {
			t.Errorf("a call without a key: %v, want Unauthenticated", err)
		}
	})

	t.Run("placement follows the demand the balancer counts", func(t *testing.T) {
		// A model for one cluster, placed by proximity to its users alone,
		// with a public name the balancer counts queries for.
		if err := c.Create(ctx, &v1.GlobalEndpoint{ObjectMeta: metav1.ObjectMeta{Name: "follow", Namespace: "default"},
			Spec: v1.GlobalEndpointSpec{Hostname: "follow." + f.Zone, Model: "follow", TTL: 5}}); err != nil {
			t.Fatal(err)
		}
		im := place(t, &v1.InferenceModel{
			ObjectMeta: metav1.ObjectMeta{Name: "follow", Namespace: "default"},
			Spec: v1.InferenceModelSpec{Model: v1.ModelSource{Name: "sentiment"},
				Placement: v1.Placement{MaxClusters: 1, Preferences: v1.PlacementPreferences{
					Proximity: ptr.To[int32](100), Cost: ptr.To[int32](0), Capacity: ptr.To[int32](0)}}},
		}, func(im *v1.InferenceModel) bool { return len(im.Status.Clusters) == 1 })
		if im.Status.DemandSource != hub.DemandSpec {
			t.Fatalf("demand source %q before any query, want %q", im.Status.DemandSource, hub.DemandSpec)
		}
		for _, users := range []struct{ subnet, region string }{{"13.126.0.0/24", "ap-south"}, {"193.0.0.0/24", "eu-west"}} {
			qctx, stop := context.WithCancel(ctx)
			go queryEvery(qctx, f.DNSAddr, "follow."+f.Zone+".", netip.MustParsePrefix(users.subnet), 100*time.Millisecond)
			testbin.Eventually(t, "follow placed in "+users.region+", where its users are", 60*time.Second, func() bool {
				got := &v1.InferenceModel{}
				return c.Get(ctx, client.ObjectKeyFromObject(im), got) == nil && placed(got) == users.region &&
					got.Status.DemandSource == hub.DemandReported && len(got.Status.Demand) == 1 && string(got.Status.Demand[0].Region) == users.region
			})
			stop()
		}
		var rep v1.DemandReport
		if err := c.Get(ctx, client.ObjectKey{Name: "local"}, &rep); err != nil || rep.Spec.Site != "local" {
			t.Fatalf("the balancer's DemandReport: %v %+v", err, rep)
		}
	})

	t.Run("data residency is never violated", func(t *testing.T) {
		im := place(t, &v1.InferenceModel{
			ObjectMeta: metav1.ObjectMeta{Name: "eu-only", Namespace: "default"},
			Spec: v1.InferenceModelSpec{Model: v1.ModelSource{Name: "sentiment"},
				Placement: v1.Placement{AllowedRegions: []v1.RegionName{"eu-west"}}},
		}, func(im *v1.InferenceModel) bool { return len(im.Status.Clusters) > 0 })
		for _, a := range im.Status.Clusters {
			if a.Region != "eu-west" {
				t.Fatalf("placed in %s, outside the allowed regions", a.Region)
			}
		}
		if len(im.Status.Excluded) != 2 || !strings.Contains(im.Status.Excluded[0].Reason, "not allowed") {
			t.Errorf("exclusions should say why: %+v", im.Status.Excluded)
		}
		for region, cp := range f.Members {
			err := cp.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "eu-only"}, &v1.ModelDeployment{})
			if (region == "eu-west") != (err == nil) {
				t.Errorf("%s: ModelDeployment presence wrong: %v", region, err)
			}
		}
	})

	t.Run("impossible constraints say why", func(t *testing.T) {
		im := place(t, &v1.InferenceModel{
			ObjectMeta: metav1.ObjectMeta{Name: "mars", Namespace: "default"},
			Spec: v1.InferenceModelSpec{Model: v1.ModelSource{Name: "sentiment"},
				Placement: v1.Placement{AllowedRegions: []v1.RegionName{"mars-north"}}},
		}, func(im *v1.InferenceModel) bool {
			return meta.FindStatusCondition(im.Status.Conditions, "Placed") != nil
		})
		cond := meta.FindStatusCondition(im.Status.Conditions, "Placed")
		if cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, "mars-north") || len(im.Status.Clusters) != 0 {
			t.Fatalf("Placed condition %+v, clusters %+v", cond, im.Status.Clusters)
		}
	})

	t.Run("scale to zero with a warm region, and warm buffers, as written to the members", func(t *testing.T) {
		im := place(t, &v1.InferenceModel{
			ObjectMeta: metav1.ObjectMeta{Name: "zero", Namespace: "default"},
			Spec: v1.InferenceModelSpec{Model: v1.ModelSource{Name: "sentiment"},
				Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](0), MaxReplicas: 2},
				Placement:   v1.Placement{MinRegions: 3, WarmRegions: []v1.WarmRegion{{Region: "eu-west", Replicas: 1}}},
				WarmBuffer:  &v1.WarmBufferPolicy{Percent: 50}},
		}, func(im *v1.InferenceModel) bool { return len(im.Status.Clusters) == 3 })
		for region, cp := range f.Members {
			md := &v1.ModelDeployment{}
			if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(im), md); err != nil {
				t.Fatal(err)
			}
			want := int32(0)
			if region == "eu-west" {
				want = 1
			}
			if got := ptr.Deref(md.Spec.Autoscaling.MinReplicas, -1); got != want || md.Spec.WarmBuffer != 1 {
				t.Errorf("%s: minReplicas %d, warmBuffer %d; want %d (warm only in eu-west) and 1", region, got, md.Spec.WarmBuffer, want)
			}
		}
		if err := c.Delete(ctx, im); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("failover when a member is cut off, return without duplicates or flapping", func(t *testing.T) {
		// The hub reaches ap-south through a proxy from now on.
		victim := "ap-south"
		proxy := reroute(t, f, victim)
		im := place(t, &v1.InferenceModel{
			ObjectMeta: metav1.ObjectMeta{Name: "pair", Namespace: "default"},
			Spec: v1.InferenceModelSpec{Model: v1.ModelSource{Name: "sentiment"},
				Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](1), MaxReplicas: 2},
				Placement: v1.Placement{MinRegions: 2, MaxClusters: 2,
					Demand: []v1.RegionDemand{{Region: "ap-south", RequestsPerSecond: resource.MustParse("50")}, {Region: "eu-west", RequestsPerSecond: resource.MustParse("10")}}}},
		}, func(im *v1.InferenceModel) bool {
			return meta.IsStatusConditionTrue(im.Status.Conditions, "Ready") && len(im.Status.Clusters) == 2
		})
		if !holds(im, victim) {
			t.Fatalf("demand in ap-south should place a share there: %+v", im.Status.Clusters)
		}
		proxy.Cut()
		testbin.Eventually(t, victim+" Unreachable", 30*time.Second, func() bool { return health(t, f, victim) == v1.HealthUnreachable })
		testbin.Eventually(t, "the share to move off "+victim, 90*time.Second, func() bool {
			got := &v1.InferenceModel{}
			if c.Get(ctx, client.ObjectKeyFromObject(im), got) != nil {
				return false
			}
			ready := 0
			for _, a := range got.Status.Clusters {
				if a.Cluster != victim && a.DesiredReplicas > 0 && a.ReadyReplicas > 0 {
					ready++
				}
			}
			return ready == 2
		})
		// Nothing was deleted from the member the hub could not reach.
		if err := f.Members[victim].Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "pair"}, &v1.ModelDeployment{}); err != nil {
			t.Fatalf("the hub deleted from an unreachable member: %v", err)
		}
		if err := proxy.Heal(); err != nil {
			t.Fatal(err)
		}
		testbin.Eventually(t, victim+" Ready again", 60*time.Second, func() bool { return health(t, f, victim) == v1.HealthReady })
		// The returning member may win its share back (the demand is
		// there), once and make-before-break; then nothing moves again.
		current := func() string {
			got := &v1.InferenceModel{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(im), got); err != nil {
				t.Fatal(err)
			}
			// Make-before-break: whatever moves, two clusters keep ready
			// replicas at every moment.
			ready := 0
			for _, a := range got.Status.Clusters {
				if a.ReadyReplicas > 0 {
					ready++
				}
			}
			if ready < 2 {
				t.Errorf("only %d clusters with ready replicas during the return: %+v", ready, got.Status.Clusters)
			}
			return placed(got) + "|" + fmt.Sprint(len(got.Status.Clusters))
		}
		last, stableFor := current(), 0
		testbin.Eventually(t, "the placement to settle", 60*time.Second, func() bool {
			time.Sleep(time.Second)
			now := current()
			if now == last {
				stableFor++
			} else {
				last, stableFor = now, 0
			}
			return stableFor >= 3
		})
		var cl v1.Cluster
		if err := c.Get(ctx, client.ObjectKey{Name: victim}, &cl); err != nil {
			t.Fatal(err)
		}
		since := meta.FindStatusCondition(cl.Status.Conditions, "Ready").LastTransitionTime
		time.Sleep(5 * time.Second) // several probes and resyncs
		if now := current(); now != last {
			t.Errorf("placement flapped after settling: %s then %s", last, now)
		}
		if err := c.Get(ctx, client.ObjectKey{Name: victim}, &cl); err != nil {
			t.Fatal(err)
		}
		if cl.Status.Health != v1.HealthReady || !meta.FindStatusCondition(cl.Status.Conditions, "Ready").LastTransitionTime.Equal(&since) {
			t.Errorf("%s flapped after its return: %+v", victim, cl.Status.Conditions)
		}
		var mds v1.ModelDeploymentList
		if err := f.Members[victim].Client.List(ctx, &mds, client.InNamespace("default")); err != nil {
			t.Fatal(err)
		}
		pairs := 0
		for _, md := range mds.Items {
			if md.Name == "pair" {
				pairs++
			}
		}
		if pairs > 1 {
			t.Fatalf("%d copies of the ModelDeployment in %s", pairs, victim)
		}
	})
}

// placed summarises where the model is asked to run.
func placed(im *v1.InferenceModel) string {
	var parts []string
	for _, a := range im.Status.Clusters {
		if a.DesiredReplicas > 0 {
			parts = append(parts, a.Cluster)
		}
	}
	return strings.Join(parts, ",")
}

func holds(im *v1.InferenceModel, cluster string) bool {
	for _, a := range im.Status.Clusters {
		if a.Cluster == cluster && a.DesiredReplicas > 0 {
			return true
		}
	}
	return false
}

func health(t *testing.T, f *fleet.Fleet, name string) v1.ClusterHealth {
	var cl v1.Cluster
	if err := f.Client().Get(context.Background(), client.ObjectKey{Name: name}, &cl); err != nil {
		return ""
	}
	return cl.Status.Health
}

// reroute makes the hub reach a member through a cuttable proxy by
// rewriting the member's kubeconfig Secret, as an operator would.
// queryEvery asks the balancer's DNS for name as a client of subnet every
// period until ctx ends.
func queryEvery(ctx context.Context, server, name string, subnet netip.Prefix, period time.Duration) {
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
	o.SetUDPSize(1232)
	o.Option = append(o.Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(subnet.Bits()), Address: subnet.Addr().AsSlice()})
	m.Extra = append(m.Extra, o)
	for ctx.Err() == nil {
		_, _ = mdns.Exchange(m, server)
		time.Sleep(period)
	}
}

func reroute(t *testing.T, f *fleet.Fleet, member string) *netfault.Proxy {
	t.Helper()
	ctx := context.Background()
	secret := &corev1.Secret{}
	if err := f.Client().Get(ctx, client.ObjectKey{Namespace: hub.MembersNamespace, Name: member}, secret); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(secret.Data["kubeconfig"])
	if err != nil {
		t.Fatal(err)
	}
	var proxy *netfault.Proxy
	for _, cluster := range cfg.Clusters {
		u, err := url.Parse(cluster.Server)
		if err != nil {
			t.Fatal(err)
		}
		if proxy, err = netfault.NewProxy(u.Host); err != nil {
			t.Fatal(err)
		}
		cluster.Server = "https://" + proxy.Addr()
	}
	t.Cleanup(proxy.Cut)
	if secret.Data["kubeconfig"], err = clientcmd.Write(*cfg); err != nil {
		t.Fatal(err)
	}
	if err := f.Client().Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	return proxy
}

func hostOf(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
