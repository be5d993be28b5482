package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"

	mdns "github.com/miekg/dns"

	"meridian.dev/meridian/bench/internal/glbfixture"
	"meridian.dev/meridian/glb/geo"
)

// A group is a share of the client subnets: the countries it draws from
// and their continent code (for the GeoIP2 layout the peers read).
type group struct {
	name      string
	share     float64
	countries map[string]string // ISO code -> continent code
}

// groups is the client mix: Europe and the Americas 40 % each, India
// 20 %, so every cluster gets a good share of the answers.
var groups = []group{
	{"europe", 0.4, map[string]string{"DE": "EU", "FR": "EU", "GB": "EU", "NL": "EU", "IE": "EU", "ES": "EU",
		"IT": "EU", "SE": "EU", "PL": "EU", "PT": "EU", "BE": "EU", "AT": "EU", "CH": "EU"}},
	{"americas", 0.4, map[string]string{"US": "NA", "CA": "NA", "MX": "NA", "BR": "SA", "AR": "SA", "CO": "SA",
		"CL": "SA", "PE": "SA"}},
	{"india", 0.2, map[string]string{"IN": "AS"}},
}

// subnet is one client /24, located in the db-ip database.
type subnet struct {
	prefix    netip.Prefix
	loc       geo.Location
	continent string
	group     string
	// want is the address of the nearest cluster by great-circle
	// distance: what geo steering should answer.
	want netip.Addr
}

// pickSubnets draws n distinct public /24s from the db-ip database with a
// seeded generator, so every run and every server gets the same set,
// filling each group's share. A /24 is located by its network address,
// which is what a server sees in the ECS option.
func pickSubnets(db *geo.DB, n int, seed uint64) ([]subnet, error) {
	r := rand.New(rand.NewPCG(seed, 0x9e0))
	quota := map[string]int{}
	left := n
	for i, g := range groups {
		q := int(g.share * float64(n))
		if i == len(groups)-1 {
			q = left
		}
		quota[g.name], left = q, left-q
	}
	seen := map[netip.Prefix]bool{}
	var out []subnet
	for tries := 0; len(out) < n; tries++ {
		if tries > 5_000_000 {
			return nil, fmt.Errorf("found only %d of %d subnets in the geo database", len(out), n)
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], r.Uint32())
		p := netip.PrefixFrom(netip.AddrFrom4(b), 24).Masked()
		if !public(p.Addr()) || seen[p] {
			continue
		}
		loc, _, ok := db.Locate(p.Addr())
		if !ok {
			continue
		}
		for _, g := range groups {
			cont, in := g.countries[loc.Country]
			if !in || quota[g.name] == 0 {
				continue
			}
			quota[g.name]--
			seen[p] = true
			out = append(out, subnet{prefix: p, loc: loc, continent: cont, group: g.name, want: nearest(loc)})
		}
	}
	return out, nil
}

// public leaves out the ranges no client subnet comes from.
func public(a netip.Addr) bool {
	b := a.As4()
	switch {
	case b[0] == 0, b[0] == 10, b[0] == 127, b[0] >= 224,
		b[0] == 100 && b[1]&0xc0 == 64, b[0] == 169 && b[1] == 254,
		b[0] == 172 && b[1]&0xf0 == 16, b[0] == 192 && b[1] == 168:
		return false
	}
	return true
}

// nearest is the address of the site closest to loc.
func nearest(loc geo.Location) netip.Addr {
	var best netip.Addr
	bestKm := -1.0
	for _, s := range glbfixture.Sites {
		lat, _ := strconv.ParseFloat(s.Lat, 64)
		lon, _ := strconv.ParseFloat(s.Lon, 64)
		if km := geo.Haversine(loc.Lat, loc.Lon, lat, lon); bestKm < 0 || km < bestKm {
			best, bestKm = s.Addr, km
		}
	}
	return best
}

// query is the A query for the endpoint with the subnet in ECS (source
// prefix 24), EDNS buffer 1232, no recursion desired (an authoritative
// server is asked as a resolver would ask it).
func query(s subnet, id uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(glbfixture.Hostname), mdns.TypeA)
	m.Id = id
	m.RecursionDesired = false
	o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
	o.SetUDPSize(1232)
	o.Option = append(o.Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1,
		SourceNetmask: uint8(s.prefix.Bits()), Address: s.prefix.Addr().AsSlice()})
	m.Extra = append(m.Extra, o)
	return m
}

// writeQueryFile writes every subnet's query in dnsperf's binary input
// format (-B): each message preceded by its length in two bytes, as on a
// DNS TCP stream. Text input cannot carry a different ECS option per
// query (-E sets one for all), so this is the only way to make the
// answers depend on the subnet.
func writeQueryFile(path string, subnets []subnet) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i, s := range subnets {
		b, err := query(s, uint16(i)).Pack()
		if err != nil {
			_ = f.Close()
			return err
		}
		_ = binary.Write(w, binary.BigEndian, uint16(len(b)))
		_, _ = w.Write(b)
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// writeGeoInput lists the networks the peers' database needs, in the
// input format of bench/dns/geoconv: every subnet of the query set, and
// each site's address (PowerDNS's pickclosest locates its candidates).
func writeGeoInput(path string, subnets []subnet) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, s := range subnets {
		_, _ = fmt.Fprintf(w, "%s\t%g\t%g\t%s\t%s\t%s\n", s.prefix, s.loc.Lat, s.loc.Lon, s.loc.Country, s.continent, s.loc.City)
	}
	for _, s := range glbfixture.Sites {
		_, _ = fmt.Fprintf(w, "%s/32\t%s\t%s\tXX\tXX\t%s\n", s.Addr, s.Lat, s.Lon, s.Name)
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
