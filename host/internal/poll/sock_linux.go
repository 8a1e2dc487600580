//go:build linux

package poll

import "golang.org/x/sys/unix"

func socket(family int) (int, error) {
	return unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
}

// Accept takes one connection from a listening socket, non-blocking and close-on-exec.
func Accept(lfd int) (int, error) {
	fd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	return fd, err
}

// SocketPair makes a connected pair of Unix stream sockets, both non-blocking and
// close-on-exec: the loop serves one end like an accepted connection, and an embedder's
// http.Handler holds the other.
func SocketPair() (loopEnd, otherEnd int, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, err
	}
	return fds[0], fds[1], nil
}
