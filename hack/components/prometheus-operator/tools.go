//go:build tools

// Package tools pins the Prometheus Operator's command for hack/build-component.sh.
package tools

import _ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
