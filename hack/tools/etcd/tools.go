//go:build tools

// Package tools pins the etcd server (>= 3.5.13: kopf relies on watch bookmarks).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
