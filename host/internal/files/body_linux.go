package files

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
)

// openDirFD opens a grant's directory as a descriptor for openat2, or returns -1 (the
// os.Root path is used then).
func openDirFD(dir string) int {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

func closeDirFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// openBody opens name beneath the grant with one openat2 (RESOLVE_BENEATH refuses ".." out
// and absolute links; RESOLVE_NO_MAGICLINKS, /proc's), without waiting (O_NONBLOCK: a FIFO),
// and checks that it is a regular file. A kernel without openat2 takes the os.Root path.
func (mt *Mount) openBody(name, p string) (BodyFile, error) {
	if mt.dirFD < 0 {
		return mt.openBodyRoot(name, p)
	}
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	var fd int
	var err error
	for {
		fd, err = unix.Openat2(mt.dirFD, name, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
			break
		}
	}
	switch {
	case errors.Is(err, unix.ENOSYS):
		return mt.openBodyRoot(name, p)
	case errors.Is(err, unix.EXDEV): // the path leads out of the grant
		return nil, coded(abi.FileEACCES, fmt.Errorf("%s leads out of its granted directory", p))
	case err != nil:
		return nil, classify(&os.PathError{Op: "open", Path: p, Err: err})
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, classify(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, coded(abi.FileEINVAL, fmt.Errorf("%s is not a regular file", p))
	}
	return &fdFile{fd, st}, nil
}

// fdFile is an open regular file read with pread(2), and the fstat(2) its open made.
type fdFile struct {
	fd int
	st unix.Stat_t
}

// OpenStat is the file's fstat(2) as it was opened: what a head describing the file is made
// from, without a second system call.
func (f *fdFile) OpenStat() *unix.Stat_t { return &f.st }

func (f *fdFile) ReadAt(b []byte, off int64) (int, error) {
	for {
		n, err := unix.Pread(f.fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(b) > 0 {
			return 0, errEOF
		}
		return n, nil
	}
}

func (f *fdFile) Fd() uintptr { return uintptr(f.fd) }

func (f *fdFile) Close() error { return unix.Close(f.fd) }
