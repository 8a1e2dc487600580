//go:build unix

package poll

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// ErrAddress means an address is not an IP literal or "localhost".
var ErrAddress = errors.New("poll: the address must be an IP literal or localhost")

// ParseAddr resolves a listen address without DNS: an IP literal, or localhost (127.0.0.1).
func ParseAddr(host string) (netip.Addr, error) {
	if host == "localhost" {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, ErrAddress
	}
	return a.Unmap(), nil
}

// Listen opens a non-blocking TCP listening socket on addr:port. With reusePort, several
// sockets (one per loop) can listen on the same address and port. It returns the descriptor
// and the port actually bound (useful with port 0).
func Listen(addr netip.Addr, port int, reusePort bool, backlog int) (fd int, bound int, err error) {
	family := unix.AF_INET
	if addr.Is6() {
		family = unix.AF_INET6
	}
	fd, err = socket(family)
	if err != nil {
		return -1, 0, err
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return -1, 0, err
	}
	if reusePort {
		if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return -1, 0, err
		}
	}
	var sa unix.Sockaddr
	if addr.Is6() {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		sa = &unix.SockaddrInet6{Port: port, Addr: addr.As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
	}
	if err = unix.Bind(fd, sa); err != nil {
		return -1, 0, err
	}
	if err = unix.Listen(fd, backlog); err != nil {
		return -1, 0, err
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return -1, 0, err
	}
	switch s := got.(type) {
	case *unix.SockaddrInet4:
		bound = s.Port
	case *unix.SockaddrInet6:
		bound = s.Port
	}
	return fd, bound, nil
}

// InUse reports whether another socket already listens on addr:port. SO_REUSEPORT lets any
// socket of the same user join a port, so a second server on a port would silently get half
// its connections; a probe bound without SO_REUSEPORT fails exactly when someone listens.
func InUse(addr netip.Addr, port int) bool {
	fd, _, err := Listen(addr, port, false, 1)
	if err != nil {
		return err == unix.EADDRINUSE
	}
	unix.Close(fd)
	return false
}

// SetNoDelay turns off Nagle's algorithm: responses are written whole, so waiting for
// more bytes would only add latency.
func SetNoDelay(fd int) { unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) }

// IsTemporaryAcceptError reports accept errors that mean "not now" rather than "never":
// out of descriptors or memory. The loop backs off and keeps serving (RATIONALE.md, "The
// loop": accept out of descriptors).
func IsTemporaryAcceptError(err error) bool {
	return err == unix.EMFILE || err == unix.ENFILE || err == unix.ENOBUFS || err == unix.ENOMEM
}

// IsAbortedAccept reports connections that died in the accept queue: skip them.
func IsAbortedAccept(err error) bool {
	return err == unix.ECONNABORTED || err == unix.EPROTO || err == unix.EPERM || err == unix.EINTR
}
