//go:build tools

// Package controllergen lists the command built from this module.
package controllergen

import _ "sigs.k8s.io/controller-tools/cmd/controller-gen"
