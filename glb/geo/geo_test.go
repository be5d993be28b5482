package geo

import (
	"math"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"meridian.dev/meridian/internal/testbin"
)

// openReal opens the pinned DB-IP databases; when they are missing it
// fails saying to run `make deps` (skips only under go test -short).
func openReal(t *testing.T) *DB {
	t.Helper()
	db, err := Open(testbin.GeoDatabases(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// The sites of the PEERS.md checked mappings.
type site struct {
	name     string
	lat, lon float64
}

var (
	virginia = site{"virginia", 39.04, -77.49}
	ireland  = site{"ireland", 53.35, -6.26}
	mumbai   = site{"mumbai", 19.08, 72.88}
	sites    = []site{virginia, ireland, mumbai}
)

func nearest(lat, lon float64) site {
	best, bestKm := site{}, math.Inf(1)
	for _, s := range sites {
		if d := Haversine(lat, lon, s.lat, s.lon); d < bestKm {
			best, bestKm = s, d
		}
	}
	return best
}

// Real public addresses, each checked against this pinned database: the
// record must be in the named country, within 60 km of the named city, and
// nearest to the expected site.
func TestLocateCheckedMappings(t *testing.T) {
	t.Parallel()
	db := openReal(t)
	type city struct{ lat, lon float64 }
	var (
		amsterdam = city{52.37, 4.90}
		london    = city{51.51, -0.13}
		berlin    = city{52.52, 13.40}
		ashburn   = city{39.04, -77.49}
		saoPaulo  = city{-23.55, -46.63}
		bombay    = city{19.08, 72.88}
		tokyo     = city{35.68, 139.69}
	)
	tests := []struct {
		name    string
		addr    string
		country string
		city    city
		site    site
		prefix  int // expected record prefix length, 0 = not checked
	}{
		{"Amsterdam RIPE NCC", "193.0.0.1", "NL", amsterdam, ireland, 21},
		{"Amsterdam RIPE NCC v6", "2001:67c:2e8::1", "NL", amsterdam, ireland, 48},
		{"Amsterdam IPv4-mapped", "::ffff:193.0.0.1", "NL", amsterdam, ireland, 21},
		{"London BBC", "212.58.244.22", "GB", london, ireland, 24},
		{"London v6", "2001:420:8c::1", "GB", london, ireland, 0},
		{"Berlin Humboldt University", "141.20.1.1", "DE", berlin, ireland, 0},
		{"Berlin TU", "130.149.7.201", "DE", berlin, ireland, 0},
		{"Berlin v6", "2001:470:6d::1", "DE", berlin, ireland, 0},
		{"Ashburn AWS us-east-1", "3.80.0.1", "US", ashburn, virginia, 16},
		{"Ashburn v6", "2001:418:1403::1", "US", ashburn, virginia, 0},
		{"São Paulo AWS sa-east-1", "18.228.0.1", "BR", saoPaulo, virginia, 0},
		{"São Paulo NIC.br", "200.160.2.3", "BR", saoPaulo, virginia, 0},
		{"São Paulo NIC.br v6", "2001:12ff::1", "BR", saoPaulo, virginia, 0},
		{"Mumbai AWS ap-south-1", "13.126.0.1", "IN", bombay, mumbai, 0},
		{"Mumbai v6", "2001:420:8f::1", "IN", bombay, mumbai, 0},
		{"Tokyo AWS ap-northeast-1", "13.112.0.1", "JP", tokyo, mumbai, 0},
		{"Tokyo Chiyoda", "210.173.160.27", "JP", tokyo, mumbai, 0},
		{"Tokyo v6", "2001:268:721e::1", "JP", tokyo, mumbai, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			loc, prefix, ok := db.Locate(netip.MustParseAddr(tt.addr))
			if !ok {
				t.Fatalf("Locate(%s): not found", tt.addr)
			}
			if loc.Country != tt.country {
				t.Errorf("Locate(%s).Country = %q, want %q (%+v)", tt.addr, loc.Country, tt.country, loc)
			}
			if d := Haversine(loc.Lat, loc.Lon, tt.city.lat, tt.city.lon); d > 60 {
				t.Errorf("Locate(%s) = %+v, %.0f km from the expected city", tt.addr, loc, d)
			}
			if got := nearest(loc.Lat, loc.Lon); got != tt.site {
				t.Errorf("nearest site of %s (%+v) = %s, want %s", tt.addr, loc, got.name, tt.site.name)
			}
			if tt.prefix != 0 && prefix != tt.prefix {
				t.Errorf("Locate(%s) prefix = /%d, want /%d", tt.addr, prefix, tt.prefix)
			}
			maxBits := 32
			if netip.MustParseAddr(tt.addr).Unmap().Is6() {
				maxBits = 128
			}
			if prefix <= 0 || prefix > maxBits {
				t.Errorf("Locate(%s) prefix = /%d, out of range", tt.addr, prefix)
			}
		})
	}
}

func TestLocateRecordCity(t *testing.T) {
	t.Parallel()
	db := openReal(t)
	loc, _, ok := db.Locate(netip.MustParseAddr("3.80.0.1"))
	if !ok || loc.City != "Ashburn" {
		t.Fatalf("Locate(3.80.0.1) = %+v, %v; want Ashburn", loc, ok)
	}
	loc, _, ok = db.Locate(netip.MustParseAddr("193.0.0.1"))
	if !ok || !strings.HasPrefix(loc.City, "Amsterdam") {
		t.Fatalf("Locate(193.0.0.1) = %+v, %v; want Amsterdam", loc, ok)
	}
}

func TestLocateNotFound(t *testing.T) {
	t.Parallel()
	db := openReal(t)
	tests := []struct {
		addr   netip.Addr
		prefix int // expected prefix of the empty network, -1 = not checked
	}{
		{netip.MustParseAddr("10.1.2.3"), 8},
		{netip.MustParseAddr("127.0.0.1"), -1},
		{netip.MustParseAddr("192.168.1.1"), -1},
		{netip.MustParseAddr("::ffff:10.1.2.3"), 8},
		{netip.MustParseAddr("::1"), -1},
		{netip.MustParseAddr("fe80::1%eth0"), -1},
		{netip.MustParseAddr("fd00::1"), -1},
		{netip.Addr{}, 0},
	}
	for _, tt := range tests {
		loc, prefix, ok := db.Locate(tt.addr)
		if ok {
			t.Errorf("Locate(%v) = %+v, want not found", tt.addr, loc)
		}
		if tt.prefix >= 0 && prefix != tt.prefix {
			t.Errorf("Locate(%v) prefix = /%d, want /%d", tt.addr, prefix, tt.prefix)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	if _, err := Open("", ""); err == nil {
		t.Error("Open with no paths: want an error")
	}
	missing := filepath.Join(t.TempDir(), "missing.mmdb")
	if _, err := Open(missing, ""); err == nil || !strings.Contains(err.Error(), "missing.mmdb") {
		t.Errorf("Open(missing) error = %v, want one naming the file", err)
	}
	var db *DB
	if _, _, ok := db.Locate(netip.MustParseAddr("193.0.0.1")); ok {
		t.Error("nil DB located an address")
	}
	if err := db.Close(); err != nil {
		t.Errorf("nil DB Close = %v", err)
	}
}

func TestOneFamilyOnly(t *testing.T) {
	t.Parallel()
	v4, _ := testbin.GeoDatabases(t)
	db, err := Open(v4, "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if _, _, ok := db.Locate(netip.MustParseAddr("193.0.0.1")); !ok {
		t.Error("IPv4-only DB did not locate 193.0.0.1")
	}
	if _, _, ok := db.Locate(netip.MustParseAddr("2001:67c:2e8::1")); ok {
		t.Error("IPv4-only DB located an IPv6 address")
	}
}

func TestHaversine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		lat1, lon1, lat2, lon2 float64
		want, tol              float64
	}{
		{"same point", 52.37, 4.90, 52.37, 4.90, 0, 1e-9},
		{"London-Paris", 51.5074, -0.1278, 48.8566, 2.3522, 344, 2},
		{"New York-London", 40.7128, -74.0060, 51.5074, -0.1278, 5570, 10},
		{"Ashburn-Dublin", 39.04, -77.49, 53.35, -6.26, 5480, 30},
		{"antipodes", 0, 0, 0, 180, math.Pi * EarthRadiusKm, 1e-6},
		{"pole to pole", 90, 0, -90, 0, math.Pi * EarthRadiusKm, 1e-6},
		{"across the date line", 0, 179.5, 0, -179.5, 111.2, 0.5},
	}
	for _, tt := range tests {
		got := Haversine(tt.lat1, tt.lon1, tt.lat2, tt.lon2)
		if math.Abs(got-tt.want) > tt.tol {
			t.Errorf("%s: Haversine = %.3f km, want %.3f ± %.3f", tt.name, got, tt.want, tt.tol)
		}
		if back := Haversine(tt.lat2, tt.lon2, tt.lat1, tt.lon1); math.Abs(back-got) > 1e-9 {
			t.Errorf("%s: not symmetric: %v vs %v", tt.name, got, back)
		}
	}
}

func BenchmarkLocate(b *testing.B) {
	db, err := Open(testbin.GeoDatabases(b))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	addrs := []netip.Addr{
		netip.MustParseAddr("193.0.0.1"),
		netip.MustParseAddr("3.80.0.1"),
		netip.MustParseAddr("2001:67c:2e8::1"),
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		db.Locate(addrs[i%len(addrs)])
	}
}
