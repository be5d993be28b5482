//go:build tools

// Package helm lists the command built from this module.
package helm

import _ "helm.sh/helm/v4/cmd/helm"
