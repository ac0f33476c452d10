//go:build tools

// The cluster DNS of the real node (hack/node.sh): CoreDNS with its kubernetes plugin, run on the
// host against the local control plane, so Service names and a distributed run's worker
// hostnames resolve in pods.
package tools

import _ "github.com/coredns/coredns"
