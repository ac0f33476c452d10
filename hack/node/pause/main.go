// Command pause is the sandbox ("pause") process of the real node's pods (hack/node.sh): it
// holds the pod's namespaces open, reaps orphans when it is PID 1, and exits on SIGINT/SIGTERM.
// Built here (static, CGO_ENABLED=0) because the node has no registry to pull one from.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
