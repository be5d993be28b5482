package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/fleet"
	"meridian.dev/meridian/internal/node"
	"meridian.dev/meridian/internal/testbin"
)

// `meridian up --runtime kubernetes` on two regions, each with a real node
// running Meridian's image as Pods and a LoadBalancer address of its own.
// A client that only follows DNS reaches the model: it resolves
// sentiment.<zone> through the balancer's DNS (UDP and TCP, with the
// client's subnet as a resolver sends it) and POSTs /analyze straight to
// the answer on the standard port. Every kubectl line `meridian up` prints
// works, and the HPAs show live values from the agents' metrics adapters.
func TestKubernetesFleetAnswersFromDNSAlone(t *testing.T) {
	bin, err := controlplane.FindBinDir()
	if err != nil {
		testbin.Need(t, err)
	}
	if why := node.Available(filepath.Join(bin, "kubelet")); why != "" {
		t.Skip(why)
	}
	geo4, geo6 := testbin.GeoDatabases(t)
	dir := t.TempDir()
	meridian, err := testbin.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, err := fleet.Up(ctx, fleet.Options{
		StateDir: dir, Runtime: v1.RuntimeKubernetes, Binary: meridian,
		Regions: []fleet.Region{
			{Name: "us-east", Latitude: "39.04", Longitude: "-77.49"},
			{Name: "eu-west", Latitude: "53.35", Longitude: "-6.26"},
		},
		Logger: logger(), DNSListen: "127.0.0.1:0",
		GeoIPv4: geo4, GeoIPv6: geo6,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	wait, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := f.WaitReady(wait); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ subnet, region string }{{"193.0.0.0/24", "eu-west"}, {"3.80.0.0/24", "us-east"}} {
		want := lbAddress(t, f, c.region, "sentiment")
		for _, proto := range []string{"udp", "tcp"} {
			var got string
			// The balancer's snapshot and probes take a moment to see the
			// regions after they are ready.
			testbin.Eventually(t, fmt.Sprintf("%s's address for %s over %s", c.region, c.subnet, proto), time.Minute, func() bool {
				got = resolve(t, proto, f.DNSAddr, "sentiment."+f.Zone, c.subnet)
				return got == want
			})
		}
		resp, err := http.Post("http://"+net.JoinHostPort(want, "8000")+"/analyze", "application/json",
			strings.NewReader(`{"text":"I love this, it is amazing"}`))
		if err != nil {
			t.Fatalf("/analyze at the DNS answer %s: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"POSITIVE"`)) {
			t.Fatalf("/analyze at %s (%s): %d %s", want, c.region, resp.StatusCode, body)
		}
	}

	lines := f.KubectlLines()
	if len(lines) != 6 {
		t.Fatalf("kubectl lines: %q", lines)
	}
	for _, l := range lines {
		out := kubectl(t, l)
		if strings.Contains(l, "get nodes,pods") && (!strings.Contains(out, "Running") || !strings.Contains(out, "-node-1   Ready")) {
			t.Errorf("%s:\n%s\nwant a Ready node and Running pods", l, out)
		}
		if strings.Contains(l, "get services") && !strings.Contains(out, "LoadBalancer   ") {
			t.Errorf("%s:\n%s\nwant the models' LoadBalancer Services", l, out)
		}
		if strings.Contains(l, "get hpa") {
			// Live values: the adapter serves requests_per_second for
			// the replicas, so no target reads <unknown>.
			testbin.Eventually(t, "live HPA values from "+l, 2*time.Minute, func() bool {
				out = kubectl(t, l)
				return strings.Contains(out, "sentiment") && strings.Contains(out, "textdir") && !strings.Contains(out, "<unknown>")
			})
		}
	}
}

// lbAddress is the address region's load balancer gave model's Service.
func lbAddress(t *testing.T, f *fleet.Fleet, region, model string) string {
	t.Helper()
	var svc corev1.Service
	if err := f.Members[region].Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: model}, &svc); err != nil {
		t.Fatal(err)
	}
	if len(svc.Status.LoadBalancer.Ingress) == 0 {
		t.Fatalf("%s/%s has no load balancer address", region, model)
	}
	return svc.Status.LoadBalancer.Ingress[0].IP
}

// resolve asks the balancer for name's A record as a resolver serving a
// client in subnet would, and returns the first address ("" for none).
func resolve(t *testing.T, proto, server, name, subnet string) string {
	t.Helper()
	_, ipnet, err := net.ParseCIDR(subnet)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	ones, _ := ipnet.Mask.Size()
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(ones), Address: ipnet.IP})
	r, _, err := (&dns.Client{Net: proto, Timeout: 2 * time.Second}).Exchange(m, server)
	if err != nil {
		t.Fatalf("DNS over %s: %v", proto, err)
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

// kubectl runs one of the lines `meridian up` prints, as a user would.
func kubectl(t *testing.T, line string) string {
	t.Helper()
	args := strings.Fields(line)
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return string(out)
}
