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
