// Command geoconv writes a small geo database in MaxMind's GeoIP2-City
// layout (country/iso_code, continent/code, city/names/en,
// location/latitude|longitude|accuracy_radius) for the peers of the P2
// benchmark: PowerDNS's geoip backend and CoreDNS's geoip plugin read only
// that layout, not the flat db-ip schema Meridian reads (see
// docs/benchmarks.md, P2). bench/dns runs it with the networks its query
// set uses, each already located in the db-ip database, so the peers see
// the same locations as Meridian without converting the whole database
// (which would take gigabytes of memory).
//
// It is its own module so that github.com/maxmind/mmdbwriter, needed only
// here, stays out of Meridian's go.mod.
//
// Input, one network a line, tab-separated:
//
//	cidr  latitude  longitude  country-iso-code  continent-code  city
//
// The database is one IPv6 tree with IPv4 aliasing (an IPv4 network also
// answers as ::ffff:a.b.c.d, which is how CoreDNS looks ECS addresses up)
// and admits reserved networks, so loopback cluster addresses can be
// located too (PowerDNS's pickclosest locates its candidates).
//
//	go run . -in networks.tsv -out bench.mmdb
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

func main() {
	in := flag.String("in", "", "networks, one per line: cidr lat lon country continent city (tab-separated)")
	out := flag.String("out", "", "the database to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "geoconv:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	if in == "" || out == "" {
		return fmt.Errorf("-in and -out are required")
	}
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoIP2-City",
		Description:             map[string]string{"en": "Meridian P2 benchmark subset of db-ip city (CC BY 4.0)"},
		Languages:               []string{"en"},
		IncludeReservedNetworks: true,
		RecordSize:              28,
	})
	if err != nil {
		return err
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		rec, network, err := parse(line)
		if err != nil {
			return fmt.Errorf("%s line %d: %w", in, n+1, err)
		}
		if err := tree.Insert(network, rec); err != nil {
			return fmt.Errorf("inserting %s: %w", network, err)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := tree.WriteTo(w); err != nil {
		_ = w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Printf("geoconv: %d networks written to %s\n", n, out)
	return nil
}

// parse turns one input line into a GeoIP2-City record.
func parse(line string) (mmdbtype.Map, *net.IPNet, error) {
	f := strings.Split(line, "\t")
	if len(f) != 6 {
		return nil, nil, fmt.Errorf("want 6 tab-separated fields, got %d", len(f))
	}
	_, network, err := net.ParseCIDR(f[0])
	if err != nil {
		return nil, nil, err
	}
	lat, err1 := strconv.ParseFloat(f[1], 64)
	lon, err2 := strconv.ParseFloat(f[2], 64)
	if err1 != nil || err2 != nil {
		return nil, nil, fmt.Errorf("bad latitude/longitude %q %q", f[1], f[2])
	}
	rec := mmdbtype.Map{
		"continent": mmdbtype.Map{"code": mmdbtype.String(f[4])},
		"country":   mmdbtype.Map{"iso_code": mmdbtype.String(f[3])},
		"location": mmdbtype.Map{
			"latitude":  mmdbtype.Float64(lat),
			"longitude": mmdbtype.Float64(lon),
			// db-ip gives city centres; 20 km is what GeoIP2 says for a city.
			"accuracy_radius": mmdbtype.Uint16(20),
		},
	}
	if f[5] != "" {
		rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(f[5])}}
	}
	return rec, network, nil
}
