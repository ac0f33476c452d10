//go:build tools

// Package tools pins the JobSet controller (sigs.k8s.io/jobset, whose manager is the module's
// root package) for hack/build-component.sh; its CRD is read from the module cache by the tests.
package tools

import _ "sigs.k8s.io/jobset"
