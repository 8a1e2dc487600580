package files

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"slices"
	"strings"
	"syscall"

	"golang.org/x/sync/semaphore"

	"github.com/wasmloop/wasmloop/abi"
)

// The host's file functions (abi.Fn*), each a decoder of its request, one os.Root call and an
// encoder of its result. They run as async host functions — on a goroutine, answered as an
// event — and at most maxConcurrent of them touch the disk at once: the rest wait their turn,
// as Node's thread pool holds four.

// maxConcurrent bounds the file operations running at once, across a program's workers.
const maxConcurrent = 16

// maxHeld bounds the bytes of results read but not yet handed to the guest, across a
// program's workers: a result waits for its worker's loop to take it, and a guest that asks
// for thousands of large reads at once must not make the host hold them all. An operation
// reserves what it will read before it reads; the reservation is released when the loop has
// copied the result into the guest, or dropped it (Release).
const maxHeld = 4 * abi.MaxReadFile

// Op is one file function: what loop.HostFunc.Async runs.
type Op func(ctx context.Context, in []byte) ([]byte, error)

// Ops returns the file functions by name. With no grants they refuse every path. Every
// result must be given back to Release once delivered or dropped.
func (m *Mounts) Ops() map[string]Op {
	return map[string]Op{
		abi.FnReadFile:   m.bounded(m.readFile),
		abi.FnRead:       m.bounded(m.read),
		abi.FnWriteFile:  m.bounded(func(_ *call, in []byte) ([]byte, error) { return m.write(in, false) }),
		abi.FnAppendFile: m.bounded(func(_ *call, in []byte) ([]byte, error) { return m.write(in, true) }),
		abi.FnStat:       m.bounded(m.stat),
		abi.FnReadDir:    m.bounded(m.readDir),
		abi.FnMkdir:      m.bounded(m.mkdir),
		abi.FnRemove:     m.bounded(m.remove),
		abi.FnRename:     m.bounded(m.rename),
	}
}

// Release gives back what a result of Ops held (loop.HostFunc.Done).
func (m *Mounts) Release(res []byte, failed bool) {
	if !failed && len(res) > 0 {
		m.held.Release(int64(len(res)))
	}
}

// StatSync is the stat function run on the caller's goroutine (a sync host call, on the
// loop): one stat(2), without waiting for a slot.
func (m *Mounts) StatSync(_ context.Context, in []byte) ([]byte, error) { return m.stat(nil, in) }

// Idle says whether no result is held: every one read has been released.
func (m *Mounts) Idle() bool {
	if !m.held.TryAcquire(m.heldMax) {
		return false
	}
	m.held.Release(m.heldMax)
	return true
}

// call is one operation under way: what it has reserved of maxHeld.
type call struct {
	ctx      context.Context
	held     *semaphore.Weighted
	reserved int64
}

// reserve waits until n more bytes of results may be held.
func (c *call) reserve(n int64) error {
	if n <= 0 {
		return nil
	}
	if err := c.held.Acquire(c.ctx, n); err != nil {
		return coded(abi.FileEIO, err)
	}
	c.reserved += n
	return nil
}

