//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package poll

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// There is no SOCK_NONBLOCK or accept4 here: each descriptor is made close-on-exec and
// non-blocking after the fact, under ForkLock so a concurrent exec cannot inherit it.

func socket(family int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	return prepare(unix.Socket(family, unix.SOCK_STREAM, 0))
}

// Accept takes one connection from a listening socket, non-blocking and close-on-exec.
func Accept(lfd int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, _, err := unix.Accept(lfd)
	return prepare(fd, err)
}

func prepare(fd int, err error) (int, error) {
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// SocketPair makes a connected pair of Unix stream sockets, both non-blocking and
// close-on-exec: the loop serves one end like an accepted connection, and an embedder's
// http.Handler holds the other.
func SocketPair() (loopEnd, otherEnd int, err error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, -1, err
	}
	if _, err := prepare(fds[0], nil); err != nil {
		unix.Close(fds[1])
		return -1, -1, err
	}
	if _, err := prepare(fds[1], nil); err != nil {
		unix.Close(fds[0])
		return -1, -1, err
	}
	return fds[0], fds[1], nil
}
