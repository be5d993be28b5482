//go:build tools

// Package etcd lists the command built from this module.
package etcd

import _ "go.etcd.io/etcd/server/v3"
