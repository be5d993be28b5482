package glb

import (
	"context"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
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

// demandOf is the DNS demand counted for sentiment from a region so far.
func demandOf(t *testing.T, d *Demand, region string) float64 {
	t.Helper()
	var m dto.Metric
	if err := d.total.WithLabelValues("default", "sentiment", region, demandDNS).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func demandBalancer(t *testing.T, policy DNSDemandPolicy) (*Balancer, *Demand) {
	t.Helper()
	src := &Source{}
	src.set(fleetSnapshot())
	d, err := NewDemand(nil)
	if err != nil {
		t.Fatal(err)
	}
	d.SetDNSPolicy(policy)
	b := NewBalancer(src, openGeo(t), nil, "test", quiet())
	b.CountDemand(d)
	return b, d
}

// A forged EDNS Client Subnet steers the answer but does not move demand
// unless the resolver that sent it is trusted: over real UDP from a
// resolver at 127.0.0.1, an Amsterdam ECS gets eu-west's address either
// way, and counts for eu-west only once 127.0.0.0/8 is trusted.
func TestDNSDemandBelievesECSOnlyFromTrustedResolvers(t *testing.T) {
	b, d := demandBalancer(t, DNSDemandPolicy{})
	ask := serveDNS(t, b)
	for range 5 {
		if addr, _ := ask("193.0.0.0/24"); addr != "127.0.1.2" {
			t.Fatalf("Amsterdam's ECS answered %s, want eu-west's 127.0.1.2: ECS must still steer", addr)
		}
	}
	if got := demandOf(t, d, "eu-west"); got != 0 {
		t.Errorf("forged ECS from an untrusted resolver counted %v queries for eu-west, want 0", got)
	}
	if got := counterValue(t, d.untrusted); got != 5 {
		t.Errorf("meridian_glb_demand_dns_ecs_untrusted_total %v, want 5", got)
	}

	b, d = demandBalancer(t, DNSDemandPolicy{TrustedResolvers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	ask = serveDNS(t, b)
	for range 5 {
		ask("193.0.0.0/24")
	}
	if got := demandOf(t, d, "eu-west"); got != 5 {
		t.Errorf("ECS from a trusted resolver counted %v queries for eu-west, want 5", got)
	}

	// An untrusted resolver that can be located counts where it is: one
	// in Ashburn forging Amsterdam counts for us-east.
	b, d = demandBalancer(t, DNSDemandPolicy{})
	b.Steer(dns.Query{Name: "sentiment.infer.test.", Type: dns.TypeA, Client: amsterdam, ClientPrefix: 24, Resolver: ashburn})
	if eu, us := demandOf(t, d, "eu-west"), demandOf(t, d, "us-east"); eu != 0 || us != 1 {
		t.Errorf("Ashburn resolver forging Amsterdam: eu-west %v us-east %v, want 0 and 1", eu, us)
	}
}

// One source network flooding distinct ECS subnets counts at most
// PerSource queries a window, even when trusted; another network is still
// counted, and the next window starts afresh.
func TestDNSDemandCappedPerSourceNetwork(t *testing.T) {
	b, d := demandBalancer(t, DNSDemandPolicy{TrustedResolvers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, PerSource: 10})
	ask := serveDNS(t, b)
	for i := range 40 {
		ask(netip.PrefixFrom(netip.AddrFrom4([4]byte{193, 0, byte(i), 0}), 24).String())
	}
	if got := demandOf(t, d, "eu-west"); got != 10 {
		t.Errorf("a flood of 40 ECS subnets from one /24 counted %v, want the cap of 10", got)
	}
	if got := counterValue(t, d.capped); got != 30 {
		t.Errorf("meridian_glb_demand_dns_capped_total %v, want 30", got)
	}
	// Another resolver network (in the same /24 as nothing above).
	other := netip.MustParseAddr("127.0.9.1")
	b.Steer(dns.Query{Name: "sentiment.infer.test.", Type: dns.TypeA, Client: amsterdam, ClientPrefix: 24, Resolver: other})
	if got := demandOf(t, d, "eu-west"); got != 11 {
		t.Errorf("another source network was not counted: %v, want 11", got)
	}
	d.take(time.Now())
	ask("193.0.200.0/24")
	if got := demandOf(t, d, "eu-west"); got != 12 {
		t.Errorf("the cap did not reset with the window: %v, want 12", got)
	}
}

// The command's DNS options reach the server's config and the demand
// counter, and turning rate limiting off says so loudly.
func TestApplyDNSSaysWhatIsOff(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	d, err := NewDemand(nil)
	if err != nil {
		t.Fatal(err)
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	var cfg dns.Config
	applyDNS(&cfg, d, DNSOptions{RRL: dns.RRL{Off: true}, DNSSEC: dns.DNSSEC{KeyFiles: []string{"K"}},
		Demand: DNSDemandPolicy{TrustedResolvers: trusted}}, log)
	if !cfg.RRL.Off || len(cfg.DNSSEC.KeyFiles) != 1 || !d.trusts(netip.MustParseAddr("192.0.2.9")) || d.policy.PerSource != DefaultDNSDemandPerSource {
		t.Errorf("config %+v, demand policy %+v: the options did not arrive", cfg, d.policy)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "RATE LIMITING IS OFF") {
		t.Errorf("rate limiting off without a warning:\n%s", logs.String())
	}
	logs.Reset()
	applyDNS(&cfg, d, DNSOptions{}, log)
	if cfg.RRL.Off || strings.Contains(logs.String(), "WARN") || !strings.Contains(logs.String(), "DNSSEC off") {
		t.Errorf("defaults: RRL off %v, log:\n%s", cfg.RRL.Off, logs.String())
	}
}
