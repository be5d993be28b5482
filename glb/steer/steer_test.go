package steer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"meridian.dev/meridian/crds/v1alpha1"
)

// Clients at the PEERS.md checked cities.
var (
	amsterdam = Client{Lat: 52.37, Lon: 4.90, HasLocation: true, Key: 1}
	saoPaulo  = Client{Lat: -23.55, Lon: -46.63, HasLocation: true, Key: 2}
	tokyo     = Client{Lat: 35.68, Lon: 139.69, HasLocation: true, Key: 3}
	unknown   = Client{Key: 4}
)

// fleet is three usable targets: Virginia, Ireland and Mumbai.
func fleet() []Target {
	return []Target{
		{
			Cluster: "use1", Region: "us-east", Lat: 39.04, Lon: -77.49,
			Addrs:   []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
			Healthy: true, ReadyReplicas: 3, Headroom: 0.5, Weight: 50,
			RTT: map[string]time.Duration{"ams": 80 * time.Millisecond, "nrt": 150 * time.Millisecond},
		},
		{
			Cluster: "euw1", Region: "eu-west", Lat: 53.35, Lon: -6.26,
			Addrs:   []netip.Addr{netip.MustParseAddr("192.0.2.2")},
			Healthy: true, ReadyReplicas: 2, Headroom: 0.5, Weight: 30,
			RTT: map[string]time.Duration{"ams": 15 * time.Millisecond, "nrt": 220 * time.Millisecond},
		},
		{
			Cluster: "aps1", Region: "ap-south", Lat: 19.08, Lon: 72.88,
			Addrs:   []netip.Addr{netip.MustParseAddr("192.0.2.3")},
			Healthy: true, ReadyReplicas: 1, Headroom: 0.5, Weight: 20,
			RTT: map[string]time.Duration{"ams": 120 * time.Millisecond, "nrt": 110 * time.Millisecond},
		},
	}
}

// with returns fleet() changed by fn for the named cluster.
func with(cluster string, fn func(*Target)) []Target {
	ts := fleet()
	for i := range ts {
		if ts[i].Cluster == cluster {
			fn(&ts[i])
		}
	}
	return ts
}

func down(t *Target)      { t.Healthy = false }
func noReplica(t *Target) { t.ReadyReplicas = 0 }
func full(t *Target)      { t.Headroom = 0 }

// cold is a target scaled to zero: no ready replica, an activator that
// holds requests until one starts.
func cold(t *Target) { t.ReadyReplicas, t.Cold = 0, true }

// chain applies each fn in turn.
func chain(fns ...func(*Target)) func(*Target) {
	return func(t *Target) {
		for _, fn := range fns {
			fn(t)
		}
	}
}

// withAll returns fleet() changed by fn for every named cluster.
func withAll(fn func(*Target), names ...string) []Target {
	ts := fleet()
	for i := range ts {
		if slices.Contains(names, ts[i].Cluster) {
			fn(&ts[i])
		}
	}
	return ts
}

func TestKindsMatchAPI(t *testing.T) {
	t.Parallel()
	for kind, api := range map[Kind]v1alpha1.SteeringPolicy{
		Geo: v1alpha1.SteerGeo, Latency: v1alpha1.SteerLatency,
		Weighted: v1alpha1.SteerWeighted, Failover: v1alpha1.SteerFailover,
	} {
		if kind != Kind(api) {
			t.Errorf("Kind %q != API value %q", kind, api)
		}
	}
}

