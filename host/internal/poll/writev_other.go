//go:build freebsd || netbsd || dragonfly

package poll

import "golang.org/x/sys/unix"

// Writev writes the buffers in order and returns the bytes written. x/sys has no writev
// here, so it writes them one by one, stopping at the first short write.
func Writev(fd int, iovs [][]byte) (int, error) {
	total := 0
	for _, b := range iovs {
		n, err := unix.Write(fd, b)
		if n > 0 {
			total += n
		}
		if err != nil {
			return total, err
		}
		if n < len(b) {
			return total, nil
		}
	}
	return total, nil
}
