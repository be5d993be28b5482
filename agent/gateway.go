package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"meridian.dev/meridian/agent/process"
	"meridian.dev/meridian/internal/httpserve"
	"meridian.dev/meridian/internal/oipgrpc"
)

// The gateway is the process runtime's one address for every model of
// this site (ProcessOptions.GatewayPort on FrontHost): what the global
// balancer's DNS answers point clients at. A DNS answer carries an address,
// not a port, so every site of a fleet must serve every model on the same
// port, as a Kubernetes LoadBalancer Service does on its own; the per-model
// fronts keep their own ports for the balancer's probes and HTTP front.
//
// It routes a request to a model's front by the path (/v2/models/<name>/...)
// or else by the first label of the Host header (sentiment.infer.example.com
// → sentiment), so `POST /analyze` works through a model's DNS name.

// serveGateway serves the gateway until ctx ends; it closes at once (no
// drain) when the agent stops, as the fronts behind it drain themselves.
func (a *Agent) serveGateway(ctx context.Context) error {
	addr := net.JoinHostPort(a.opts.Process.FrontHost, fmt.Sprint(a.opts.Process.GatewayPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("gateway: listening on %s (--gateway-port; every site serves its models on this one port): %w", addr, err)
	}
	// The fronts behind it answer within a minute (their WriteTimeout).
	srv, err := httpserve.New(a.door.Wrap(http.HandlerFunc(a.routeGateway)), httpserve.Options{
		Name: "agent-gateway", WriteTimeout: time.Minute, Registerer: a.opts.Registry, Logger: a.log})
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("gateway: %w", err)
	}
	if t := a.opts.Process.TLS; t != nil {
		// The fronts' certificate; its clients are users, who have none.
		srv.TLSConfig = t.Clone()
		srv.TLSConfig.ClientAuth, srv.TLSConfig.VerifyConnection = tls.NoClientCert, nil
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	a.log.Info("gateway serving every model of this site", "addr", ln.Addr().String(), "tls", srv.TLSConfig != nil)
	if err := httpserve.ServeOnce(srv, ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

func (a *Agent) routeGateway(w http.ResponseWriter, r *http.Request) {
	name := requestModel(r)
	f, models := a.frontFor(name)
	if f == nil {
		msg := fmt.Sprintf("no model %q at this site; models served here: %s (name one by path /v2/models/<name>/..., by the Host header's first label, or in a gRPC call's message)",
			name, strings.Join(models, ", "))
		if oipgrpc.IsCall(r) {
			oipgrpc.WriteError(w, http.StatusNotFound, msg)
			return
		}
		http.Error(w, msg, http.StatusNotFound)
		return
	}
	f.ServeHTTP(w, r)
}

type modelKey struct{}

// withModel marks the requests h serves as addressed to model (a
// per-model front's), for requestModel.
func withModel(model string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), modelKey{}, model)))
	})
}

// requestModel is the model a request addresses, for the auth door's
// model allow-lists: the one a gRPC call's message names (which a server
// would serve, whatever front it came through), else its front's, else
// as the gateway routes it.
func requestModel(r *http.Request) string {
	if oipgrpc.IsCall(r) {
		if m := oipgrpc.PolicyModel(r, oipgrpc.DefaultLimit); m != "" {
			return m
		}
	}
	if m, ok := r.Context().Value(modelKey{}).(string); ok {
		return m
	}
	return gatewayModel(r)
}

// gatewayModel is the model a request names: by path, else by host.
func gatewayModel(r *http.Request) string {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v2/models/"); ok {
		name, _, _ := strings.Cut(rest, "/")
		return name
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	label, _, _ := strings.Cut(host, ".")
	return label
}

// frontFor is the front serving model, and the models served here.
func (a *Agent) frontFor(model string) (*process.Front, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	var found *process.Front
	for _, l := range a.locals {
		n := l.model
		names = append(names, n)
		if n == model && found == nil {
			found = l.front
		}
	}
	slices.Sort(names)
	return found, names
}
