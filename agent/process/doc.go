// Package process is the agent's `process` runtime, for embedded, edge and
// bare-metal sites without Kubernetes nodes to schedule on: a Supervisor
// runs `meridian serve` replicas as child processes on free loopback
// ports, probes their readiness and restarts them with backoff; a Front
// serves the model at one address and sends each request to the ready
// replica with the fewest outstanding requests; a Scraper reads the
// replicas' metrics into the load the autoscaler steers by.
package process
