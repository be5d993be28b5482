package framing

import (
	"bytes"
	"strconv"
	"strings"
)

// state is where in a request the parser is.
type state int

const (
	stHeader    state = iota // request line and header fields
	stBody                   // a Content-Length body: left bytes to go
	stChunkSize              // a chunk-size line
	stChunkData              // a chunk's data: left bytes to go
	stChunkCR                // the CR after a chunk's data
	stChunkLF                // the LF after it
	stTrailer                // trailer fields, up to an empty line
	stPass                   // not followed: pass everything
)

// parser follows the framing of the requests on one connection, as
// net/http reads them.
type parser struct {
	st   state
	left uint64 // bytes of body or chunk data to go
	line []byte // the line being read
	size int    // bytes of the header block or trailer so far

	seen    bool // the connection's first byte
	started bool // the request line was read
	http10  bool
	te      []string
	cl      []string
	folded  bool
}

// feed follows b and returns how many of its bytes may be handed to the
// server: len(b), or the offset at which a request turned out ambiguous
// (before the end of its header block, so the server never sees it whole).
func (p *parser) feed(b []byte) int {
	for i := 0; i < len(b); {
		if !p.seen {
			p.seen = true
			if b[i] == 0x16 { // a TLS handshake record
				p.st = stPass
			}
		}
		switch p.st {
		case stPass:
			return len(b)
		case stBody, stChunkData:
			n := min(p.left, uint64(len(b)-i))
			p.left -= n
			i += int(n)
			switch {
			case p.left > 0:
			case p.st == stBody:
				p.st = stHeader
			default:
				p.st = stChunkCR
			}
		case stChunkCR:
			p.st = expect(b[i], '\r', stChunkLF)
			i++
		case stChunkLF:
			p.st, p.size = expect(b[i], '\n', stChunkSize), 0
			i++
		default: // a line-based state: stHeader, stChunkSize, stTrailer
			j := bytes.IndexByte(b[i:], '\n')
			end := len(b)
			if j >= 0 {
				end = i + j
			}
			p.line = append(p.line, b[i:end]...)
			p.size += end - i
			if p.size > MaxHeaderBytes {
				p.st = stPass
				return len(b)
			}
			if j < 0 {
				return len(b)
			}
			line := strings.TrimSuffix(string(p.line), "\r")
			p.line = p.line[:0]
			if cap(p.line) > 64<<10 {
				p.line = nil // a huge header block does not stay with the connection
			}
			if !p.line1(line) {
				return end
			}
			i = end + 1
		}
	}
	return len(b)
}

// line1 takes one complete line of a line-based state and reports false
// when it ends an ambiguous header block.
func (p *parser) line1(line string) bool {
	switch p.st {
	case stChunkSize:
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseUint(strings.TrimRight(size, " \t"), 16, 64)
		switch {
		case err != nil || len(size) == 0:
			p.st = stPass // net/http fails the body and closes
		case n == 0:
			p.st, p.size = stTrailer, 0
		default:
			p.st, p.left = stChunkData, n
		}
		return true
	case stTrailer:
		if line == "" {
			p.st = stHeader
		}
		return true
	}
	// stHeader
	switch {
	case !p.started && line == "":
		return true // empty lines before a request line
	case !p.started:
		p.started = true
		if strings.HasPrefix(line, "PRI * HTTP/2") {
			p.st = stPass
		}
		p.http10 = strings.HasSuffix(line, " HTTP/1.0")
		return true
	case line == "":
		return p.endHeader()
	case line[0] == ' ' || line[0] == '\t':
		p.folded = true
		return true
	}
	name, value, _ := strings.Cut(line, ":")
	value = strings.Trim(value, " \t")
	switch {
	case strings.EqualFold(name, "Transfer-Encoding"):
		p.te = append(p.te, value)
	case strings.EqualFold(name, "Content-Length"):
		p.cl = append(p.cl, value)
	}
	return true
}

// endHeader decides the framing of the request whose header block just
// ended, and reports false when it is ambiguous.
func (p *parser) endHeader() bool {
	te, cl, folded, http10 := p.te, p.cl, p.folded, p.http10
	*p = parser{line: p.line[:0], seen: true}
	if folded || (len(te) > 0 && len(cl) > 0) {
		return false
	}
	for _, v := range cl[min(1, len(cl)):] {
		if v != cl[0] {
			return false
		}
	}
	switch {
	case len(te) > 0 && http10:
		// net/http ignores Transfer-Encoding in HTTP/1.0: no body.
	case len(te) > 0:
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			p.st = stPass // net/http answers 501 and closes
			return true
		}
		p.st = stChunkSize
	case len(cl) > 0:
		n, err := strconv.ParseUint(cl[0], 10, 63)
		if err != nil {
			p.st = stPass // net/http answers 400 and closes
			return true
		}
		if n > 0 {
			p.st, p.left = stBody, n
		}
	}
	return true
}

// expect returns next when c is want; otherwise net/http fails the body
// and closes, and the connection is passed through.
func expect(c, want byte, next state) state {
	if c != want {
		return stPass
	}
	return next
}
