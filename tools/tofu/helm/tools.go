//go:build tools

// Package helm lists the command built from this module.
package helm

import _ "github.com/hashicorp/terraform-provider-helm"