func TestChoose(t *testing.T) {
	t.Parallel()
	noSpill := Policy{Kind: Geo, SpillThreshold: -1}
	tests := []struct {
		name    string
		policy  Policy
		targets []Target
		client  Client
		site    string
		want    string // cluster; "" = no answer
	}{
		// Geo: the PEERS.md checked mappings.
		{"geo Amsterdam to Ireland", Policy{Kind: Geo}, fleet(), amsterdam, "", "euw1"},
		{"geo São Paulo to Virginia", Policy{Kind: Geo}, fleet(), saoPaulo, "", "use1"},
		{"geo Tokyo to Mumbai", Policy{Kind: Geo}, fleet(), tokyo, "", "aps1"},
		{"empty kind is geo", Policy{}, fleet(), tokyo, "", "aps1"},
		{"unknown kind is geo", Policy{Kind: "Random"}, fleet(), saoPaulo, "", "use1"},
		{"geo skips unhealthy", noSpill, with("euw1", down), amsterdam, "", "use1"},
		{"geo skips no ready replica", noSpill, with("euw1", noReplica), amsterdam, "", "use1"},
		{"geo skips no headroom", noSpill, with("euw1", full), amsterdam, "", "use1"},
		{"no targets", Policy{Kind: Geo}, nil, amsterdam, "", ""},
		{"all down", Policy{Kind: Geo}, allOf(down), amsterdam, "", ""},
		{"all without replicas", Policy{Kind: Latency}, allOf(noReplica), amsterdam, "ams", ""},
		{"all full", Policy{Kind: Weighted}, allOf(full), amsterdam, "", ""},
		{"all full failover", Policy{Kind: Failover, FailoverOrder: []string{"eu-west"}}, allOf(full), amsterdam, "", ""},

		// Geo fallbacks for clients without a location.
		{"no location follows failover order", Policy{Kind: Geo, FailoverOrder: []string{"ap-south", "us-east"}}, fleet(), unknown, "", "aps1"},
		{"no location, first region down", Policy{Kind: Geo, FailoverOrder: []string{"ap-south", "us-east"}}, with("aps1", down), unknown, "", "use1"},
		{"no location, listed regions down, any usable", Policy{Kind: Geo, FailoverOrder: []string{"ap-south"}}, with("aps1", down), unknown, "", "any"},
		{"no location, no order, any usable", Policy{Kind: Geo}, fleet(), unknown, "", "any"},
		{"no location, unknown region listed", Policy{Kind: Geo, FailoverOrder: []string{"mars"}}, fleet(), unknown, "", "any"},

		// Latency from the balancer's site.
		{"latency from ams", Policy{Kind: Latency}, fleet(), unknown, "ams", "euw1"},
		{"latency from nrt", Policy{Kind: Latency}, fleet(), amsterdam, "nrt", "aps1"},
		{"latency skips unhealthy", Policy{Kind: Latency}, with("euw1", down), unknown, "ams", "use1"},
		{"latency measured before unmeasured", Policy{Kind: Latency}, with("euw1", func(t *Target) { t.RTT = nil }), amsterdam, "ams", "use1"},
		{"latency unmeasured site falls back to geo", Policy{Kind: Latency}, fleet(), tokyo, "gru", "aps1"},
		{"latency unmeasured, no location, failover order", Policy{Kind: Latency, FailoverOrder: []string{"us-east"}}, fleet(), unknown, "gru", "use1"},
		{"latency empty site falls back to geo", Policy{Kind: Latency}, fleet(), saoPaulo, "", "use1"},

		// Weighted.
		{"weighted all to one", Policy{Kind: Weighted}, weights(100, 0, 0), amsterdam, "", "use1"},
		{"weighted zero weights are the fallback", Policy{Kind: Weighted}, withWeights(with("use1", down), 100, 0, 0), amsterdam, "", "any"},
		{"weighted all zero share", Policy{Kind: Weighted}, weights(0, 0, 0), amsterdam, "", "any"},
		{"weighted skips unusable weight", Policy{Kind: Weighted}, withWeights(with("euw1", noReplica), 0, 100, 0), tokyo, "", "any"},

		// Failover.
		{"failover first in order", Policy{Kind: Failover, FailoverOrder: []string{"eu-west", "us-east"}}, fleet(), tokyo, "", "euw1"},
		{"failover first down", Policy{Kind: Failover, FailoverOrder: []string{"eu-west", "us-east"}}, with("euw1", down), tokyo, "", "use1"},
		{"failover first full", Policy{Kind: Failover, FailoverOrder: []string{"eu-west", "us-east"}}, with("euw1", full), tokyo, "", "use1"},
		{"failover listed all down, unlisted serves", Policy{Kind: Failover, FailoverOrder: []string{"eu-west"}}, with("euw1", down), tokyo, "", "aps1"},
		{"failover no order is geo-like", Policy{Kind: Failover}, fleet(), tokyo, "", "aps1"},

		// Cold targets (scaled to zero, an activator answering): usable, but
		// only when no warm target is.
		{"geo nearest warm beats nearer cold", Policy{Kind: Geo}, with("euw1", cold), amsterdam, "", "use1"},
		{"geo far warm beats every cold", Policy{Kind: Geo}, withAll(cold, "euw1", "use1"), amsterdam, "", "aps1"},
		{"geo cold when no warm is usable", Policy{Kind: Geo}, withAll(cold, "euw1", "use1", "aps1"), amsterdam, "", "euw1"},
		{"geo cold when the warm one is down", noSpill, func() []Target {
			ts := withAll(cold, "euw1", "use1")
			ts[2].Healthy = false // aps1, the only warm one
			return ts
		}(), amsterdam, "", "euw1"},
		{"cold without an activator is unusable", Policy{Kind: Geo}, with("euw1", chain(cold, func(t *Target) { t.Cold = false })), amsterdam, "", "use1"},
		{"cold but unhealthy is unusable", Policy{Kind: Geo}, with("use1", chain(cold, down)), saoPaulo, "", "euw1"},
		{"cold but full is unusable", Policy{Kind: Geo}, allOf(chain(cold, full)), saoPaulo, "", ""},
		{"latency warm beats faster cold", Policy{Kind: Latency}, with("euw1", cold), unknown, "ams", "use1"},
		{"latency all cold by round trip", Policy{Kind: Latency}, allOf(cold), unknown, "ams", "euw1"},
		{"failover warm unlisted beats cold listed", Policy{Kind: Failover, FailoverOrder: []string{"eu-west", "us-east"}},
			withAll(cold, "euw1", "use1"), tokyo, "", "aps1"},
		{"failover all cold follows the order", Policy{Kind: Failover, FailoverOrder: []string{"us-east", "eu-west"}}, allOf(cold), tokyo, "", "use1"},
		{"weighted heavy cold loses to zero-weight warm", Policy{Kind: Weighted}, withWeights(with("use1", cold), 100, 0, 0), amsterdam, "", "any"},
		{"no location warm beats cold first in order", Policy{Kind: Geo, FailoverOrder: []string{"eu-west", "us-east"}}, with("euw1", cold), unknown, "", "use1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := Choose(tt.policy, tt.targets, tt.client, tt.site)
			switch {
			case tt.want == "":
				if ok {
					t.Fatalf("Choose = %s, want no answer", got.Cluster)
				}
				return
			case !ok:
				t.Fatalf("Choose: no answer, want %s", tt.want)
			case tt.want == "any":
				if !got.Usable() {
					t.Fatalf("Choose = %+v, not usable", got)
				}
			case got.Cluster != tt.want:
				t.Fatalf("Choose = %s, want %s", got.Cluster, tt.want)
			}
			ranked := Rank(tt.policy, tt.targets, tt.client, tt.site)
			if len(ranked) == 0 || ranked[0].Cluster != got.Cluster {
				t.Fatalf("Rank()[0] = %v, Choose = %s", clusters(ranked), got.Cluster)
			}
		})
	}
}

