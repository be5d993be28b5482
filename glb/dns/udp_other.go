//go:build !linux

package dns

import (
	"net"
	"sync/atomic"
)

// serveUDP is one read loop on one socket: a datagram per system call.
func (s *Server) serveUDP(conn *net.UDPConn, sent *atomic.Uint64) { s.serveUDPPlain(conn, sent) }
