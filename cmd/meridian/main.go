// Command meridian is Meridian's one binary: the model server, the
// per-cluster agent, the hub, the global balancer and the local fleet.
// Run `meridian --help` for the subcommands.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"meridian.dev/meridian/internal/version"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "meridian:", err)
		os.Exit(1)
	}
}

// newRoot builds the command tree.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "meridian",
		Short: "Serve AI models globally from many Kubernetes clusters",
		Long: `Meridian places ONNX models across Kubernetes clusters and regions, scales
them in each, and steers every user to the nearest healthy cluster with room.

This binary holds every component; pick one with a subcommand.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCommand(), agentCommand(), hubCommand(), glbCommand(), upCommand(), drillCommand(), memberCommand(), joinCommand(), versionCommand())
	root.AddCommand(caCommand())
	return root
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go runtime of this binary",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String())
		},
	}
}
