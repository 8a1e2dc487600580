//go:build !linux

package poll

import "golang.org/x/sys/unix"

// Sendfile is not used here: the BSDs' sendfile(2) reports a partial write differently, and
// the caller's copy through a buffer (pread, write) serves as well. ENOSYS says so.
func Sendfile(out, in int, off *int64, n int) (int, error) { return 0, unix.ENOSYS }
