package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The wire format. Every message this package puts on memberlist's user
// channels (broadcasts, direct sends, push/pull state) starts with the wire
// version and a kind byte; everything after is a fixed sequence of uvarint-
// or varint-encoded integers, little-endian float64s and uvarint-length-
// prefixed strings, with every length and count bounded. Decoding checks
// each bound before allocating and rejects trailing bytes, so a malformed
// or hostile payload costs an error, never a panic or a large allocation.
//
// A node speaks exactly wireVersion and rejects other versions (counted as
// meridian_gossip_rejected_total{reason="version"}); memberlist's
// delegate protocol version, set to the same number, additionally keeps
// nodes that cannot understand each other from joining one pool. A change
// to any message's layout takes a new version.
//
// Versions:
//   - 1: the first.
//   - 2: ModelDigest.ScaledToZero, a bool after Healthy.
const wireVersion = 2

// Message kinds.
const (
	kindState    byte = 1 // one node's NodeState: broadcast or direct send
	kindSnapshot byte = 2 // every known NodeState: push/pull
	// Retired: key operations one member asked of another. Every node
	// refuses them (meridian_gossip_rejected_total{reason="forbidden"});
	// the numbers stay reserved so that nothing else ever means them.
	kindKeyOp  byte = 3
	kindKeyAck byte = 4
)

// metaVersion is the first byte of the encoded Meta.
const metaVersion = 1

// Bounds on what a node sends and accepts.
const (
	// MaxModels is the most ModelDigests one NodeState may carry.
	MaxModels = 256
	// maxString bounds every string on the wire (names, regions,
	// endpoints). Kubernetes names are at most 253 bytes.
	maxString = 512
	// maxPeers bounds the entries in a push/pull snapshot and the peer
	// table, so a confused or hostile member cannot grow it without end.
	maxPeers = 4096
	// maxMessage bounds any message this package decodes.
	maxMessage = 16 << 20
	// maxBroadcast is the largest state message that travels by gossip;
	// larger ones are sent directly over TCP. Memberlist's packets are
	// 1400 bytes, shared with its own messages and encryption overhead.
	maxBroadcast = 1024
)

// Reasons a remote payload is rejected, the values of the reason label.
const (
	rejectMalformed = "malformed" // cannot be decoded
	rejectVersion   = "version"   // a wire version this node does not speak
	rejectTooLarge  = "too_large" // over a size or count bound
	rejectInvalid   = "invalid"   // decodes, but the values are impossible
	rejectForbidden = "forbidden" // a kind no member may send (key operations)
)

var rejectReasons = []string{rejectMalformed, rejectVersion, rejectTooLarge, rejectInvalid, rejectForbidden}

// rejectError is a decoding failure with the reason it is counted under.
type rejectError struct {
	reason string
	err    error
}

func (e *rejectError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *rejectError) Unwrap() error { return e.err }

func reject(reason, format string, args ...any) error {
	return &rejectError{reason: reason, err: fmt.Errorf(format, args...)}
}

// rejectReason is the metric label for err.
func rejectReason(err error) string {
	var re *rejectError
	if errors.As(err, &re) {
		return re.reason
	}
	return rejectMalformed
}

// encoder appends to a byte slice.
type encoder struct{ b []byte }

func (e *encoder) byte(v byte)      { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) float(v float64)  { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v)) }
func (e *encoder) bytes(v []byte)   { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) string(v string)  { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) header(kind byte) { e.byte(wireVersion); e.byte(kind) }
func (e *encoder) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}
func (e *encoder) time(v time.Time) { e.varint(unixNano(v)) }
func (e *encoder) int32(v int32)    { e.varint(int64(v)) }
func (e *encoder) stateBody(s NodeState) {
	e.string(s.Cluster)
	e.string(s.Region)
	e.string(s.Endpoint)
	e.time(s.Updated)
	e.uvarint(uint64(len(s.Models)))
	for _, m := range s.Models {
		e.string(m.Namespace)
		e.string(m.Name)
		e.string(m.Model)
		e.int32(m.ReadyReplicas)
		e.int32(m.DesiredReplicas)
		e.float(m.RequestsPerSecond)
		e.float(m.P95Seconds)
		e.int32(m.QueueLength)
		e.bool(m.Healthy)
		e.bool(m.ScaledToZero)
	}
}

