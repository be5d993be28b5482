package gossip

import (
	"bytes"
	"compress/lzw"
	"io"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
)

// tap forwards TCP and UDP from one address to another on loopback and
// keeps a copy of every byte, as a passive observer of the network would.
type tap struct {
	mu      sync.Mutex
	toTCP   bytes.Buffer // client to target, every stream
	fromTCP bytes.Buffer // target to client
	udp     bytes.Buffer
	packets int
	streams int
}

func (tp *tap) record(buf *bytes.Buffer, b []byte) {
	tp.mu.Lock()
	buf.Write(b)
	tp.mu.Unlock()
}

// captured returns copies of what the tap has seen.
func (tp *tap) captured() (to, from, udp []byte, streams, packets int) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return bytes.Clone(tp.toTCP.Bytes()), bytes.Clone(tp.fromTCP.Bytes()), bytes.Clone(tp.udp.Bytes()), tp.streams, tp.packets
}

// recorder copies what it writes into a tap buffer.
type tapWriter struct {
	tp  *tap
	buf *bytes.Buffer
	w   io.Writer
}

func (w tapWriter) Write(b []byte) (int, error) {
	w.tp.record(w.buf, b)
	return w.w.Write(b)
}

// startTap listens on listen (TCP and UDP) and forwards to target until the
// test ends. UDP is forwarded one way: memberlist answers a probe at the
// prober's advertised address, not at the packet's source.
func startTap(t *testing.T, listen, target string) *tap {
	t.Helper()
	tp := &tap{}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", listen)
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.Dial("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		_ = pc.Close()
		_ = out.Close()
		wg.Wait()
	})
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			tp.mu.Lock()
			tp.udp.Write(buf[:n])
			tp.packets++
			tp.mu.Unlock()
			_, _ = out.Write(buf[:n])
		}
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tp.mu.Lock()
			tp.streams++
			tp.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { _ = c.Close() }()
				s, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer func() { _ = s.Close() }()
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(tapWriter{tp, &tp.fromTCP, c}, s)
					_ = c.Close()
					close(done)
				}()
				_, _ = io.Copy(tapWriter{tp, &tp.toTCP, s}, c)
				_ = s.Close()
				<-done
			}()
		}
	}()
	return tp
}

// TestEncryptionOnTheWire puts a tap in front of node A — A advertises the
// tap's address, so every member reaches it through the tap — and has B
// join through it (a TCP push/pull), gossip its state to A (UDP) and probe
// A. With a keyring, none of the node names, regions, endpoints or model
// names can be read from the captured UDP or TCP bytes, in either
// direction, even after inflating whatever looks compressed; without one
// (the control, which shows the tap would see them) they can.
func TestEncryptionOnTheWire(t *testing.T) {
	t.Parallel()
	for _, encrypted := range []bool{true, false} {
		name := map[bool]string{true: "keyring", false: "plaintext"}[encrypted]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var keys string
			if encrypted {
				keys = writeKeyring(t, keyringPath(t, name), newKey(t))
			}
			timing := Local()
			a := mustStart(t, Config{NodeName: name + "-node-a", AdvertiseAddr: "127.0.0.2", Timing: timing, KeyringFile: keys})
			if err := a.SetLocalState(NodeState{Models: digests("a", 3)}); err != nil {
				t.Fatal(err)
			}
			_, port, _ := net.SplitHostPort(a.Addr())
			tp := startTap(t, a.Addr(), net.JoinHostPort("127.0.0.1", port))

			b := mustStart(t, Config{NodeName: name + "-node-b", Timing: timing, KeyringFile: keys, Join: []string{a.Addr()}})
			// The join's push/pull went through the tap and carried A's state.
			if p, _ := b.Peer(a.Name()); !reflect.DeepEqual(p.State, a.LocalState()) {
				t.Fatalf("B did not get A's state in the join: %+v", p)
			}
			if err := b.SetLocalState(NodeState{Models: digests("b", 2)}); err != nil {
				t.Fatal(err)
			}
			testbin.Eventually(t, "A gets B's state through the tap and B probes A", timing.PushPullInterval+5*time.Second, func() bool {
				p, _ := a.Peer(b.Name())
				_, _, _, streams, packets := tp.captured()
				return reflect.DeepEqual(p.State, b.LocalState()) && streams > 0 && packets > 0
			})

			to, from, udp, _, _ := tp.captured()
			to, from, udp = reveal(to), reveal(from), reveal(udp)
			secrets := map[string][]string{
				"B to A over TCP (join push/pull)": {b.Name(), "region-" + b.Name()},
				"A to B over TCP (join push/pull)": {a.Name(), "region-" + a.Name(), a.Name() + ".example.com", "team-a"},
				"B to A over UDP (probes, gossip)": {a.Name(), "team-b"},
			}
			wire := map[string][]byte{
				"B to A over TCP (join push/pull)": to,
				"A to B over TCP (join push/pull)": from,
				"B to A over UDP (probes, gossip)": udp,
			}
			for path, words := range secrets {
				if len(wire[path]) == 0 {
					t.Errorf("%s: nothing captured", path)
				}
				for _, w := range words {
					seen := bytes.Contains(wire[path], []byte(w))
					if encrypted && seen {
						t.Errorf("%s: %q travels in plaintext", path, w)
					}
					if !encrypted && !seen {
						t.Errorf("control: %s: %q not seen in plaintext gossip; the tap misses it", path, w)
					}
				}
			}
		})
	}
}

// reveal returns what a passive observer recovers from captured bytes:
// the bytes themselves, followed by every memberlist-compressed payload in
// them decompressed. Memberlist LZW-compresses packets and push/pulls
// before encrypting them, as a msgpack map {Algo, Buf}; without a key,
// the Buf fields are there to find and inflate.
func reveal(b []byte) []byte {
	out := bytes.Clone(b)
	marker := []byte("\xa3Buf")
	for rest := b; ; {
		i := bytes.Index(rest, marker)
		if i < 0 {
			return out
		}
		rest = rest[i+len(marker):]
		n, hdr := msgpackBytesLen(rest)
		if hdr == 0 || hdr+n > len(rest) {
			continue
		}
		r := lzw.NewReader(bytes.NewReader(rest[hdr:hdr+n]), lzw.LSB, 8)
		plain, _ := io.ReadAll(io.LimitReader(r, 1<<20)) // what inflates before any error
		_ = r.Close()
		out = append(out, plain...)
	}
}

// msgpackBytesLen decodes the header of a msgpack bin or str (raw): the
// length that follows and the header's own size, 0 if b holds neither.
func msgpackBytesLen(b []byte) (n, hdr int) {
	if len(b) == 0 {
		return 0, 0
	}
	size := func(k int) (int, int) {
		if len(b) < 1+k {
			return 0, 0
		}
		v := 0
		for _, c := range b[1 : 1+k] {
			v = v<<8 | int(c)
		}
		return v, 1 + k
	}
	switch c := b[0]; {
	case c >= 0xa0 && c <= 0xbf:
		return int(c & 0x1f), 1
	case c == 0xc4 || c == 0xd9:
		return size(1)
	case c == 0xc5 || c == 0xda:
		return size(2)
	case c == 0xc6 || c == 0xdb:
		return size(4)
	}
	return 0, 0
}
