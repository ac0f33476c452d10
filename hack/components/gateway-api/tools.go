//go:build tools

// Package tools pins the Gateway API module: the operator's tests read its CRDs
// (config/crd/standard) from the module cache; nothing of it is compiled.
package tools

import _ "sigs.k8s.io/gateway-api/apis/v1"
