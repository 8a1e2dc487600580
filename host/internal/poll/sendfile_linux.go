//go:build linux

package poll

import "golang.org/x/sys/unix"

// Sendfile writes up to n bytes of the file in from offset *off to the socket out, straight
// from the page cache (sendfile(2)), and advances *off by what went. A full socket gives
// EAGAIN with nothing written.
func Sendfile(out, in int, off *int64, n int) (int, error) { return unix.Sendfile(out, in, off, n) }