// bounded runs op when one of the slots is free, or fails when ctx ends first (the program
// stopped). A successful result leaves exactly its length reserved, for Release.
func (m *Mounts) bounded(op func(c *call, in []byte) ([]byte, error)) Op {
	return func(ctx context.Context, in []byte) (res []byte, err error) {
		select {
		case m.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, coded(abi.FileEIO, ctx.Err())
		}
		defer func() { <-m.slots }()
		c := &call{ctx: ctx, held: m.held}
		defer func() {
			if err != nil || recover() != nil {
				m.held.Release(c.reserved)
				if err == nil {
					err = coded(abi.FileEIO, errors.New("the operation failed"))
				}
			}
		}()
		res, err = op(c, in)
		if err != nil {
			return nil, err
		}
		switch extra := c.reserved - int64(len(res)); {
		case extra > 0:
			m.held.Release(extra)
			c.reserved -= extra
		case extra < 0:
			if err := c.reserve(-extra); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
}

// openRegular opens a file to read or write its bytes. It never waits: a FIFO or a device
// in a granted directory would block an open or a read for ever, and take a slot with it,
// so the open does not block (O_NONBLOCK) and anything but a regular file is refused before
// a byte moves.
func openRegular(mt *Mount, name, p string, flag int) (*os.File, os.FileInfo, error) {
	f, err := mt.root.OpenFile(name, flag|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) { // a FIFO opened to write, with no reader
			return nil, nil, coded(abi.FileEINVAL, fmt.Errorf("%s is not a regular file", p))
		}
		return nil, nil, classify(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, classify(err)
	}
	switch {
	case st.IsDir():
		f.Close()
		return nil, nil, coded(abi.FileEISDIR, fmt.Errorf("%s is a directory", p))
	case !st.Mode().IsRegular():
		f.Close()
		return nil, nil, coded(abi.FileEINVAL, fmt.Errorf("%s is not a regular file", p))
	}
	return f, st, nil
}

// fileError is a failed operation's result: "CODE message" (abi.File*).
type fileError struct {
	code string
	err  error
}

func (e *fileError) Error() string { return e.code + " " + e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

func coded(code string, err error) error { return &fileError{code, err} }

// classify gives a system error its code.
func classify(err error) error {
	var code string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		code = abi.FileENOENT
	case errors.Is(err, fs.ErrExist):
		code = abi.FileEEXIST
	case errors.Is(err, syscall.ENOTDIR):
		code = abi.FileENOTDIR
	case errors.Is(err, syscall.EISDIR):
		code = abi.FileEISDIR
	case errors.Is(err, syscall.ENOTEMPTY):
		code = abi.FileENOTEMPTY
	case errors.Is(err, syscall.EXDEV):
		code = abi.FileEXDEV
	case errors.Is(err, syscall.ELOOP):
		code = abi.FileELOOP
	// A name past NAME_MAX (or a resolution past os.Root's step limit), or a request the
	// system calls invalid (a directory renamed into itself): the guest's path is at fault,
	// not the disk, so EINVAL ("a malformed request or path") rather than EIO, which a file
	// server answers as its own failure (500) and logs.
	case errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.EINVAL):
		code = abi.FileEINVAL
	case errors.Is(err, fs.ErrPermission), escapes(err):
		code = abi.FileEACCES
	default:
		code = abi.FileEIO
	}
	return coded(code, err)
}

// escapes says whether err is os.Root's refusal of a path that resolves outside the root
// ("path escapes from parent", inside an *fs.PathError or, from Rename, an *os.LinkError).
// It has no errno and no exported value, so its text is what identifies it: a path the
// guest may not use.
func escapes(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Unwrap(e) == nil && e.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}

// lookup resolves a guest path for an operation; write says it changes something.
func (m *Mounts) lookup(p string, write bool) (*Mount, string, error) {
	mt, name, err := m.resolve(p)
	if err != nil {
		if errors.As(err, new(errNotGranted)) {
			return nil, "", coded(abi.FileEACCES, err)
		}
		return nil, "", coded(abi.FileEINVAL, err)
	}
	if write && mt.ReadOnly {
		m.refused("read-only", "%s: %v", p, errReadOnly)
		return nil, "", coded(abi.FileEACCES, fmt.Errorf("%s: %w (granted with :ro)", p, errReadOnly))
	}
	return mt, name, nil
}

var errShort = coded(abi.FileEINVAL, errors.New("the request is shorter than its fields"))

// readFile: in = path.
func (m *Mounts) readFile(c *call, in []byte) ([]byte, error) {
	mt, name, err := m.lookup(string(in), false)
	if err != nil {
		return nil, err
	}
	f, st, err := openRegular(mt, name, string(in), os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := st.Size()
	if size > abi.MaxReadFile {
		return nil, coded(abi.FileEFBIG, fmt.Errorf("%s has %d bytes, more than a whole read takes (%d); read it in ranges", in, size, abi.MaxReadFile))
	}
	// One byte more than the size, to see the end of the file in the same read.
	if err := c.reserve(size + 1); err != nil {
		return nil, err
	}
	data := make([]byte, size+1)
	n, err := io.ReadFull(f, data)
	switch err {
	case io.EOF, io.ErrUnexpectedEOF: // the end, at the size or before it (the file shrank)
		return data[:n], nil
	case nil: // the file grew since the stat: read the rest, up to the limit
		rest, err := io.ReadAll(io.LimitReader(f, abi.MaxReadFile+1-int64(n)))
		if err != nil {
			return nil, classify(err)
		}
		data = append(data, rest...)
		if len(data) > abi.MaxReadFile {
			return nil, coded(abi.FileEFBIG, fmt.Errorf("%s grew past %d bytes", in, abi.MaxReadFile))
		}
		return data, nil
	}
	return nil, classify(err)
}

// read: in = offset u64, length u32, path.
func (m *Mounts) read(c *call, in []byte) ([]byte, error) {
	if len(in) < 12 {
		return nil, errShort
	}
	off, n := binary.LittleEndian.Uint64(in), binary.LittleEndian.Uint32(in[8:])
	p := string(in[12:])
	if off > 1<<62 {
		return nil, coded(abi.FileEINVAL, fmt.Errorf("offset %d", off))
	}
	if n > abi.MaxRead {
		return nil, coded(abi.FileEFBIG, fmt.Errorf("a range of %d bytes, more than %d", n, abi.MaxRead))
	}
	mt, name, err := m.lookup(p, false)
	if err != nil {
		return nil, err
	}
	f, st, err := openRegular(mt, name, p, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// What the file holds from off, not what was asked: a guest asking for 16 MiB of a
	// small file reserves and allocates what is there.
	want := min(int64(n), max(st.Size()-int64(off), 0))
	if want == 0 {
		return nil, nil
	}
	if err := c.reserve(want); err != nil {
		return nil, err
	}
	buf := make([]byte, want)
	got, err := f.ReadAt(buf, int64(off))
	if err != nil && err != io.EOF {
		return nil, classify(err)
	}
	return buf[:got], nil
}

// write: in = path length u32, path, data; appending or truncating.
func (m *Mounts) write(in []byte, appending bool) ([]byte, error) {
	p, data, err := twoParts(in)
	if err != nil {
		return nil, err
	}
	mt, name, err := m.lookup(p, true)
	if err != nil {
		return nil, err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appending {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, _, err := openRegular(mt, name, p, flags)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, classify(err)
	}
	if err := f.Close(); err != nil {
		return nil, classify(err)
	}
	return nil, nil
}

// twoParts splits in = first length u32, first, rest.
func twoParts(in []byte) (first string, rest []byte, err error) {
	if len(in) < 4 {
		return "", nil, errShort
	}
	n := binary.LittleEndian.Uint32(in)
	if uint64(n) > uint64(len(in)-4) {
		return "", nil, errShort
	}
	return string(in[4 : 4+n]), in[4+n:], nil
}

// stat: in = path; result = the stat record.
func (m *Mounts) stat(_ *call, in []byte) ([]byte, error) {
	mt, name, err := m.lookup(string(in), false)
	if err != nil {
		return nil, err
	}
	st, err := mt.root.Stat(name)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]byte, abi.StatSize)
	binary.LittleEndian.PutUint64(out[abi.StatSizeAt:], uint64(st.Size()))
	binary.LittleEndian.PutUint64(out[abi.StatMtimeAt:], uint64(st.ModTime().UnixNano()))
	binary.LittleEndian.PutUint32(out[abi.StatModeAt:], uint32(st.Mode().Perm()))
	out[abi.StatKindAt] = kindOf(st.Mode())
	return out, nil
}

func kindOf(mode fs.FileMode) byte {
	switch {
	case mode.IsRegular():
		return abi.KindFile
	case mode.IsDir():
		return abi.KindDir
	case mode&fs.ModeSymlink != 0:
		return abi.KindSymlink
	}
	return abi.KindOther
}

// readDir: in = path; result = entries (kind u8, name length u16, name), by name.
func (m *Mounts) readDir(_ *call, in []byte) ([]byte, error) {
	mt, name, err := m.lookup(string(in), false)
	if err != nil {
		return nil, err
	}
	f, err := mt.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0) // a FIFO must not block it
	if err != nil {
		return nil, classify(err)
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, classify(err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int {
		switch {
		case a.Name() < b.Name():
			return -1
		case a.Name() > b.Name():
			return 1
		}
		return 0
	})
	var out []byte
	for _, e := range entries {
		nm := e.Name()
		if len(nm) > 0xffff {
			continue // no file system names a file that long; nothing to encode it with
		}
		out = append(out, kindOf(e.Type()))
		out = binary.LittleEndian.AppendUint16(out, uint16(len(nm)))
		out = append(out, nm...)
	}
	if len(out) > abi.MaxReadFile {
		return nil, coded(abi.FileEFBIG, fmt.Errorf("%s lists more than %d bytes of names", in, abi.MaxReadFile))
	}
	return out, nil
}

// flagged decodes in = flags u8, path, for a change: the mount, the name in it and whether
// the recursive flag is set.
func (m *Mounts) flagged(in []byte) (*Mount, string, bool, error) {
	if len(in) < 1 {
		return nil, "", false, errShort
	}
	mt, name, err := m.lookup(string(in[1:]), true)
	return mt, name, in[0]&abi.FlagRecursive != 0, err
}

// mkdir: in = flags u8, path.
func (m *Mounts) mkdir(_ *call, in []byte) ([]byte, error) {
	mt, name, all, err := m.flagged(in)
	if err != nil {
		return nil, err
	}
	if all {
		err = mt.root.MkdirAll(name, 0o755)
	} else {
		err = mt.root.Mkdir(name, 0o755)
	}
	if err != nil {
		return nil, classify(err)
	}
	return nil, nil
}

// remove: in = flags u8, path. A grant's own directory cannot be removed.
func (m *Mounts) remove(_ *call, in []byte) ([]byte, error) {
	mt, name, all, err := m.flagged(in)
	if err != nil {
		return nil, err
	}
	if name == "." {
		return nil, coded(abi.FileEACCES, fmt.Errorf("%s is a granted directory itself", in[1:]))
	}
	if all && strings.HasSuffix(name, "/") {
		// os.Root's RemoveAll("f/") removes the file f: a path that must name a directory
		// (resolve) is checked first, as rm -r f/ does.
		if _, err := mt.root.Stat(name); err != nil {
			return nil, classify(err)
		}
	}
	if all {
		err = mt.root.RemoveAll(name)
	} else {
		err = mt.root.Remove(name)
	}
	if err != nil {
		return nil, classify(err)
	}
	return nil, nil
}

// rename: in = old path length u32, old path, new path; both in one grant.
func (m *Mounts) rename(_ *call, in []byte) ([]byte, error) {
	from, to, err := twoParts(in)
	if err != nil {
		return nil, err
	}
	mf, nf, err := m.lookup(from, true)
	if err != nil {
		return nil, err
	}
	mtt, nt, err := m.lookup(string(to), true)
	if err != nil {
		return nil, err
	}
	if mf != mtt {
		return nil, coded(abi.FileEXDEV, fmt.Errorf("%s and %s are in different granted directories", from, to))
	}
	if nf == "." || nt == "." {
		return nil, coded(abi.FileEACCES, errors.New("a granted directory itself cannot be renamed"))
	}
	if err := mf.root.Rename(nf, nt); err != nil {
		return nil, classify(err)
	}
	return nil, nil
}
