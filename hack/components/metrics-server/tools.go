//go:build tools

// Package tools pins metrics-server (sigs.k8s.io/metrics-server) for hack/build-component.sh: the
// node tier runs it beside the control plane so that the HPAs the operator creates get the real
// node's pod CPU from the kubelet's resource metrics, through the aggregated metrics.k8s.io API.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
