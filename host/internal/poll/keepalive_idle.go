//go:build linux || freebsd || netbsd || dragonfly

package poll

import "golang.org/x/sys/unix"

// The socket options that time keep-alive probes (keepalive.go).
const (
	tcpKeepIdle     = unix.TCP_KEEPIDLE
	tcpKeepInterval = unix.TCP_KEEPINTVL
)
