// Package httpserve builds Meridian's HTTP servers hardened against slow
// and greedy clients, one place for what every listener needs: the model
// server, the agent's fronts, gateway and activator, the balancer's front
// and the test fixtures.
//
// New returns an *http.Server with every limit set (Options; each field's
// zero value takes the production default, a negative one turns it off):
//
//   - ReadHeaderTimeout bounds the request line and headers (slowloris),
//     and with TLS the handshake too;
//   - BodyTimeout, with MinBodyRate, bounds the body: it must arrive
//     within BodyTimeout of the headers, each MinBodyRate bytes that do
//     arrive buying another second, so a large upload at a sane rate
//     finishes while a body trickled a byte at a time (R-U-Dead-Yet) is
//     cut off. A handler's read then fails with an error that
//     errors.Is(err, ErrBodyTimeout); answer it 408 (the server closes
//     the connection after the reply). The server's own ReadTimeout stays
//     off: a fixed deadline for headers and body together either cuts
//     off large uploads at a sane rate or lets a trickled body hold its
//     connection as long;
//   - WriteTimeout bounds the answer: from the end of the headers, and
//     again from the end of the body (or its timeout), so time spent
//     receiving a large body does not eat into it. Size it above the
//     longest a handler may take (the model server's request timeout);
//   - IdleTimeout closes keep-alive connections left idle. The default,
//     120s, outlasts the 90s idle timeout of Meridian's proxies'
//     transports, so a pooled connection is always closed by the client
//     side first (a server closing first races a reused POST, which a
//     client cannot safely retry);
//   - MaxHeaderBytes caps the request line and headers; net/http answers
//     431 Request Header Fields Too Large beyond it (plus its 4 KiB of
//     slack);
//   - ambiguous framing (request smuggling) is refused: net/http answers
//     conflicting Content-Lengths 400 and a transfer coding other than
//     chunked 501, but accepts Content-Length beside chunked
//     Transfer-Encoding (dropping the Content-Length); Listener, which
//     Serve applies, refuses that too, 400 before any handler
//     (internal/framing; plain HTTP only: behind TLS terminated by the
//     server itself net/http judges alone);
//   - MaxConns caps open connections: one over the cap is closed as soon
//     as it is accepted (the client sees a reset and can try another
//     address), so a flood of idle sockets cannot exhaust descriptors or
//     memory;
//   - MaxInFlight caps requests inside handlers at once: one over the cap
//     is answered 503 with Retry-After: 1 at once (Options.Refuse writes
//     it in the caller's error shape), before its body is read.
//
// Serve runs such a server on a listener until a context ends, then
// drains it; a caller serving the server itself wraps its listeners with
// Listener.
//
// # Metrics
//
// On Options.Registerer (several servers may share one registry; Name
// tells them apart):
//
//   - meridian_http_rejected_total{server,reason}: connections and
//     requests refused by a limit; reason is "connections" (MaxConns),
//     "inflight" (MaxInFlight) or "body_timeout" (BodyTimeout);
//   - meridian_http_open_connections{server}: connections open now;
//   - meridian_http_inflight_requests{server}: requests inside handlers
//     now.
package httpserve
