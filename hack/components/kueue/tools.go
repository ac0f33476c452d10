//go:build tools

// Package tools pins the Kueue controller manager (sigs.k8s.io/kueue/cmd/kueue) for
// hack/build-component.sh; its CRDs are read from the module cache by the tests.
package tools

import _ "sigs.k8s.io/kueue/cmd/kueue"
