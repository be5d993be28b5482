//go:build tools

// Package kubernetes lists the command built from this module.
package kubernetes

import _ "github.com/hashicorp/terraform-provider-kubernetes"
