package tlsx_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/tlsx"
)

// A region's server requiring mutual TLS from the balancer, and the
// balancer's client: certificates from a LocalPKI (a mounted Secret's
// directory works the same), reloaded while both run.
func Example() {
	dir, err := os.MkdirTemp("", "pki")
	if err != nil {
		panic(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	pki := tlsx.LocalPKI{Dir: dir}
	if _, err := pki.Ensure(
		tlsx.CertRequest{Name: "region", IssueOptions: tlsx.IssueOptions{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: tlsx.UsageServer}},
		tlsx.CertRequest{Name: "glb", IssueOptions: tlsx.IssueOptions{DNSNames: []string{"glb"}, Usage: tlsx.UsageClient}},
	); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler) // the component's logger
	metrics, err := tlsx.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		panic(err)
	}

	// The server.
	serverCerts, err := tlsx.NewReloader(tlsx.Dir(pki.Path("region")), tlsx.ReloaderOptions{Name: "server", Logger: log, Metrics: metrics})
	if err != nil {
		panic(err)
	}
	go serverCerts.Run(ctx)
	cfg, err := tlsx.ServerConfig(serverCerts, tlsx.ServerOptions{RequireClientCert: true, AllowedClients: []string{"glb"}})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %v", tlsx.Identities(r.TLS.PeerCertificates[0]))
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer func() { _ = srv.Close() }()

	// The client.
	clientCerts, err := tlsx.NewReloader(tlsx.Dir(pki.Path("glb")), tlsx.ReloaderOptions{Name: "upstream", Logger: log, Metrics: metrics})
	if err != nil {
		panic(err)
	}
	go clientCerts.Run(ctx)
	hc := &http.Client{Transport: tlsx.NewTransport(tlsx.NewClient(clientCerts, tlsx.ClientOptions{}))}
	resp, err := hc.Get("https://" + ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Proto, string(body))
	// Output: HTTP/2.0 hello [glb]
}
