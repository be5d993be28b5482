package tlsx_test

import (
	"crypto/x509"
	"net"
	"slices"
	"testing"
	"time"

	"meridian.dev/meridian/internal/tlsx"
)

// LocalPKI issues what is missing, keeps what is current, and re-issues
// a certificate whose names changed or whose renewal is due — and a
// component reading it picks the new one up.
func TestLocalPKIEnsure(t *testing.T) {
	t.Parallel()
	p := tlsx.LocalPKI{Dir: t.TempDir()}
	glb := tlsx.CertRequest{Name: "glb"}
	region := func(ip byte) tlsx.CertRequest {
		return tlsx.CertRequest{Name: "us-east", IssueOptions: tlsx.IssueOptions{DNSNames: []string{"us-east.meridian.local"}, IPs: []net.IP{net.IPv4(127, 0, 1, ip)}}}
	}
	ensure := func(p tlsx.LocalPKI, want []string, reqs ...tlsx.CertRequest) {
		t.Helper()
		issued, err := p.Ensure(reqs...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(issued, want) {
			t.Fatalf("issued %v, want %v", issued, want)
		}
	}
	ensure(p, []string{"glb", "us-east"}, glb, region(1))
	r := reloader(t, tlsx.Dir(p.Path("us-east")), nil, "region")
	first := r.Certificate().Leaf
	ensure(p, nil, glb, region(1))
	ensure(p, []string{"us-east"}, glb, region(2))
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := r.Certificate().Leaf; got.SerialNumber.Cmp(first.SerialNumber) == 0 || !got.IPAddresses[0].Equal(net.IPv4(127, 0, 1, 2)) {
		t.Errorf("the reloaded certificate names %v, want 127.0.1.2", got.IPAddresses)
	}
	ensure(tlsx.LocalPKI{Dir: p.Dir, RenewBefore: 100 * 24 * time.Hour}, []string{"glb", "us-east"}, glb, region(2))

	ca, err := tlsx.LoadCA(tlsx.Dir(p.CAPath()))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	g := reloader(t, tlsx.Dir(p.Path("glb")), nil, "glb").Certificate().Leaf
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := g.Verify(x509.VerifyOptions{Roots: pool, DNSName: "glb", KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("glb's certificate for usage %v: %v", u, err)
		}
	}
	for _, bad := range []string{"ca", "../etc", ".hidden", ""} {
		if _, err := p.Ensure(tlsx.CertRequest{Name: bad}); err == nil {
			t.Errorf("accepted the name %q", bad)
		}
	}
}
