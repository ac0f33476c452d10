//go:build tools

// Package tools pins Prometheus' server command for hack/build-component.sh: Debian's package
// is built without Kubernetes service discovery, which the Prometheus Operator's configuration
// needs.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