// unixNano encodes the zero time as 0 (time.Time{}.UnixNano is undefined).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// decoder reads what encoder wrote. The first failure sticks; later reads
// return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(reason, format string, args ...any) {
	if d.err == nil {
		d.err = reject(reason, format, args...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail(rejectMalformed, "truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(rejectMalformed, "bad unsigned varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(rejectMalformed, "bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail(rejectMalformed, "truncated float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) raw(max int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.fail(rejectTooLarge, "field of %d bytes, the most is %d", n, max)
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(rejectMalformed, "field of %d bytes with %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.raw(maxString)) }

func (d *decoder) bool() bool {
	switch v := d.byte(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(rejectMalformed, "bool byte %d", v)
		return false
	}
}

func (d *decoder) int32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail(rejectInvalid, "%d overflows int32", v)
		return 0
	}
	return int32(v)
}

func (d *decoder) time() time.Time {
	v := d.varint()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}

// count reads a uvarint count bounded by max and by the bytes left, each
// element taking at least minSize bytes.
func (d *decoder) count(max, minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(max) {
		d.fail(rejectTooLarge, "%d entries, the most is %d", n, max)
		return 0
	}
	if n*uint64(minSize) > uint64(len(d.b)) {
		d.fail(rejectMalformed, "%d entries cannot fit in %d bytes", n, len(d.b))
		return 0
	}
	return int(n)
}

// minDigestBytes is the smallest encoded ModelDigest: three empty strings,
// three one-byte varints, two floats and two bools.
const minDigestBytes = 3 + 3 + 16 + 2

func (d *decoder) stateBody() NodeState {
	var s NodeState
	s.Cluster = d.string()
	s.Region = d.string()
	s.Endpoint = d.string()
	s.Updated = d.time()
	n := d.count(MaxModels, minDigestBytes)
	if n > 0 {
		s.Models = make([]ModelDigest, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		m := &s.Models[i]
		m.Namespace = d.string()
		m.Name = d.string()
		m.Model = d.string()
		m.ReadyReplicas = d.int32()
		m.DesiredReplicas = d.int32()
		m.RequestsPerSecond = d.float()
		m.P95Seconds = d.float()
		m.QueueLength = d.int32()
		m.Healthy = d.bool()
		m.ScaledToZero = d.bool()
	}
	if d.err == nil {
		if err := s.validate(); err != nil {
			d.err = &rejectError{reason: rejectInvalid, err: err}
		}
	}
	return s
}

// finish reports the first error, or trailing bytes.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(rejectMalformed, "%d trailing bytes", len(d.b))
	}
	return d.err
}

// openMessage checks a message's size and version and returns its kind and
// a decoder over its body.
func openMessage(b []byte) (byte, *decoder, error) {
	if len(b) > maxMessage {
		return 0, nil, reject(rejectTooLarge, "message of %d bytes, the most is %d", len(b), maxMessage)
	}
	if len(b) < 2 {
		return 0, nil, reject(rejectMalformed, "message of %d bytes has no header", len(b))
	}
	if b[0] != wireVersion {
		return 0, nil, reject(rejectVersion, "wire version %d, this node speaks %d", b[0], wireVersion)
	}
	return b[1], &decoder{b: b[2:]}, nil
}

// stateEntry is one node's NodeState with the version that orders it.
type stateEntry struct {
	origin  string
	version uint64
	state   NodeState
}

func encodeState(e stateEntry) []byte {
	enc := encoder{b: make([]byte, 0, 128+64*len(e.state.Models))}
	enc.header(kindState)
	enc.stateEntry(e)
	return enc.b
}

func (e *encoder) stateEntry(s stateEntry) {
	e.string(s.origin)
	e.uvarint(s.version)
	e.stateBody(s.state)
}

func (d *decoder) stateEntry() stateEntry {
	var s stateEntry
	s.origin = d.string()
	s.version = d.uvarint()
	s.state = d.stateBody()
	if d.err == nil && s.origin == "" {
		d.fail(rejectInvalid, "state without an origin node")
	}
	return s
}

func encodeSnapshot(entries []stateEntry) []byte {
	enc := encoder{b: make([]byte, 0, 256*len(entries)+8)}
	enc.header(kindSnapshot)
	enc.uvarint(uint64(len(entries)))
	for _, s := range entries {
		enc.stateEntry(s)
	}
	return enc.b
}

// minEntryBytes is the smallest encoded stateEntry.
const minEntryBytes = 1 + 1 + 3 + 1 + 1

func (d *decoder) snapshot() []stateEntry {
	n := d.count(maxPeers, minEntryBytes)
	if n == 0 {
		return nil
	}
	out := make([]stateEntry, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.stateEntry())
	}
	return out
}

// decodeSnapshot decodes a push/pull payload.
func decodeSnapshot(b []byte) ([]stateEntry, error) {
	kind, d, err := openMessage(b)
	if err != nil {
		return nil, err
	}
	if kind != kindSnapshot {
		return nil, reject(rejectMalformed, "push/pull payload of kind %d", kind)
	}
	s := d.snapshot()
	return s, d.finish()
}

// nodeMeta is what travels in memberlist's node metadata: the Meta and
// whether the node is leaving on purpose.
type nodeMeta struct {
	Meta
	leaving bool
}

// encodeMeta writes m compactly: a version byte, three length-prefixed
// strings and a flags byte (bit 0: leaving).
func encodeMeta(m nodeMeta) []byte {
	var enc encoder
	enc.byte(metaVersion)
	enc.string(m.Cluster)
	enc.string(m.Region)
	enc.string(m.Endpoint)
	enc.bool(m.leaving)
	return enc.b
}

func decodeMeta(b []byte) (nodeMeta, error) {
	if len(b) == 0 {
		return nodeMeta{}, nil // a member without metadata (not a Meridian node)
	}
	if len(b) > MaxMetaBytes {
		return nodeMeta{}, reject(rejectTooLarge, "meta of %d bytes", len(b))
	}
	if b[0] != metaVersion {
		return nodeMeta{}, reject(rejectVersion, "meta version %d, this node speaks %d", b[0], metaVersion)
	}
	d := decoder{b: b[1:]}
	var m nodeMeta
	m.Cluster, m.Region, m.Endpoint = d.string(), d.string(), d.string()
	m.leaving = d.bool()
	return m, d.finish()
}
