package gossip

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []NodeState{
		{},
		{Cluster: "eu-1", Region: "eu-west-1", Endpoint: "https://eu-1.example.com", Updated: time.Unix(0, 1_700_000_000_123_456_789)},
		{Cluster: "us", Models: digests("us", MaxModels), Updated: time.Unix(1, 0)},
		{Models: []ModelDigest{{Namespace: strings.Repeat("n", maxString), ReadyReplicas: math.MaxInt32, RequestsPerSecond: math.MaxFloat64, Healthy: true}}},
		// A model at zero whose activator answers for it, between two warm ones.
		{Cluster: "eu", Models: []ModelDigest{
			{Namespace: "default", Name: "a", Model: "a", ReadyReplicas: 2, DesiredReplicas: 2, Healthy: true},
			{Namespace: "default", Name: "sentiment", Model: "sentiment", Healthy: true, ScaledToZero: true},
			{Namespace: "default", Name: "z", Model: "z", ReadyReplicas: 1, DesiredReplicas: 1, Healthy: true},
		}},
	} {
		in := stateEntry{origin: "node", version: math.MaxUint64, state: s}
		kind, d, err := openMessage(encodeState(in))
		if err != nil || kind != kindState {
			t.Fatalf("open: kind %d, %v", kind, err)
		}
		out := d.stateEntry()
		if err := d.finish(); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(out, in) {
			t.Errorf("round trip changed the state:\n got %+v\nwant %+v", out, in)
		}
	}

	snap := []stateEntry{
		{origin: "a", version: 1, state: NodeState{Cluster: "a", Models: digests("a", 3)}},
		{origin: "b", version: 7},
	}
	got, err := decodeSnapshot(encodeSnapshot(snap))
	if err != nil || !reflect.DeepEqual(got, snap) {
		t.Errorf("snapshot round trip = %+v, %v", got, err)
	}
	if got, err := decodeSnapshot(encodeSnapshot(nil)); err != nil || len(got) != 0 {
		t.Errorf("empty snapshot = %+v, %v", got, err)
	}

	m := nodeMeta{Meta: Meta{Cluster: "eu-1", Region: "eu-west-1", Endpoint: "10.0.0.1:8080"}, leaving: true}
	if got, err := decodeMeta(encodeMeta(m)); err != nil || got != m {
		t.Errorf("meta round trip = %+v, %v", got, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	state := func(s NodeState) []byte { return encodeState(stateEntry{origin: "x", version: 1, state: s}) }
	tooMany := state(NodeState{Models: digests("x", MaxModels)})
	// Bump the model count from MaxModels (256, uvarint 0x80 0x02) to 257.
	countAt := strings.Index(string(tooMany), "\x80\x02")
	tooMany[countAt] = 0x81

	for _, tc := range []struct {
		name   string
		b      []byte
		reason string
	}{
		{"nil", nil, rejectMalformed},
		{"header only", []byte{wireVersion}, rejectMalformed},
		{"future version", []byte{wireVersion + 1, kindState}, rejectVersion},
		{"version 1 (no ScaledToZero)", append([]byte{1}, state(NodeState{Models: []ModelDigest{{Healthy: true}}})[1:]...), rejectVersion},
		{"version zero", []byte{0, kindState}, rejectVersion},
		{"truncated", state(NodeState{Cluster: "abc"})[:6], rejectMalformed},
		{"trailing", append(state(NodeState{}), 1), rejectMalformed},
		{"no origin", encodeState(stateEntry{}), rejectInvalid},
		{"long string", append([]byte{wireVersion, kindState}, 0x81, 0x04), rejectTooLarge}, // 513 bytes
		{"string past end", append([]byte{wireVersion, kindState}, 0x10, 'a'), rejectMalformed},
		{"bad varint", []byte{wireVersion, kindState, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80}, rejectMalformed},
		{"too many models", tooMany, rejectTooLarge},
		{"negative replicas", state(NodeState{Models: []ModelDigest{{ReadyReplicas: -1}}}), rejectInvalid},
		{"infinite latency", state(NodeState{Models: []ModelDigest{{P95Seconds: math.Inf(1)}}}), rejectInvalid},
		{"negative rate", state(NodeState{Models: []ModelDigest{{RequestsPerSecond: -3}}}), rejectInvalid},
		{"count beyond bytes", []byte{wireVersion, kindState, 1, 'x', 1, 0, 0, 0, 0, 50}, rejectMalformed},
		{"too large", make([]byte, maxMessage+1), rejectTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeStateMessage(tc.b)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := rejectReason(err); got != tc.reason {
				t.Errorf("reason = %s (%v), want %s", got, err, tc.reason)
			}
		})
	}

	// Booleans other than 0 and 1 are malformed: Healthy, then ScaledToZero.
	for _, at := range []int{2, 1} {
		b := state(NodeState{Models: []ModelDigest{{Healthy: true, ScaledToZero: true}}})
		b[len(b)-at] = 2
		if _, err := decodeStateMessage(b); rejectReason(err) != rejectMalformed {
			t.Errorf("bool 2, %d bytes from the end: %v", at, err)
		}
	}
	// A snapshot is not accepted where a state is expected, nor the reverse.
	if _, err := decodeSnapshot(state(NodeState{})); err == nil {
		t.Error("decodeSnapshot accepted a state message")
	}
	if _, err := decodeSnapshot([]byte{wireVersion, kindSnapshot, 0xff, 0xff, 0x03}); rejectReason(err) != rejectTooLarge {
		t.Errorf("snapshot of 65535 entries: %v", err)
	}
	for _, meta := range [][]byte{{metaVersion + 1}, {metaVersion, 5, 'a'}, append(encodeMeta(nodeMeta{}), 0)} {
		if _, err := decodeMeta(meta); err == nil {
			t.Errorf("decodeMeta(%q) accepted", meta)
		}
	}
}

// decodeStateMessage decodes a state message as NotifyMsg does.
func decodeStateMessage(b []byte) (stateEntry, error) {
	kind, d, err := openMessage(b)
	if err != nil {
		return stateEntry{}, err
	}
	if kind != kindState {
		return stateEntry{}, reject(rejectMalformed, "kind %d", kind)
	}
	e := d.stateEntry()
	return e, d.finish()
}
