// Package framing refuses HTTP/1.1 requests whose message framing is
// ambiguous, the raw material of request smuggling: a request with both
// Content-Length and Transfer-Encoding, or with Content-Lengths that
// differ, or with a header folded over two lines. net/http refuses
// differing Content-Lengths but accepts Content-Length with
// Transfer-Encoding (it drops the Content-Length, as RFC 9112 lets a
// server do); a proxy behind or in front of it that reads the other
// header would then see another request boundary. RFC 9112 section 6.1
// lets a server refuse such a request instead, and this package does.
//
// Listener wraps a listener so that its connections follow each
// request's framing as the server reads it: header block, then the body
// by its Content-Length or chunked coding. When a request's framing is
// ambiguous, the connection hands the server the bytes before the end of
// its header block and then a NUL that net/http refuses, so it answers
// 400 Bad Request and closes the connection: nothing of that request
// reaches a handler, and the requests before it are served.
//
// It follows plain HTTP/1.x only: a connection that starts with a TLS
// handshake or the HTTP/2 preface, or whose requests it cannot follow (an
// unsupported transfer coding, a header block over MaxHeaderBytes), is
// passed through untouched, and net/http judges it alone. Wrap the
// listener beneath TLS only when TLS is terminated in front of the
// server.
package framing

import (
	"net"
)

// MaxHeaderBytes bounds the header block (and a chunked body's trailer)
// that a connection follows; beyond it the connection is passed through,
// for net/http's own limit (431) to answer.
const MaxHeaderBytes = 1<<20 + 4096

// Listener wraps l so that requests with ambiguous framing are refused.
func Listener(l net.Listener) net.Listener { return listener{l} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c}, nil
}

// refusal is what a connection hands the server in place of the rest of
// an ambiguous request: a NUL, which net/http refuses in a request line,
// a header name or a header value alike, so whatever part of the request
// it already has, it answers 400 and closes. Handing it bytes rather than
// a read error matters: net/http reads ahead while a handler runs, and
// takes an error there for the client leaving, canceling the request
// being served before the ambiguous one.
const refusal = "\x00\r\n\r\n"

// conn follows the requests read through it. net/http reads a
// connection from one goroutine at a time (its background read is over
// before the next read starts), so it needs no lock.
type conn struct {
	net.Conn
	p       parser
	refused bool   // an ambiguous request was met
	pending string // what of refusal is still to be read
}

func (c *conn) Read(b []byte) (int, error) {
	if c.refused {
		if c.pending != "" {
			n := copy(b, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		}
		// Nothing more is handed over. Wait as a quiet client would (an
		// error now would cancel a request still being served) until the
		// server, having refused, closes the connection.
		var scratch [512]byte
		for {
			if _, err := c.Conn.Read(scratch[:]); err != nil {
				return 0, err
			}
		}
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		if ok := c.p.feed(b[:n]); ok < n {
			c.refused = true
			m := copy(b[ok:], refusal)
			c.pending = refusal[m:]
			return ok + m, nil
		}
	}
	return n, err
}
