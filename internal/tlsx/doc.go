// Package tlsx is Meridian's one TLS layer: certificates read from files
// and reloaded without a restart, server and client configurations with
// mutual TLS, and the Meridian CA that issues the fleet's certificates.
//
// Certificates live in cert-manager's Secret layout, a directory holding
// tls.crt (the certificate chain, leaf first), tls.key (its private key)
// and ca.crt (the CAs trusted to sign peers) — exactly what a mounted
// Kubernetes Secret looks like, including kubelet's atomic update, which
// writes a new timestamped directory and swaps the ..data symlink to it.
// Explicit paths work the same (Files).
//
// A Reloader reads a Files set, then polls it every few seconds (reading
// the files' content, so a swapped symlink, an in-place rewrite and a
// rename over the file all count) and swaps in the newest valid set: the
// tls.Config hooks read the current one on every handshake, so new
// connections see a rotated certificate or CA bundle while listeners and
// established connections are left alone. A new set that does not load
// (a truncated file, a key that does not match, an expired certificate)
// is refused: the old one keeps serving, the error is logged once and
// counted on every attempt.
//
// ServerConfig and Client build the tls.Config of each side. A server
// verifies client certificates against its Reloader's current CA bundle
// in VerifyConnection, which also runs on resumed sessions, so a CA
// removed from ca.crt stops being trusted at the next handshake. A
// Client makes one tls.Config per connection, carrying the current CA
// bundle and certificate, and starts a new session cache whenever they
// change; NewTransport is an http.Transport built on it. ServerFlags and
// ClientFlags give every command the same flags for all of this.
//
// CA issues certificates (NewCA for a fresh ECDSA P-256 root, LoadCA for
// one on disk, the operator's included); LocalPKI keeps a CA and one
// certificate per component of a fleet on one machine, re-issuing those
// that near expiry.
//
// Metrics (registered by NewMetrics on the component's registry):
//
//	meridian_tls_reload_total{name,result}                       counter: load attempts of a changed set, result success or error
//	meridian_tls_certificate_expiry_timestamp_seconds{name,cert} gauge: NotAfter of the serving leaf (cert="leaf") and the earliest of the CA bundle (cert="ca"), in Unix seconds
//	meridian_tls_client_rejected_total{name,reason}               counter: client handshakes a mutual-TLS server refused, reason no_certificate, untrusted or identity
package tlsx
