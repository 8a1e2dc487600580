package poll

// OpenBSD times keep-alive probes system-wide only (sysctl net.inet.tcp.keepidle).
const (
	tcpKeepIdle     = -1
	tcpKeepInterval = -1
)
