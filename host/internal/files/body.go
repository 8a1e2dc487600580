package files

import (
	"io"
	"os"
	"strings"

	"github.com/wasmloop/wasmloop/abi"
)

// A response body read from a file by the host itself (body_file, ABI 1.6), on the loop: the
// open, the checks and the reads are system calls made on the caller's goroutine, without a
// slot. Where the OS has it, the file is opened with the kernel's own confinement
// (body_linux.go: openat2 with RESOLVE_BENEATH, beneath a descriptor of the grant), which
// refuses what os.Root refuses — "..", absolute links, links that climb out — in one call
// instead of one per path element, and without an *os.File's allocation and cleanup.

// BodyFile is a regular file opened for a response body.
type BodyFile interface {
	ReadAt(p []byte, off int64) (int, error)
	Fd() uintptr
	Close() error
}

// OpenForBody opens the regular file at guest path p for reading: EDENIED when no grant
// holds it (or it leads out of its grant), EINVAL for anything else (missing, not regular).
// The caller closes it.
func (m *Mounts) OpenForBody(p string) (BodyFile, abi.Errno) {
	mt, name, err := m.lookup(p, false)
	if err == nil {
		var f BodyFile
		if f, err = mt.openBody(name, p); err == nil {
			return f, 0
		}
	}
	if strings.HasPrefix(err.Error(), abi.FileEACCES+" ") {
		return nil, abi.EDENIED
	}
	return nil, abi.EINVAL
}

// openBodyRoot opens name through the grant's os.Root.
func (mt *Mount) openBodyRoot(name, p string) (BodyFile, error) {
	f, _, err := openRegular(mt, name, p, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// errEOF is io.EOF, for fdFile.ReadAt.
var errEOF = io.EOF
