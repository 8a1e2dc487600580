//go:build !linux

package poll

import "golang.org/x/sys/unix"

// HasSendfile says whether Sendfile and WriteMore are implemented here: not on the BSDs,
// whose sendfile(2) reports a partial write differently. The caller's copy through a buffer
// (pread, write) serves instead.
const HasSendfile = false

// Sendfile is not implemented here (HasSendfile).
func Sendfile(out, in int, off *int64, n int) (int, error) { return 0, unix.ENOSYS }

// WriteMore is not implemented here (HasSendfile).
func WriteMore(fd int, b []byte) (int, error) { return 0, unix.ENOSYS }
