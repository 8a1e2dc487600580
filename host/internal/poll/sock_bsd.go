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
