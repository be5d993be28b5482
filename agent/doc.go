// Package agent is Meridian's per-cluster agent (`meridian agent`): it
// reconciles the cluster's ModelDeployments with controller-runtime, runs
// their replicas (the process runtime in agent/process; the kubernetes
// runtime in agent/kube), scales them with the HPA algorithm of
// agent/autoscaler, and keeps the cluster's ClusterReport — identity,
// heartbeat, capacity and per-model load — current for the hub.
// docs/agent.md is the user-facing reference.
package agent
