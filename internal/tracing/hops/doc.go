// Package hops holds the test of a trace across Meridian's three hops:
// the global balancer's front, the region's front (the agent's process
// runtime) and a `meridian serve` replica with its batches, exported to a
// real OTLP receiver (internal/tracing/otlptest). It has no code of its
// own.
package hops
