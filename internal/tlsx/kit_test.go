package tlsx_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
	"meridian.dev/meridian/internal/tlsx"
)

// newCA is a fresh Meridian CA.
func newCA(t *testing.T) *tlsx.CA {
	t.Helper()
	ca, err := tlsx.NewCA(tlsx.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue is a certificate for 127.0.0.1 and names, for usage.
func issue(t *testing.T, ca *tlsx.CA, usage tlsx.Usage, names ...string) tlsx.Bundle {
	t.Helper()
	b, err := ca.Issue(tlsx.IssueOptions{DNSNames: names, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: usage})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serial is the serial number of b's leaf.
func serial(t *testing.T, b tlsx.Bundle) *big.Int {
	t.Helper()
	return leaf(t, b).SerialNumber
}

// leaf is b's leaf certificate.
func leaf(t *testing.T, b tlsx.Bundle) *x509.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf
}

// kubeletWrite updates dir the way kubelet's AtomicWriter projects a
// Secret into a pod: the files in a new ..<timestamp> directory, a
// ..data_tmp link to it renamed over ..data, user-visible links
// tls.crt -> ..data/tls.crt created once, the old directory removed.
func kubeletWrite(t *testing.T, dir string, b tlsx.Bundle) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ts := ".." + time.Now().UTC().Format("2006_01_02_15_04_05.000000000")
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.crt": b.Cert, "tls.key": b.Key, "ca.crt": b.CA} {
		if err := os.WriteFile(filepath.Join(dir, ts, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// reloader reads files with a test's options; it is not polling.
func reloader(t *testing.T, files tlsx.Files, m *tlsx.Metrics, name string) *tlsx.Reloader {
	t.Helper()
	r, err := tlsx.NewReloader(files, tlsx.ReloaderOptions{Name: name, Metrics: m, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serveTLS serves an HTTPS echo of the client's certificate serial on
// loopback with cfg, as httpserve.Serve does: http.Server.Serve on a TLS
// listener (the runnable example uses ServeTLS). It
// returns the server's URL and its error log (failed handshakes).
func serveTLS(t *testing.T, cfg *tls.Config) (string, *logLines) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errs := &logLines{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(r.TLS.PeerCertificates) > 0 {
				fmt.Fprint(w, r.TLS.PeerCertificates[0].SerialNumber.Text(16))
			}
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(errs, "", 0),
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(tls.NewListener(ln, cfg)) })
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	return "https://" + ln.Addr().String(), errs
}

// get requests url and returns the server's leaf serial, the body (the
// client certificate's serial, in hex, when one was presented) and the
// connection's TLS state.
func get(t *testing.T, rt http.RoundTripper, url string) (*big.Int, string, *tls.ConnectionState, error) {
	t.Helper()
	resp, err := (&http.Client{Transport: rt, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return nil, "", nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", nil, err
	}
	return resp.TLS.PeerCertificates[0].SerialNumber, string(body), resp.TLS, nil
}

// trusting is a plain http.Transport trusting ca's certificates, for
// tests that exercise only the server side.
func trusting(t *testing.T, b tlsx.Bundle) *http.Transport {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CA) {
		t.Fatal("no CA in bundle")
	}
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
}

// logLines counts the lines a Reloader logs that contain a string.
type logLines struct{ testbin.Buffer }

func (l *logLines) count(s string) int { return strings.Count(l.String(), s) }
