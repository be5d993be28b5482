package auth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxDenialBody bounds the body of a refusal relayed to the client.
const maxDenialBody = 64 << 10

// relayedHeaders are the headers of a refusal relayed to the client.
var relayedHeaders = []string{"Content-Type", "WWW-Authenticate", "Retry-After", "Location"}

// extAuthz is the external authorization hook.
type extAuthz struct {
	opts   ExtAuthzOptions
	base   *url.URL
	client *http.Client
	m      *metrics
}

func newExtAuthz(o ExtAuthzOptions, client *http.Client, m *metrics) (*extAuthz, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("external authorization URL %q: want http(s)://host[:port][/path]", o.URL)
	}
	o.ForwardPrefix = strings.ToLower(o.ForwardPrefix)
	c := *client // a redirect is an answer to relay, not to follow
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &extAuthz{opts: o, base: u, client: &c, m: m}, nil
}

// verdict is the service's answer: allowed with headers to set and a
// tenant, or a refusal to relay; err says the service could not answer.
type verdict struct {
	allowed bool
	set     http.Header
	tenant  string
	denial  *http.Response // a refusal to relay; its body is in body
	body    []byte
	err     error
}

// check asks the service about r; tenant is the tenant the request's own
// credential named, "" if none, sent in the tenant header.
func (e *extAuthz) check(r *http.Request, tenant string) verdict {
	start := time.Now()
	v := e.ask(r, tenant)
	e.m.extDuration.Observe(time.Since(start).Seconds())
	switch {
	case v.err != nil:
		e.m.extChecks.WithLabelValues(extError).Inc()
	case v.allowed:
		e.m.extChecks.WithLabelValues(extAllowed).Inc()
	default:
		e.m.extChecks.WithLabelValues(extDenied).Inc()
	}
	return v
}

func (e *extAuthz) ask(r *http.Request, tenant string) verdict {
	ctx, cancel := context.WithTimeout(r.Context(), e.opts.Timeout)
	defer cancel()
	u := *e.base // the request's path appended, escaped as the client sent it
	u.Path = strings.TrimSuffix(e.base.Path, "/") + r.URL.Path
	u.RawPath = strings.TrimSuffix(e.base.EscapedPath(), "/") + r.URL.EscapedPath()
	u.RawQuery = r.URL.RawQuery
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), http.NoBody)
	if err != nil {
		return verdict{err: err}
	}
	for _, h := range e.opts.Headers {
		for _, v := range r.Header.Values(h) {
			req.Header.Add(h, v)
		}
	}
	req.Header.Del(e.opts.TenantHeader)
	if tenant != "" {
		req.Header.Set(e.opts.TenantHeader, tenant)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return verdict{err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDenialBody))
		v := verdict{allowed: true, set: http.Header{}, tenant: resp.Header.Get(e.opts.TenantHeader)}
		for k, vals := range resp.Header {
			if strings.HasPrefix(strings.ToLower(k), e.opts.ForwardPrefix) {
				v.set[k] = vals
			}
		}
		return v
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDenialBody))
	if err != nil {
		return verdict{err: fmt.Errorf("reading the external authorization refusal: %w", err)}
	}
	return verdict{denial: resp, body: body}
}

// relay writes the service's refusal to w.
func (v verdict) relay(w http.ResponseWriter) {
	for _, h := range relayedHeaders {
		if vals := v.denial.Header.Values(h); len(vals) > 0 {
			w.Header()[h] = vals
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(v.body)))
	w.WriteHeader(v.denial.StatusCode)
	_, _ = w.Write(v.body)
}
