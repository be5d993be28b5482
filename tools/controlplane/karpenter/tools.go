//go:build tools

// Package karpenter lists the command built from this module: Karpenter
// with its kwok cloud provider.
package karpenter

import _ "sigs.k8s.io/karpenter/kwok"
