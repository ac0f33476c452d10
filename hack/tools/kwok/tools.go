//go:build tools

// Package tools pins kwok (fake nodes and pod lifecycles) and kwokctl (process management).
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
	_ "sigs.k8s.io/kwok/cmd/kwokctl"
)
