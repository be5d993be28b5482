// Package oipgrpc reads what the fronts and the auth door need of an Open
// Inference Protocol gRPC call (KServe's and Triton's
// inference.GRPCInferenceService) without decoding it: whether a request
// is such a call, and the model it names.
//
// The model-level calls (ModelInfer, ModelMetadata, ModelReady) name their
// model in field 1 of their one message (model_name, or name). Protobuf
// lets a field appear more than once, the last one winning, so Model
// reads the whole message and returns what a server's decoder would: a
// client cannot show the door one model and the server another.
package oipgrpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Service is the path prefix of the service's methods.
const Service = "/inference.GRPCInferenceService/"

// IsCall reports whether r is a gRPC call: HTTP/2, Content-Type
// application/grpc (or application/grpc+proto, …).
func IsCall(r *http.Request) bool {
	if r.ProtoMajor != 2 {
		return false
	}
	rest, ok := strings.CutPrefix(r.Header.Get("Content-Type"), "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// ErrNoModel is a call that names no model: a server-level method
// (ServerLive, ServerReady, ServerMetadata), or one outside the service.
var ErrNoModel = errors.New("names no model")

// Call is what a model-level call's message names.
type Call struct {
	Model   string // field 1: model_name (ModelInfer) or name
	Version string // field 2: model_version (ModelInfer) or version; "" for any
}

// Model returns the model a unary call to path names, given its body (the
// 5-byte gRPC message header and the message).
func Model(path string, body []byte) (string, error) {
	c, err := Read(path, body)
	return c.Model, err
}

// Read returns the model and version a unary call to path names, given
// its body. Like a decoder, it takes the last of a field given twice.
func Read(path string, body []byte) (Call, error) {
	switch strings.TrimPrefix(path, Service) {
	case "ModelInfer", "ModelMetadata", "ModelReady":
	default:
		return Call{}, ErrNoModel
	}
	if len(body) < 5 {
		return Call{}, errors.New("the body is not one gRPC message")
	}
	if body[0] != 0 {
		return Call{}, errors.New("the message is compressed: the model name is read from it, so send it uncompressed")
	}
	if n := binary.BigEndian.Uint32(body[1:5]); uint64(n) != uint64(len(body)-5) {
		return Call{}, fmt.Errorf("the body holds %d bytes after the message header, which announces %d: a unary call carries exactly one message", len(body)-5, n)
	}
	var model, version []byte
	for msg := body[5:]; len(msg) > 0; {
		num, typ, k := protowire.ConsumeTag(msg)
		if k < 0 {
			return Call{}, fmt.Errorf("malformed message: %w", protowire.ParseError(k))
		}
		msg = msg[k:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			model, k = protowire.ConsumeBytes(msg)
		case num == 2 && typ == protowire.BytesType:
			version, k = protowire.ConsumeBytes(msg)
		default:
			k = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if k < 0 {
			return Call{}, fmt.Errorf("malformed message: %w", protowire.ParseError(k))
		}
		msg = msg[k:]
	}
	if len(model) == 0 {
		return Call{}, errors.New("the message names no model")
	}
	return Call{Model: string(model), Version: string(version)}, nil
}

// ReadModel reads r's body (up to limit bytes), puts what it read back
// in front of the rest for the handler to read, and returns the model
// the call names.
func ReadModel(r *http.Request, limit int64) (string, error) {
	orig := r.Body
	body, err := io.ReadAll(io.LimitReader(orig, limit+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), orig), orig}
	if err != nil {
		return "", fmt.Errorf("reading the call: %w", err)
	}
	if int64(len(body)) > limit {
		return "", fmt.Errorf("the call is over the %d-byte limit", limit)
	}
	return Model(r.URL.Path, body)
}

// Unreadable is the model PolicyModel gives a call whose model it cannot
// read: a name no model has, so only a tenant allowed every model passes,
// and the handler then refuses the call itself.
const Unreadable = "(unreadable gRPC call)"

// DefaultLimit bounds the body PolicyModel reads when its caller has no
// limit of its own: the model server's default max_request_bytes, plus
// room for the message's other fields.
const DefaultLimit = 64<<20 + 1<<20

// PolicyModel is ReadModel for an authorization check, which needs a
// name and no error: "" for a call that names no model (as for a path
// that names none), Unreadable when it cannot read the name.
func PolicyModel(r *http.Request, limit int64) string {
	m, err := ReadModel(r, limit)
	switch {
	case errors.Is(err, ErrNoModel):
		return ""
	case err != nil:
		return Unreadable
	}
	return m
}

// gRPC status codes (google.golang.org/grpc/codes).
const (
	InvalidArgument   = 3
	DeadlineExceeded  = 4
	NotFound          = 5
	PermissionDenied  = 7
	ResourceExhausted = 8
	Unimplemented     = 12
	Internal          = 13
	Unavailable       = 14
	Unauthenticated   = 16
)

// CodeFor maps the HTTP status a Meridian front would answer to the gRPC
// status a gRPC client gets instead.
func CodeFor(httpCode int) int {
	switch httpCode {
	case http.StatusBadRequest:
		return InvalidArgument
	case http.StatusUnauthorized:
		return Unauthenticated
	case http.StatusForbidden:
		return PermissionDenied
	case http.StatusNotFound:
		return NotFound
	case http.StatusRequestEntityTooLarge:
		return ResourceExhausted
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return DeadlineExceeded
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
		return Unavailable
	case http.StatusNotImplemented:
		return Unimplemented
	}
	return Internal
}

// WriteError answers a gRPC call with a status and no message (a
// "trailers-only" answer: HTTP 200, grpc-status in the headers) and
// returns the HTTP status it stands for, which metrics count.
func WriteError(w http.ResponseWriter, httpCode int, msg string) int {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(CodeFor(httpCode)))
	h.Set("Grpc-Message", escape(msg))
	w.WriteHeader(http.StatusOK)
	return httpCode
}

// escape percent-encodes a grpc-message as the gRPC HTTP/2 mapping asks:
// every byte outside printable ASCII, and '%'.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// HeaderStatus is the grpc-status of a trailers-only answer (a refusal
// before any work: it is in the headers), or -1 when the headers carry
// none.
func HeaderStatus(resp *http.Response) int {
	v, ok := resp.Header["Grpc-Status"]
	if !ok || len(v) == 0 {
		return -1
	}
	n, err := strconv.Atoi(v[0])
	if err != nil {
		return -1
	}
	return n
}