func allOf(fn func(*Target)) []Target {
	ts := fleet()
	for i := range ts {
		fn(&ts[i])
	}
	return ts
}

func weights(w ...int32) []Target { return withWeights(fleet(), w...) }

func withWeights(ts []Target, w ...int32) []Target {
	for i := range ts {
		ts[i].Weight = w[i]
	}
	return ts
}

func clusters(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Cluster
	}
	return out
}

func TestRank(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		policy  Policy
		targets []Target
		client  Client
		site    string
		want    []string
	}{
		{"geo Amsterdam", Policy{}, fleet(), amsterdam, "", []string{"euw1", "use1", "aps1"}},
		{"geo Tokyo", Policy{}, fleet(), tokyo, "", []string{"aps1", "euw1", "use1"}},
		{"geo leaves out unusable", Policy{}, with("use1", noReplica), saoPaulo, "", []string{"euw1", "aps1"}},
		{"latency ams", Policy{Kind: Latency}, fleet(), unknown, "ams", []string{"euw1", "use1", "aps1"}},
		{"latency partly measured", Policy{Kind: Latency}, with("euw1", func(t *Target) { delete(t.RTT, "nrt") }), amsterdam, "nrt", []string{"aps1", "use1", "euw1"}},
		{"failover", Policy{Kind: Failover, FailoverOrder: []string{"ap-south", "eu-west", "us-east"}}, fleet(), saoPaulo, "", []string{"aps1", "euw1", "use1"}},
		{"failover unlisted last", Policy{Kind: Failover, FailoverOrder: []string{"us-east"}}, fleet(), amsterdam, "", []string{"use1", "euw1", "aps1"}},
		{"no location failover order", Policy{FailoverOrder: []string{"eu-west", "ap-south", "us-east"}}, fleet(), unknown, "", []string{"euw1", "aps1", "use1"}},
		{"weighted weight before zero weight", Policy{Kind: Weighted}, weights(0, 0, 100), amsterdam, "", []string{"aps1", "*", "*"}},
		{"none usable", Policy{}, allOf(down), amsterdam, "", []string{}},

		// Every warm target, in the policy's order, then every cold one in it.
		{"geo warm then cold", Policy{}, with("euw1", cold), amsterdam, "", []string{"use1", "aps1", "euw1"}},
		{"geo cold in geo order", Policy{}, withAll(cold, "euw1", "use1"), amsterdam, "", []string{"aps1", "euw1", "use1"}},
		{"latency warm then cold", Policy{Kind: Latency}, with("euw1", cold), unknown, "ams", []string{"use1", "aps1", "euw1"}},
		{"failover tiers among warm, then cold", Policy{Kind: Failover, FailoverOrder: []string{"ap-south", "eu-west", "us-east"}},
			with("euw1", cold), saoPaulo, "", []string{"aps1", "use1", "euw1"}},
		{"failover cold in order", Policy{Kind: Failover, FailoverOrder: []string{"ap-south", "eu-west", "us-east"}},
			withAll(cold, "aps1", "euw1"), saoPaulo, "", []string{"use1", "aps1", "euw1"}},
		{"weighted heavy cold last", Policy{Kind: Weighted}, withWeights(with("use1", cold), 100, 0, 0), amsterdam, "", []string{"*", "*", "use1"}},
		{"no location warm then cold", Policy{FailoverOrder: []string{"eu-west", "ap-south", "us-east"}}, with("euw1", cold), unknown, "",
			[]string{"aps1", "use1", "euw1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := clusters(Rank(tt.policy, tt.targets, tt.client, tt.site))
			if len(got) != len(tt.want) {
				t.Fatalf("Rank = %v, want %v", got, tt.want)
			}
			for i := range got {
				if tt.want[i] != "*" && got[i] != tt.want[i] {
					t.Fatalf("Rank = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestRankDoesNotChangeInput(t *testing.T) {
	t.Parallel()
	ts := fleet()
	before := clusters(ts)
	Rank(Policy{}, ts, tokyo, "")
	if got := clusters(ts); !slices.Equal(got, before) {
		t.Fatalf("Rank reordered its input: %v, was %v", got, before)
	}
}

// share counts, over n sequential client keys, where Choose sends them.
func share(p Policy, ts []Target, c Client, n int) map[string]float64 {
	counts := map[string]float64{}
	for k := range n {
		c.Key = uint64(k)
		got, ok := Choose(p, ts, c, "")
		if !ok {
			counts[""]++
			continue
		}
		counts[got.Cluster]++
	}
	for name := range counts {
		counts[name] /= float64(n)
	}
	return counts
}

func TestWeightedSplit(t *testing.T) {
	t.Parallel()
	const n, tol = 10000, 0.03
	tests := []struct {
		name    string
		weights []int32
		targets func() []Target
		want    map[string]float64
	}{
		{"canary 90/10", []int32{90, 10, 0}, fleet, map[string]float64{"use1": 0.9, "euw1": 0.1}},
		{"50/30/20", []int32{50, 30, 20}, fleet, map[string]float64{"use1": 0.5, "euw1": 0.3, "aps1": 0.2}},
		{"99/1", []int32{99, 1, 0}, fleet, map[string]float64{"use1": 0.99, "euw1": 0.01}},
		{"equal when all zero", []int32{0, 0, 0}, fleet, map[string]float64{"use1": 1.0 / 3, "euw1": 1.0 / 3, "aps1": 1.0 / 3}},
		{"unusable target's share is re-split", []int32{50, 30, 20}, func() []Target { return with("use1", down) },
			map[string]float64{"euw1": 0.6, "aps1": 0.4}},
		{"cold target's share goes to the warm ones", []int32{50, 30, 20}, func() []Target { return with("use1", cold) },
			map[string]float64{"euw1": 0.6, "aps1": 0.4}},
		{"all cold split by weight", []int32{50, 30, 20}, func() []Target { return allOf(cold) },
			map[string]float64{"use1": 0.5, "euw1": 0.3, "aps1": 0.2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := withWeights(tt.targets(), tt.weights...)
			got := share(Policy{Kind: Weighted}, ts, amsterdam, n)
			for name, want := range tt.want {
				if math.Abs(got[name]-want) > tol {
					t.Errorf("%s got %.4f of clients, want %.2f ± %.2f (all: %v)", name, got[name], want, tol, got)
				}
			}
			for name := range got {
				if _, ok := tt.want[name]; !ok {
					t.Errorf("%s got %.4f of clients, want none", name, got[name])
				}
			}
		})
	}
}

// Weighted choice is a pure function of the key, and taking a target away
// moves only that target's clients.
func TestWeightedStable(t *testing.T) {
	t.Parallel()
	p := Policy{Kind: Weighted}
	all := weights(50, 30, 20)
	without := withWeights(with("aps1", down), 50, 30, 20)
	moved := 0
	for k := range uint64(10000) {
		c := Client{Key: k}
		a, _ := Choose(p, all, c, "")
		b, _ := Choose(p, all, c, "")
		if a.Cluster != b.Cluster {
			t.Fatalf("key %d: %s then %s", k, a.Cluster, b.Cluster)
		}
		after, _ := Choose(p, without, c, "")
		if a.Cluster != "aps1" && after.Cluster != a.Cluster {
			t.Fatalf("key %d moved from %s to %s though %s still serves", k, a.Cluster, after.Cluster, a.Cluster)
		}
		if a.Cluster == "aps1" {
			moved++
		}
	}
	if math.Abs(float64(moved)/10000-0.2) > 0.03 {
		t.Errorf("%d of 10000 clients were on aps1, want about 2000", moved)
	}
}

func TestSpill(t *testing.T) {
	t.Parallel()
	const n, tol = 10000, 0.03
	tests := []struct {
		name      string
		threshold float64
		headroom  float64 // of the best target, euw1 for Amsterdam
		want      float64 // share that spills to use1, the next best
	}{
		{"plenty of room", 0, 0.5, 0},
		{"at the default threshold", 0, 0.1, 0},
		{"a quarter below", 0, 0.075, 0.25},
		{"half way", 0, 0.05, 0.5},
		{"three quarters", 0, 0.025, 0.75},
		{"nearly full", 0, 0.001, 0.99},
		{"custom threshold", 0.4, 0.1, 0.75},
		{"threshold above 1 is 1", 2, 0.5, 0.5},
		{"spill off", -1, 0.01, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := with("euw1", func(t *Target) { t.Headroom = tt.headroom })
			got := share(Policy{Kind: Geo, SpillThreshold: tt.threshold}, ts, amsterdam, n)
			if math.Abs(got["use1"]-tt.want) > tol || math.Abs(got["euw1"]-(1-tt.want)) > tol {
				t.Errorf("spilled %v, want %.2f to use1", got, tt.want)
			}
		})
	}
}

// A client that spills at some headroom still spills as headroom shrinks,
// and Rank puts the spilled-from target second, ahead of the rest.
func TestSpillMonotonicAndRanked(t *testing.T) {
	t.Parallel()
	p := Policy{Kind: Geo}
	headrooms := []float64{0.09, 0.07, 0.05, 0.03, 0.01}
	for k := range uint64(5000) {
		c := amsterdam
		c.Key = k
		spilled := false
		for _, h := range headrooms {
			ts := with("euw1", func(t *Target) { t.Headroom = h })
			got, _ := Choose(p, ts, c, "")
			now := got.Cluster == "use1"
			if spilled && !now {
				t.Fatalf("key %d spilled at a higher headroom but not at %v", k, h)
			}
			spilled = now
			r := clusters(Rank(p, ts, c, ""))
			want := []string{"euw1", "use1", "aps1"}
			if now {
				want = []string{"use1", "euw1", "aps1"}
			}
			if !slices.Equal(r, want) {
				t.Fatalf("key %d headroom %v: Rank = %v, want %v", k, h, r, want)
			}
		}
	}
}

// Spill moves clients only from a warm best target to another warm one: a
// nearly full warm target keeps every client rather than send some to a
// cold start, and cold targets spill to nothing.
func TestSpillNeverMovesClientsToACold(t *testing.T) {
	t.Parallel()
	const n, tol = 10000, 0.03
	p := Policy{Kind: Geo}

	// euw1 (best for Amsterdam) is nearly full and the only warm target.
	ts := withAll(cold, "use1", "aps1")
	ts[1].Headroom = 0.01
	if got := share(p, ts, amsterdam, n); got["euw1"] != 1 {
		t.Errorf("with every other target cold, spill sent %v; want every client on euw1", got)
	}

	// aps1 is warm again: the spill goes there, past the nearer cold use1.
	ts[2] = fleet()[2]
	if got := share(p, ts, amsterdam, n); got["use1"] != 0 || math.Abs(got["aps1"]-0.9) > tol {
		t.Errorf("spill from nearly full euw1 with use1 cold and aps1 warm: %v; want about 90%% to aps1, none to use1", got)
	}
	for k := range uint64(1000) {
		c := amsterdam
		c.Key = k
		if r := clusters(Rank(p, ts, c, "")); r[2] != "use1" {
			t.Fatalf("key %d: Rank = %v, want cold use1 last", k, r)
		}
	}

	// Every target cold, the best nearly full: no spill, one cold start.
	ts = allOf(cold)
	ts[1].Headroom = 0.01
	if got := share(p, ts, amsterdam, n); got["euw1"] != 1 {
		t.Errorf("every target cold: spill sent %v; want every client on euw1", got)
	}
}

func TestSpillNeedsSomewhereToGo(t *testing.T) {
	t.Parallel()
	ts := []Target{{Cluster: "only", Healthy: true, ReadyReplicas: 1, Headroom: 0.001}}
	for k := range uint64(100) {
		if got, ok := Choose(Policy{}, ts, Client{Key: k}, ""); !ok || got.Cluster != "only" {
			t.Fatalf("key %d: Choose = %v, %v; want the only target", k, got.Cluster, ok)
		}
	}
}

// Property: whatever the policy, the targets and the client, Choose and
// Rank never answer an unhealthy, full, or replica-less and not cold
// target; they answer whenever one is usable; Rank holds every usable
// target once, every warm one before every cold one; Choose answers a cold
// target only when no warm one is usable; and Choose is Rank's first.
func TestNeverChoosesUnusable(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := []Kind{Geo, Latency, Weighted, Failover, "", "Other"}
	regions := []string{"us-east", "eu-west", "ap-south", "sa-east"}
	sites := []string{"", "ams", "nrt", "gru"}
	for iter := range 20000 {
		ts := make([]Target, rng.IntN(7))
		usable, warm := 0, 0
		for i := range ts {
			ts[i] = Target{
				Cluster:       fmt.Sprintf("c%d", i),
				Region:        regions[rng.IntN(len(regions))],
				Lat:           rng.Float64()*180 - 90,
				Lon:           rng.Float64()*360 - 180,
				Healthy:       rng.IntN(3) > 0,
				ReadyReplicas: int32(rng.IntN(3)),
				Cold:          rng.IntN(3) == 0,
				Headroom:      []float64{0, 0.01, 0.05, 0.09, 0.5, 1}[rng.IntN(6)],
				Weight:        int32(rng.IntN(3) * 50),
			}
			if rng.IntN(2) == 0 {
				ts[i].RTT = map[string]time.Duration{sites[1+rng.IntN(3)]: time.Duration(rng.IntN(300)) * time.Millisecond}
			}
			if ts[i].Usable() {
				usable++
				if ts[i].ReadyReplicas > 0 {
					warm++
				}
			}
		}
		p := Policy{Kind: kinds[rng.IntN(len(kinds))], SpillThreshold: []float64{-1, 0, 0.2, 1}[rng.IntN(4)]}
		for range rng.IntN(3) {
			p.FailoverOrder = append(p.FailoverOrder, regions[rng.IntN(len(regions))])
		}
		c := Client{Lat: rng.Float64()*180 - 90, Lon: rng.Float64()*360 - 180, HasLocation: rng.IntN(2) == 0, Key: rng.Uint64()}
		site := sites[rng.IntN(len(sites))]

		got, ok := Choose(p, ts, c, site)
		if ok != (usable > 0) {
			t.Fatalf("iter %d: Choose ok=%v with %d usable targets", iter, ok, usable)
		}
		if ok && !got.Usable() {
			t.Fatalf("iter %d: Choose answered unusable %+v (policy %+v)", iter, got, p)
		}
		if ok && warm > 0 && got.ReadyReplicas == 0 {
			t.Fatalf("iter %d: Choose answered cold %s with %d warm usable targets (policy %+v)", iter, got.Cluster, warm, p)
		}
		ranked := Rank(p, ts, c, site)
		if len(ranked) != usable {
			t.Fatalf("iter %d: Rank holds %d targets, %d usable", iter, len(ranked), usable)
		}
		seen := map[string]bool{}
		for i, r := range ranked {
			if !r.Usable() || seen[r.Cluster] {
				t.Fatalf("iter %d: Rank = %+v", iter, ranked)
			}
			if (i < warm) != (r.ReadyReplicas > 0) {
				t.Fatalf("iter %d: Rank = %v has a cold target before a warm one", iter, ranked)
			}
			seen[r.Cluster] = true
		}
		if ok && ranked[0].Cluster != got.Cluster {
			t.Fatalf("iter %d: Choose = %s, Rank = %v", iter, got.Cluster, clusters(ranked))
		}
	}
}

func BenchmarkChoose(b *testing.B) {
	ts := fleet()
	for _, p := range []Policy{{Kind: Geo}, {Kind: Latency}, {Kind: Weighted}, {Kind: Failover, FailoverOrder: []string{"eu-west"}}} {
		b.Run(string(p.Kind), func(b *testing.B) {
			b.ReportAllocs()
			c := amsterdam
			for i := 0; b.Loop(); i++ {
				c.Key = uint64(i)
				Choose(p, ts, c, "ams")
			}
		})
	}
}
