// Package glb is Meridian's global balancer: an authoritative DNS server
// (glb/dns) and an HTTP front that steer each user to the nearest healthy
// cluster with room (glb/steer), locating clients with a MaxMind-format
// database (glb/geo). This file's Source keeps the balancer's view of the
// fleet — the hub's GlobalEndpoints and Clusters — with a last-known-good
// copy on disk, so the data plane never waits for the control plane.
package glb
