//go:build darwin || linux || openbsd

package poll

import "golang.org/x/sys/unix"

// Writev writes the buffers in order with one system call and returns the bytes written.
func Writev(fd int, iovs [][]byte) (int, error) { return unix.Writev(fd, iovs) }
