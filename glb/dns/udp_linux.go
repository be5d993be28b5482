//go:build linux

package dns

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpBatch is how many datagrams one recvmmsg reads and one sendmmsg
// writes at most.
const udpBatch = 8

// mmsghdr is struct mmsghdr (recvmmsg(2)): a message and the length
// received.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// batchLoop is one read loop's buffers for recvmmsg and sendmmsg, made
// once: a slot per datagram with its query, source address and answer.
type batchLoop struct {
	in    [udpBatch]mmsghdr
	out   [udpBatch]mmsghdr
	inIov [udpBatch]unix.Iovec
	ouIov [udpBatch]unix.Iovec
	names [udpBatch]unix.RawSockaddrInet6 // large enough for either family
	bufs  [udpBatch][]byte
	resp  [udpBatch][]byte

	received int   // datagrams the last recvmmsg read
	queued   int   // answers waiting in out
	sentOff  int   // answers of out already sent
	errno    error // of the last call
}

// serveUDP is one read loop on one socket. On Linux it reads and writes
// up to udpBatch datagrams per system call (recvmmsg, sendmmsg); its
// buffers are its own, so a steady stream of steered queries allocates
// nothing.
func (s *Server) serveUDP(conn *net.UDPConn, sent *atomic.Uint64) {
	rc, err := conn.SyscallConn()
	if err != nil {
		s.serveUDPPlain(conn, sent)
		return
	}
	l := &batchLoop{}
	for i := range udpBatch {
		l.bufs[i] = make([]byte, 65535)
		l.resp[i] = make([]byte, s.cfg.MaxUDPSize)
		l.inIov[i].Base = &l.bufs[i][0]
		l.inIov[i].SetLen(len(l.bufs[i]))
		l.in[i].hdr.Iov = &l.inIov[i]
		l.in[i].hdr.SetIovlen(1)
		l.in[i].hdr.Name = (*byte)(unsafe.Pointer(&l.names[i]))
		l.out[i].hdr.Iov = &l.ouIov[i]
		l.out[i].hdr.SetIovlen(1)
	}
	recv := func(fd uintptr) bool {
		for i := range udpBatch {
			l.in[i].hdr.Namelen = uint32(unsafe.Sizeof(l.names[i]))
			l.in[i].hdr.Flags = 0
		}
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&l.in[0])), udpBatch, 0, 0, 0)
		if e == unix.EAGAIN {
			return false // wait until readable
		}
		l.received, l.errno = int(n), nil
		if e != 0 {
			l.received, l.errno = 0, e
		}
		return true
	}
	send := func(fd uintptr) bool {
		for l.sentOff < l.queued {
			n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&l.out[l.sentOff])), uintptr(l.queued-l.sentOff), 0, 0, 0)
			switch {
			case e == unix.EAGAIN:
				return false // wait until writable
			case e != 0:
				l.sentOff++ // this one cannot be sent (e.g. no route): skip it
			default:
				sent.Add(uint64(n))
				l.sentOff += int(n)
			}
		}
		return true
	}
	for {
		if err := rc.Read(recv); err != nil {
			if s.isClosing() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if l.errno != nil {
			if s.isClosing() {
				return
			}
			continue // transient (e.g. ICMP-induced) errors
		}
		l.queued, l.sentOff = 0, 0
		for i := range l.received {
			m := &l.in[i]
			from, ok := sockaddrAddr(&l.names[i], m.hdr.Namelen)
			if !ok || m.hdr.Flags&unix.MSG_TRUNC != 0 {
				continue
			}
			out := s.handleInto(l.bufs[i][:m.len], protoUDP, from, l.resp[i])
			if out == nil {
				continue
			}
			o := &l.out[l.queued]
			l.ouIov[l.queued].Base = unsafe.SliceData(out)
			l.ouIov[l.queued].SetLen(len(out))
			o.hdr.Name, o.hdr.Namelen = m.hdr.Name, m.hdr.Namelen
			l.queued++
		}
		if l.queued > 0 {
			if err := rc.Write(send); err != nil && s.isClosing() {
				return
			}
		}
	}
}

// sockaddrAddr is the address of a sockaddr_in or sockaddr_in6.
func sockaddrAddr(sa *unix.RawSockaddrInet6, n uint32) (netip.Addr, bool) {
	switch sa.Family {
	case syscall.AF_INET:
		if n < uint32(unsafe.Sizeof(unix.RawSockaddrInet4{})) {
			return netip.Addr{}, false
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrFrom4(sa4.Addr), true
	case syscall.AF_INET6:
		if n < uint32(unsafe.Sizeof(*sa)) {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16(sa.Addr).Unmap(), true
	}
	return netip.Addr{}, false
}
