//go:build tools

// Package tools pins the Kubernetes commands that hack/build-tools.sh builds: the control plane,
// and the kubelet and kube-proxy of the optional real node (MODELWERK_REAL_NODE=1).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
