package front

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"meridian.dev/meridian/internal/oipgrpc"
)

// gRPC through the front.
//
// A request is gRPC when it arrives over HTTP/2 with a Content-Type of
// application/grpc. It goes to the same clusters, with the same retries,
// ejection, affinity, hedging and budget as HTTP, over HTTP/2 to the
// cluster (h2c for http:// endpoints, h2 by ALPN for https://), and the
// answer's trailers (grpc-status) come back with it. The Open Inference
// Protocol's model-level calls (ModelInfer, ModelMetadata, ModelReady)
// name their model in the message's first field, which the front reads
// from the buffered body; the server-level calls (ServerLive, ServerReady,
// ServerMetadata) name none, so they reach a cluster only through
// Options.PathModels. Every call of the service is idempotent (inference
// is a function of its inputs, as HTTP infer is), so each is retried like
// an HTTP infer.

// grpcRetryReason is why a cluster's gRPC answer sends the call on to the
// next cluster, or "": a refusal before any work (UNAVAILABLE: no replica
// or shutting down; RESOURCE_EXHAUSTED: its queues are full) arrives as a
// trailers-only answer, with grpc-status in the headers.
func grpcRetryReason(resp *http.Response) string {
	switch oipgrpc.HeaderStatus(resp) {
	case oipgrpc.Unavailable:
		return "grpc_unavailable"
	case oipgrpc.ResourceExhausted:
		return "grpc_resource_exhausted"
	}
	return ""
}

// grpcTimeout parses a grpc-timeout header (at most 8 digits and a unit);
// false when there is none or it is malformed.
func grpcTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseUint(v[:len(v)-1], 10, 64)
	if err != nil {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	if n > uint64(math.MaxInt64/unit) {
		return 0, false // longer than any bound the front keeps
	}
	return time.Duration(n) * unit, true
}
