package glb

import (
	"context"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/glb/dns"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/netfault"
)

// Clients near each region (the drill's subnets).
var (
	amsterdam = netip.MustParseAddr("193.0.0.1")
	mumbai    = netip.MustParseAddr("13.126.0.1")
	ashburn   = netip.MustParseAddr("3.80.0.1")
)

// Every DNS query and HTTP request for a GlobalEndpoint is counted by the
// region nearest to its client, and the window becomes rates.
func TestDemandCountsByClientRegion(t *testing.T) {
	src := &Source{}
	src.set(fleetSnapshot())
	reg := prometheus.NewRegistry()
	d, err := NewDemand(reg)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBalancer(src, openGeo(t), nil, "test", quiet())
	b.CountDemand(d)

	for range 3 {
		b.Steer(dns.Query{Name: "sentiment.infer.test.", Type: dns.TypeA, Client: amsterdam, ClientPrefix: 24})
	}
	b.Steer(dns.Query{Name: "sentiment.infer.test.", Type: dns.TypeA, Client: ashburn, ClientPrefix: 24})
	for range 2 {
		b.Route(nil, "sentiment", mumbai)
	}
	// Not counted: a name no GlobalEndpoint has, a model without one, a
	// client that cannot be located.
	b.Steer(dns.Query{Name: "nothing.infer.test.", Type: dns.TypeA, Client: amsterdam, ClientPrefix: 24})
	b.Route(nil, "textdir", mumbai)
	b.Route(nil, "sentiment", netip.MustParseAddr("10.0.0.1"))

	var metric dto.Metric
	if err := d.total.WithLabelValues("default", "sentiment", "eu-west", "dns").Write(&metric); err != nil {
		t.Fatal(err)
	}
	if got := metric.GetCounter().GetValue(); got != 3 {
		t.Errorf("meridian_glb_demand_total eu-west dns = %v, want 3", got)
	}
	start := time.Now().Add(-2 * time.Second)
	d.since = start
	counts, since := d.take(start.Add(2 * time.Second))
	if since != start {
		t.Errorf("window start %v, want %v", since, start)
	}
	st := report(counts, since, start.Add(2*time.Second))
	if st.Window.Duration != 2*time.Second || len(st.Models) != 1 {
		t.Fatalf("report %+v: want one model over 2s", st)
	}
	m := st.Models[0]
	if m.Namespace != "default" || m.Name != "sentiment" || len(m.Regions) != 3 {
		t.Fatalf("model demand %+v: want default/sentiment from 3 regions", m)
	}
	want := map[v1.RegionName][2]string{"ap-south": {"1", ""}, "eu-west": {"", "1500m"}, "us-east": {"", "500m"}}
	for _, r := range m.Regions {
		w, ok := want[r.Region]
		if !ok || qty(r.RequestsPerSecond) != w[0] || qty(r.QueriesPerSecond) != w[1] {
			t.Errorf("region %s: requests %s queries %s, want %v", r.Region, qty(r.RequestsPerSecond), qty(r.QueriesPerSecond), w)
		}
	}
	if c, _ := d.take(time.Now()); len(c) != 0 {
		t.Errorf("take left %d counts behind", len(c))
	}
}

// The report reaches the hub as the site's DemandReport; while the hub is
// unreachable the counts carry over, so nothing is lost.
func TestDemandReportReachesTheHubAndSurvivesItsLoss(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := NewDemand(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := Endpoint{Namespace: "default", Model: "sentiment"}
	for range 5 {
		d.add(e, "eu-west", demandHTTP)
	}
	// The hub is reached through a proxy that is cut at first.
	u, err := url.Parse(cp.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := netfault.NewProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Cut()
	proxy.Cut()
	cfg := rest.CopyConfig(cp.Config)
	cfg.Host = "https://" + proxy.Addr()
	hub, err := client.New(cfg, client.Options{Scheme: cp.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	go d.Report(ctx, hub, "PoP 1", time.Second, quiet())
	time.Sleep(2500 * time.Millisecond) // failed reports
	d.add(e, "eu-west", demandHTTP)
	if err := proxy.Heal(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var rep v1.DemandReport
		err := cp.Client.Get(ctx, client.ObjectKey{Name: ReportName("PoP 1")}, &rep)
		if err == nil && len(rep.Status.Models) == 1 {
			r := rep.Status.Models[0].Regions
			if rep.Spec.Site != "PoP 1" || len(r) != 1 || r[0].Region != "eu-west" || r[0].RequestsPerSecond == nil {
				t.Fatalf("report %+v", rep)
			}
			// All six requests, over a window that began before the failed
			// writes (not only the last period).
			if w := rep.Status.Window.Duration; w < 2500*time.Millisecond {
				t.Fatalf("window %s: the failed writes' time was not carried over", w)
			}
			if n := r[0].RequestsPerSecond.AsApproximateFloat64() * rep.Status.Window.Seconds(); n < 5.9 || n > 6.1 {
				t.Fatalf("the report carries %.2f requests, want the 6 counted across the failed write", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no DemandReport with the counts on the hub: %v %+v", err, rep)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReportName(t *testing.T) {
	for site, want := range map[string]string{"": "glb", "local": "local", "PoP 1": "pop-1", "fra/ams": "fra-ams", "--x--": "x"} {
		if got := ReportName(site); got != want {
			t.Errorf("ReportName(%q) = %q, want %q", site, got, want)
		}
	}
}

func qty(q *resource.Quantity) string {
	if q == nil {
		return ""
	}
	return q.String()
}
