// Command pause is the Kubernetes sandbox ("pause") container of Meridian's
// images: it holds a pod's namespaces open by doing nothing until SIGTERM
// or SIGINT, and, as PID 1 of a pod that shares its process namespace,
// reaps the zombies its orphans leave. It is built static (CGO_ENABLED=0)
// by `make image` into the pause image, since nothing can be pulled from a
// public registry where Meridian's local fleet runs.
//
//	pause        block until SIGTERM/SIGINT, then exit 0
//	pause -v     print the version and exit
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const version = "meridian-pause 3.10"

func main() {
	if len(os.Args) > 1 {
		if os.Args[1] == "-v" {
			fmt.Println(version)
			return
		}
		fmt.Fprintf(os.Stderr, "pause takes no arguments but -v (got %q)\n", os.Args[1:])
		os.Exit(2)
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
		os.Exit(0)
	}
}

// reap collects every child that has exited, without blocking.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
