// Command registryhost prints the registry host OpenTofu resolves a
// provider source without a host (hashicorp/helm) against, as the pinned
// OpenTofu has it: tools/tofu/build.sh lays the filesystem mirror out
// under it.
package main

import (
	"fmt"

	regaddr "github.com/opentofu/registry-address/v2"
)

func main() { fmt.Println(regaddr.DefaultProviderRegistryHost) }
