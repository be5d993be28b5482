// Package front is the global balancer's HTTP front, served by each
// balancer site (point of presence) on its own address: a reverse proxy
// that sends each inference request to a member cluster and, when that
// cluster fails, to the next one, so that a cluster or a whole region
// dying costs no request.
//
// Which clusters can serve a request, best first, is decided by a [Router]
// (the balancer implements it with its steering policies); the front owns
// the HTTP side. It takes the model from the path (/v2/models/{model}/… of
// the Open Inference Protocol, or an exact path such as /analyze) and the
// client's address from the connection or the X-Forwarded-For entry its
// [ForwardedFor] policy trusts (counted from the right, never the
// spoofable left end), buffers the body up to a limit, and tries
// candidates whose endpoints the SSRF policy allows (internal/endpoint) in
// order: the best tier first, balanced by least outstanding requests (or
// pinned by an affinity key), skipping clusters ejected for consecutive
// failures. A connection error, a per-try timeout, 429, 502, 503 or 504
// moves the request to the next cluster, while a retry budget shared by
// all requests ([RetryBudget], as Envoy's) allows; once a response's
// headers are passed on it is never retried. Retrying is safe because an
// inference request has no side effects: sending it twice costs compute,
// never correctness. With hedging on, a slow request also gets a second
// copy at the next cluster and the first answer wins. Headers and body
// pass through untouched — the binary tensor extension's
// Inference-Header-Content-Length included — less hop-by-hop headers and
// the client's own forwarding headers, and the answer names its cluster in
// X-Meridian-Cluster.
package front
