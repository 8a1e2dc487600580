//go:build unix

package poll

import "golang.org/x/sys/unix"

// SetKeepAlive turns TCP keep-alive probes on — the first after secs idle, then every secs —
// or off (secs <= 0). Where the system has no per-socket timing (OpenBSD), its own applies.
func SetKeepAlive(fd, secs int) error {
	if secs <= 0 {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 0)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1); err != nil {
		return err
	}
	if tcpKeepIdle < 0 {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, tcpKeepIdle, secs); err != nil {
		return err
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, tcpKeepInterval, secs)
}
