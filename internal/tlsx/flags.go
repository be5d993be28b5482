package tlsx

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/spf13/pflag"
)

// ServerFlags are a TLS server's command-line flags. Register adds them
// under a prefix, so one command can hold several servers' (--tls-…,
// --metrics-tls-…) and every command names them alike.
type ServerFlags struct {
	prefix            string
	dir, cert, key    string
	clientCA          string
	requireClientCert bool
	allowedClients    []string
}

// Register adds --PREFIX-dir, --PREFIX-cert-file, --PREFIX-key-file,
// --PREFIX-client-ca-file, --PREFIX-require-client-cert and
// --PREFIX-allowed-client to fs; what names the server in their help
// ("the model server's HTTPS listener").
func (f *ServerFlags) Register(fs *pflag.FlagSet, prefix, what string) {
	f.prefix = prefix
	fs.StringVar(&f.dir, prefix+"-dir", "", "directory in cert-manager's Secret layout (tls.crt, tls.key, ca.crt; a mounted Secret) holding the certificate of "+what+", reloaded within seconds when it changes; with neither this nor --"+prefix+"-cert-file it serves plain HTTP")
	fs.StringVar(&f.cert, prefix+"-cert-file", "", "PEM certificate chain of "+what+", leaf first (overrides --"+prefix+"-dir's tls.crt); reloaded when it changes")
	fs.StringVar(&f.key, prefix+"-key-file", "", "PEM private key of --"+prefix+"-cert-file (overrides --"+prefix+"-dir's tls.key)")
	fs.StringVar(&f.clientCA, prefix+"-client-ca-file", "", "PEM bundle of the CAs that sign client certificates (overrides --"+prefix+"-dir's ca.crt); used with --"+prefix+"-require-client-cert")
	fs.BoolVar(&f.requireClientCert, prefix+"-require-client-cert", false, "mutual TLS: refuse clients of "+what+" without a client certificate signed by the client CA bundle")
	fs.StringSliceVar(&f.allowedClients, prefix+"-allowed-client", nil, "with --"+prefix+"-require-client-cert, accept only client certificates naming one of these identities as a URI or DNS SAN (repeat or comma-separate; default: any the CA signed)")
}

// Enabled reports whether the flags ask for TLS at all.
func (f *ServerFlags) Enabled() bool { return f.dir != "" || f.cert != "" }

// Config loads the certificates the flags name, keeps them reloaded
// until ctx ends, and returns the server's tls.Config; nil (and no
// error) when the flags ask for no TLS. o.Name defaults to the prefix.
func (f *ServerFlags) Config(ctx context.Context, o ReloaderOptions) (*tls.Config, error) {
	if !f.Enabled() {
		if f.requireClientCert || len(f.allowedClients) > 0 {
			return nil, fmt.Errorf("--%s-require-client-cert needs TLS: give --%s-dir or --%s-cert-file", f.prefix, f.prefix, f.prefix)
		}
		return nil, nil
	}
	files := overlay(f.dir, Files{Cert: f.cert, Key: f.key, CA: f.clientCA})
	if !f.requireClientCert {
		files.CA = ""
	}
	r, err := start(ctx, files, o, f.prefix)
	if err != nil {
		return nil, err
	}
	cfg, err := ServerConfig(r, ServerOptions{RequireClientCert: f.requireClientCert, AllowedClients: f.allowedClients})
	if err != nil {
		return nil, fmt.Errorf("--%s-*: %w", f.prefix, err)
	}
	return cfg, nil
}

// ClientFlags are a TLS client's command-line flags (see ServerFlags).
type ClientFlags struct {
	prefix         string
	dir, cert, key string
	ca, serverName string
}

// Register adds --PREFIX-dir, --PREFIX-cert-file, --PREFIX-key-file,
// --PREFIX-ca-file and --PREFIX-server-name to fs; what names the
// servers the client reaches ("the regions' endpoints").
func (f *ClientFlags) Register(fs *pflag.FlagSet, prefix, what string) {
	f.prefix = prefix
	fs.StringVar(&f.dir, prefix+"-dir", "", "directory in cert-manager's Secret layout (tls.crt and tls.key: the client certificate presented to "+what+"; ca.crt: the CAs trusted to sign their certificates), reloaded within seconds when it changes")
	fs.StringVar(&f.cert, prefix+"-cert-file", "", "PEM client certificate chain presented to "+what+" (overrides --"+prefix+"-dir's tls.crt)")
	fs.StringVar(&f.key, prefix+"-key-file", "", "PEM private key of --"+prefix+"-cert-file (overrides --"+prefix+"-dir's tls.key)")
	fs.StringVar(&f.ca, prefix+"-ca-file", "", "PEM bundle of the CAs trusted to sign the certificates of "+what+" (overrides --"+prefix+"-dir's ca.crt; default with neither: the system's roots)")
	fs.StringVar(&f.serverName, prefix+"-server-name", "", "name verified in the certificates of "+what+" and sent as SNI, whatever address is dialed (default: the host dialed)")
}

// Enabled reports whether the flags name any file.
func (f *ClientFlags) Enabled() bool { return f.dir != "" || f.cert != "" || f.ca != "" }

// Client loads the files the flags name, keeps them reloaded until ctx
// ends, and returns the Client; nil (and no error) when they name none,
// for the caller to use the system's roots and no client certificate.
// o.Name defaults to the prefix.
func (f *ClientFlags) Client(ctx context.Context, o ReloaderOptions) (*Client, error) {
	if !f.Enabled() {
		return nil, nil
	}
	r, err := start(ctx, overlay(f.dir, Files{Cert: f.cert, Key: f.key, CA: f.ca}), o, f.prefix)
	if err != nil {
		return nil, err
	}
	return NewClient(r, ClientOptions{ServerName: f.serverName}), nil
}

// overlay is dir's Files (none when dir is empty) with the explicit
// paths set in explicit.
func overlay(dir string, explicit Files) Files {
	if dir == "" {
		return explicit
	}
	return Dir(dir).Override(explicit)
}

func start(ctx context.Context, files Files, o ReloaderOptions, prefix string) (*Reloader, error) {
	if o.Name == "" {
		o.Name = prefix
	}
	r, err := NewReloader(files, o)
	if err != nil {
		return nil, fmt.Errorf("--%s-*: %w", prefix, err)
	}
	go r.Run(ctx)
	return r, nil
}
