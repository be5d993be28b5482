package main

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"meridian.dev/meridian/glb/dns"
)

// The DNS abuse controls are on by default and each flag reaches the
// balancer's options.
func TestGLBDNSFlags(t *testing.T) {
	parse := func(args ...string) (dnsFlags, error) {
		var f dnsFlags
		fs := pflag.NewFlagSet("glb", pflag.ContinueOnError)
		f.register(fs)
		return f, fs.Parse(args)
	}
	f, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	o, err := f.options()
	if err != nil || o.RRL.Off || o.RRL.ResponsesPerSecond != dns.DefaultRRLRate || o.RRL.Slip != dns.DefaultRRLSlip ||
		len(o.Demand.TrustedResolvers) != 0 || o.Demand.PerSource <= 0 || len(o.DNSSEC.KeyFiles) != 0 {
		t.Fatalf("defaults: %+v %v; want rate limiting on, no trusted resolvers, a demand cap, unsigned", o, err)
	}
	f, _ = parse("--dns-rrl=false", "--dns-rrl-slip=0", "--dns-demand-per-source=0",
		"--dns-ecs-trusted-resolvers=10.1.2.3/8,2001:db8::53", "--dns-rrl-exempt=192.0.2.0/24")
	o, err = f.options()
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::53/128")}
	if err != nil || !o.RRL.Off || o.RRL.Slip >= 0 || o.Demand.PerSource >= 0 || !slices.Equal(o.Demand.TrustedResolvers, want) ||
		len(o.RRL.Exempt) != 1 {
		t.Fatalf("options %+v %v", o, err)
	}
	for _, bad := range [][]string{{"--dns-ecs-trusted-resolvers=resolver.example"}, {"--dns-rrl-responses-per-second=0"}} {
		f, _ := parse(bad...)
		if _, err := f.options(); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// `meridian glb dnssec-keygen` writes BIND key files that the DNS server
// loads, the private half readable by its owner only.
func TestGLBDNSSECKeygen(t *testing.T) {
	dir := t.TempDir()
	var prefixes []string
	for _, args := range [][]string{{}, {"--zsk"}} {
		out, err := run(append([]string{"glb", "dnssec-keygen", "--zone", "infer.example.com", "--dir", dir}, args...)...)
		if err != nil {
			t.Fatalf("dnssec-keygen %v: %v\n%s", args, err, out)
		}
		prefix := strings.SplitN(out, "\n", 2)[0]
		if !strings.HasPrefix(prefix, dir+"/Kinfer.example.com.+013+") || !strings.Contains(out, "DNSKEY") || !strings.Contains(out, "IN\tDS") {
			t.Fatalf("dnssec-keygen %v printed %q", args, out)
		}
		fi, err := os.Stat(prefix + ".private")
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s.private: %v %v, want mode 0600", prefix, fi, err)
		}
		prefixes = append(prefixes, prefix)
	}
	if _, err := dns.New(dns.Config{Zone: "infer.example.com.", NS: []string{"ns1.example.net."},
		DNSSEC: dns.DNSSEC{KeyFiles: prefixes}}, dns.SteererFunc(func(dns.Query) (dns.Answer, bool) { return dns.Answer{}, false }), nil); err != nil {
		t.Fatalf("the DNS server does not load the keys: %v", err)
	}
}
