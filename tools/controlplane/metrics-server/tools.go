//go:build tools

// Package metricsserver lists the command built from this module.
package metricsserver

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
