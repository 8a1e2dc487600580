package poll

import "golang.org/x/sys/unix"

// The socket options that time keep-alive probes (keepalive.go): macOS names the idle time
// TCP_KEEPALIVE.
const (
	tcpKeepIdle     = unix.TCP_KEEPALIVE
	tcpKeepInterval = unix.TCP_KEEPINTVL
)
