package tlsx

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReloadInterval is how often a Reloader polls its files when its
// options name no interval. kubelet itself takes up to a minute or so to
// project a changed Secret into a pod, so a few seconds add little.
const DefaultReloadInterval = 5 * time.Second

// ReloaderOptions configure a Reloader.
type ReloaderOptions struct {
	// Name names the set in logs and in the metrics' name label, e.g.
	// "server" or "upstream-client". Required; keep it low-cardinality.
	Name string
	// Interval is how often Run polls the files. Zero: DefaultReloadInterval.
	Interval time.Duration
	// Logger receives a line for each certificate set loaded and each one
	// refused. Nil: slog.Default().
	Logger *slog.Logger
	// Metrics records reloads and expiry. Nil: none.
	Metrics *Metrics
}

// Reloader serves the newest valid certificate set read from Files. It
// loads the set once in NewReloader and again whenever Run or Reload sees
// the files' content change; a set that does not load is refused and the
// previous one keeps serving. Its methods are safe for concurrent use and
// are meant as tls.Config hooks (ServerConfig and Client wire them).
type Reloader struct {
	files Files
	o     ReloaderOptions

	cur     atomic.Pointer[material]
	mu      sync.Mutex // serializes Reload
	lastBad *Bundle    // the refused content last logged; guarded by mu
}

// material is one loaded certificate set.
type material struct {
	raw  Bundle
	cert *tls.Certificate // nil: Files names no certificate
	pool *x509.CertPool   // nil: Files names no CA bundle
	// caExpiry is the earliest NotAfter in the CA bundle.
	caExpiry time.Time
}

// NewReloader loads files and returns a Reloader serving them, or the
// reason they do not load. Start polling with Run.
func NewReloader(files Files, o ReloaderOptions) (*Reloader, error) {
	if o.Name == "" {
		return nil, errors.New("tlsx: ReloaderOptions.Name is required (it labels logs and metrics)")
	}
	if (files.Cert == "") != (files.Key == "") {
		return nil, fmt.Errorf("tls %s: give a certificate and its key together (certificate %q, key %q)", o.Name, files.Cert, files.Key)
	}
	if files.Cert == "" && files.CA == "" {
		return nil, fmt.Errorf("tls %s: no files: give a certificate and key, a CA bundle, or both", o.Name)
	}
	if o.Interval <= 0 {
		o.Interval = DefaultReloadInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Reloader{files: files, o: o}
	raw, err := files.Read()
	if err == nil {
		var m *material
		if m, err = load(raw, time.Now()); err == nil {
			r.install(m)
			r.o.Metrics.reloaded(o.Name, nil)
			return r, nil
		}
	}
	r.o.Metrics.reloaded(o.Name, err)
	return nil, fmt.Errorf("tls %s: %w", o.Name, err)
}

// Run polls the files every Interval until ctx ends, swapping in each
// changed set that loads.
func (r *Reloader) Run(ctx context.Context) {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.Reload()
		}
	}
}

// Reload reads the files now and swaps in their set if it changed and
// loads. It returns why a changed set was refused (nil when nothing
// changed or the new set is in use).
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	raw, err := r.files.Read()
	if err == nil && r.cur.Load().raw.equal(raw) {
		return nil
	}
	var m *material
	if err == nil {
		m, err = load(raw, time.Now())
	}
	r.o.Metrics.reloaded(r.o.Name, err)
	if err != nil {
		if r.lastBad == nil || !r.lastBad.equal(raw) {
			r.lastBad = &raw
			r.o.Logger.Error("refusing a changed TLS certificate set; the previous one keeps serving until the files are fixed",
				"name", r.o.Name, "files", r.files, "err", err)
		}
		return fmt.Errorf("tls %s: %w", r.o.Name, err)
	}
	r.lastBad = nil
	r.install(m)
	return nil
}

func (r *Reloader) install(m *material) {
	r.cur.Store(m)
	attrs := []any{"name", r.o.Name}
	if m.cert != nil {
		leaf := m.cert.Leaf
		r.o.Metrics.expires(r.o.Name, "leaf", leaf.NotAfter)
		attrs = append(attrs, "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC())
	}
	if m.pool != nil {
		r.o.Metrics.expires(r.o.Name, "ca", m.caExpiry)
		attrs = append(attrs, "ca_not_after", m.caExpiry.UTC())
	}
	r.o.Logger.Info("TLS certificate set loaded", attrs...)
}

// Certificate is the certificate in use (nil when Files names none).
func (r *Reloader) Certificate() *tls.Certificate { return r.cur.Load().cert }

// Pool is the CA bundle in use (nil when Files names none).
func (r *Reloader) Pool() *x509.CertPool { return r.cur.Load().pool }

// GetCertificate is a tls.Config.GetCertificate serving the current
// certificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := r.Certificate()
	if c == nil {
		return nil, fmt.Errorf("tls %s: no server certificate configured", r.o.Name)
	}
	return c, nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate presenting
// the current certificate, or none when Files names none.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := r.Certificate(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil
}

// load parses a certificate set: the pair must match, the certificate
// must not have expired at now, and the CA bundle must hold only
// certificates.
func load(raw Bundle, now time.Time) (*material, error) {
	m := &material{raw: raw}
	if raw.Cert != nil {
		pair, err := tls.X509KeyPair(raw.Cert, raw.Key)
		if err != nil {
			return nil, fmt.Errorf("certificate and key: %w", err)
		}
		if now.After(pair.Leaf.NotAfter) {
			return nil, fmt.Errorf("the certificate expired at %s: issue a new one", pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		m.cert = &pair
	}
	if raw.CA != nil {
		cas, err := parseCerts(raw.CA, "CA bundle")
		if err != nil {
			return nil, err
		}
		m.pool = x509.NewCertPool()
		for _, c := range cas {
			m.pool.AddCert(c)
			if m.caExpiry.IsZero() || c.NotAfter.Before(m.caExpiry) {
				m.caExpiry = c.NotAfter
			}
		}
	}
	return m, nil
}

func (b Bundle) equal(o Bundle) bool {
	return bytes.Equal(b.Cert, o.Cert) && bytes.Equal(b.Key, o.Key) && bytes.Equal(b.CA, o.CA)
}
