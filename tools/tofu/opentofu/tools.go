//go:build tools

// Package opentofu lists the command built from this module.
package opentofu

import _ "github.com/opentofu/opentofu/cmd/tofu"
