package front

import (
	"io"
	"net/http"
	"strconv"
	"sync"
)

// relay streams the winning attempt's response to the client and returns
// its status code. Once the headers are written the request is committed:
// if the cluster fails mid-body the client's connection is aborted, so a
// truncated body never looks complete.
func (f *Front) relay(w http.ResponseWriter, a *attempt) int {
	defer f.finish(a)
	resp := a.resp
	// The response's header is this request's alone: its values pass on
	// without copies.
	h := w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	removeHopHeaders(h)
	h.Set(ClusterHeader, a.cand.Cluster)
	w.WriteHeader(resp.StatusCode)
	var dst io.Writer = w
	if resp.ContentLength == -1 {
		dst = flushWriter{w: w, rc: http.NewResponseController(w)} // streamed: pass each piece on
	}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	if _, err := io.CopyBuffer(dst, onlyReader{resp.Body}, *buf); err != nil {
		f.log.Debug("global front: response body cut short", "cluster", a.cand.Cluster, "err", err)
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		w.Header()[http.TrailerPrefix+k] = vv
	}
	return resp.StatusCode
}

// copyBuffers are relay's copy buffers: without them every response
// copied through a writer without ReadFrom (a streamed answer, tests'
// recorders) would allocate io.Copy's 32 KiB.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// onlyReader hides the body's WriteTo so io.CopyBuffer uses the pooled
// buffer.
type onlyReader struct{ io.Reader }

type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if err == nil {
		_ = fw.rc.Flush()
	}
	return n, err
}

// maxErrorBody bounds the body kept of a failed answer, in case every
// cluster fails and it is the one passed on.
const maxErrorBody = 1 << 20

// bufferedResponse is a failed cluster's answer, read into memory so its
// connection is free while the next cluster is tried.
type bufferedResponse struct {
	cluster string
	code    int
	header  http.Header
	body    []byte
	trailer http.Header // a gRPC answer's status
}

// bufferResponse reads a's response, or returns nil when its body is too
// large to hold or cannot be read.
func bufferResponse(a *attempt) *bufferedResponse {
	body, err := io.ReadAll(io.LimitReader(a.resp.Body, maxErrorBody+1))
	if err != nil || len(body) > maxErrorBody {
		return nil
	}
	return &bufferedResponse{cluster: a.cand.Cluster, code: a.resp.StatusCode, header: a.resp.Header, body: body, trailer: a.resp.Trailer}
}

func (b *bufferedResponse) write(w http.ResponseWriter) int {
	copyHeader(w.Header(), b.header)
	w.Header().Set(ClusterHeader, b.cluster)
	if len(b.trailer) == 0 {
		w.Header().Set("Content-Length", strconv.Itoa(len(b.body)))
	}
	w.WriteHeader(b.code)
	_, _ = w.Write(b.body)
	for k, vv := range b.trailer {
		w.Header()[http.TrailerPrefix+k] = vv
	}
	return b.code
}
