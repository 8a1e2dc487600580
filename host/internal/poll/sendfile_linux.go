//go:build linux

package poll

import "golang.org/x/sys/unix"

// HasSendfile says whether Sendfile and WriteMore are implemented here.
const HasSendfile = true

// Sendfile writes up to n bytes of the file in from offset *off to the socket out, straight
// from the page cache (sendfile(2)), and advances *off by what went. A full socket gives
// EAGAIN with nothing written.
func Sendfile(out, in int, off *int64, n int) (int, error) { return unix.Sendfile(out, in, off, n) }

// WriteMore writes b to the socket fd with MSG_MORE: the kernel holds a last partial segment
// for the bytes that follow (a response's body after its head), as TCP_CORK does, without
// the two system calls that set and clear it.
func WriteMore(fd int, b []byte) (int, error) { return unix.SendmsgN(fd, b, nil, nil, unix.MSG_MORE) }
