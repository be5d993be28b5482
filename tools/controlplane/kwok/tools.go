//go:build tools

// Package kwok lists the command built from this module.
package kwok

import _ "sigs.k8s.io/kwok/cmd/kwok"
