package tlsx_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"meridian.dev/meridian/internal/tlsx"
)

// A CA written in cert-manager's layout loads back as the same CA, its
// key kept private, and what it issues verifies against its ca.crt for
// the usage asked, and only that usage.
func TestCAWriteLoadIssue(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	if pub, ok := ca.Cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key %T, want ECDSA P-256", ca.Cert.PublicKey)
	}
	if !ca.Cert.IsCA || ca.Cert.MaxPathLen != 0 || !ca.Cert.MaxPathLenZero {
		t.Errorf("CA constraints: IsCA %v, path length %d (zero %v); want a CA signing leaves only", ca.Cert.IsCA, ca.Cert.MaxPathLen, ca.Cert.MaxPathLenZero)
	}
	if life := time.Until(ca.Cert.NotAfter); life < 9*365*24*time.Hour {
		t.Errorf("CA lifetime %v, want about ten years", life)
	}
	dir := t.TempDir()
	if err := ca.Bundle().WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"tls.crt": 0o644, "tls.key": 0o600, "ca.crt": 0o644} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %v", name, fi.Mode(), err, mode)
		}
	}
	loaded, err := tlsx.LoadCA(tlsx.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) {
		t.Fatal("the loaded CA is not the one written")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.Bundle().CA)
	for _, c := range []struct {
		usage tlsx.Usage
		ok    []x509.ExtKeyUsage
		not   []x509.ExtKeyUsage
	}{
		{tlsx.UsageServer, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{tlsx.UsageClient, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{tlsx.UsageBoth, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil},
	} {
		b := issue(t, loaded, c.usage, "hub.meridian.local")
		lf := leaf(t, b)
		if lf.IsCA || lf.Subject.CommonName != "hub.meridian.local" || !slices.Equal(lf.DNSNames, []string{"hub.meridian.local"}) || !lf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("%s: %+v", c.usage, lf)
		}
		for _, u := range c.ok {
			if _, err := lf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "hub.meridian.local", KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Errorf("%s certificate for usage %v: %v", c.usage, u, err)
			}
		}
		for _, u := range c.not {
			if _, err := lf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{u}}); err == nil {
				t.Errorf("%s certificate verified for usage %v", c.usage, u)
			}
		}
		if string(b.CA) != string(ca.Bundle().CA) {
			t.Errorf("%s: ca.crt is not the CA's", c.usage)
		}
	}

	long := &url.URL{Scheme: "spiffe", Host: "meridian.example.com", Path: "/ns/meridian-system/sa/meridian-glb-front-eu-west-1"}
	b, err := ca.Issue(tlsx.IssueOptions{URIs: []*url.URL{long}, Usage: tlsx.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	if lf := leaf(t, b); lf.Subject.CommonName != "" || lf.URIs[0].String() != long.String() {
		t.Errorf("a URI longer than a CN may be: CN %q, URIs %v", lf.Subject.CommonName, lf.URIs)
	}

	short, err := tlsx.NewCA(tlsx.CAOptions{CommonName: "short", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if lf := leaf(t, issue(t, short, tlsx.UsageServer, "x")); !lf.NotAfter.Equal(short.Cert.NotAfter) {
		t.Errorf("a certificate outlives its CA: %v > %v", lf.NotAfter, short.Cert.NotAfter)
	}
	for _, o := range []tlsx.IssueOptions{{Usage: tlsx.UsageServer}, {DNSNames: []string{"x"}}, {DNSNames: []string{"x"}, Usage: "peer"}} {
		if _, err := ca.Issue(o); err == nil {
			t.Errorf("issued %+v", o)
		}
	}
	if _, err := tlsx.LoadCA(tlsx.Dir(t.TempDir())); err == nil {
		t.Error("loaded a CA from an empty directory")
	}
}

// WriteDir replaces files in place through one ..data swap and leaves
// only the newest version behind.
func TestWriteDirReplacesThroughDataLink(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("an operator's old file"), 0o644); err != nil {
		t.Fatal(err)
	}
	var last tlsx.Bundle
	for range 3 {
		last = issue(t, ca, tlsx.UsageServer, "x")
		if err := last.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tlsx.Dir(dir).Read()
	if err != nil || string(got.Cert) != string(last.Cert) || string(got.Key) != string(last.Key) {
		t.Fatalf("read back %v, want the last written", err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 5 || !strings.HasPrefix(names[1], "..meridian_") {
		t.Errorf("directory holds %v, want one version, ..data and the three links", names)
	}
	if link, err := os.Readlink(filepath.Join(dir, "tls.crt")); err != nil || link != filepath.Join("..data", "tls.crt") {
		t.Errorf("tls.crt links to %q (%v)", link, err)
	}
}

// An operator's CA — here an intermediate under an RSA root, keys in
// PKCS#1 and SEC 1, at paths of the operator's choosing — issues and
// verifies as the Meridian CA does: leaves carry the intermediate, and
// peers trusting only the root accept them.
func TestOperatorSuppliedIntermediateCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rootKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	root := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Example Corp Root"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ = x509.ParseCertificate(rootDER)
	interKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	inter := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Example Corp Meridian Issuing CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(12 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	interDER, err := x509.CreateCertificate(rand.Reader, inter, root, interKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	secKey, _ := x509.MarshalECPrivateKey(interKey)
	files := tlsx.Files{Cert: filepath.Join(dir, "issuing.pem"), Key: filepath.Join(dir, "issuing.key"), CA: filepath.Join(dir, "root.pem")}
	for path, block := range map[string]*pem.Block{
		files.Cert: {Type: "CERTIFICATE", Bytes: interDER},
		files.Key:  {Type: "EC PRIVATE KEY", Bytes: secKey},
		files.CA:   {Type: "CERTIFICATE", Bytes: rootDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := tlsx.LoadCA(files)
	if err != nil {
		t.Fatal(err)
	}
	server, clientB := issue(t, ca, tlsx.UsageServer, "region"), issue(t, ca, tlsx.UsageClient, "glb")
	if n := strings.Count(string(server.Cert), "BEGIN CERTIFICATE"); n != 2 {
		t.Errorf("tls.crt holds %d certificates, want the leaf and the intermediate", n)
	}
	if lf := leaf(t, server); !lf.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("leaf outlives the intermediate: %v", lf.NotAfter)
	}
	_, sr := fleetDir(t, server, "server")
	cfg, err := tlsx.ServerConfig(sr, tlsx.ServerOptions{RequireClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := serveTLS(t, cfg)
	_, cr := fleetDir(t, clientB, "client")
	if _, body, _, err := get(t, client(t, cr, tlsx.ClientOptions{}), url); err != nil || body != serial(t, clientB).Text(16) {
		t.Fatalf("mutual TLS through the operator's intermediate: %q %v", body, err)
	}

	leafDir, _ := fleetDir(t, server, "leaf")
	if _, err := tlsx.LoadCA(tlsx.Dir(leafDir)); err == nil || !strings.Contains(err.Error(), "not a CA certificate") {
		t.Errorf("loading a leaf as a CA: %v", err)
	}
}
