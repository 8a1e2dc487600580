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
	"syscall"

	"github.com/wasmloop/wasmloop/abi"
)

// The host's file functions (abi.Fn*), each a decoder of its request, one os.Root call and an
// encoder of its result. They run as async host functions — on a goroutine, answered as an
// event — and at most maxConcurrent of them touch the disk at once: the rest wait their turn,
// as Node's thread pool holds four.

// maxConcurrent bounds the file operations running at once, across a program's workers.
const maxConcurrent = 16

// Op is one file function: what loop.HostFunc.Async runs.
type Op func(ctx context.Context, in []byte) ([]byte, error)

// Ops returns the file functions by name. With no grants they refuse every path.
func (m *Mounts) Ops() map[string]Op {
	return map[string]Op{
		abi.FnReadFile:   m.bounded(m.readFile),
		abi.FnRead:       m.bounded(m.read),
		abi.FnWriteFile:  m.bounded(func(in []byte) ([]byte, error) { return m.write(in, false) }),
		abi.FnAppendFile: m.bounded(func(in []byte) ([]byte, error) { return m.write(in, true) }),
		abi.FnStat:       m.bounded(m.stat),
		abi.FnReadDir:    m.bounded(m.readDir),
		abi.FnMkdir:      m.bounded(m.mkdir),
		abi.FnRemove:     m.bounded(m.remove),
		abi.FnRename:     m.bounded(m.rename),
	}
}

// bounded runs op when one of the slots is free, or fails when ctx ends first (the program
// stopped).
func (m *Mounts) bounded(op func(in []byte) ([]byte, error)) Op {
	return func(ctx context.Context, in []byte) ([]byte, error) {
		select {
		case m.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, coded(abi.FileEIO, ctx.Err())
		}
		defer func() { <-m.slots }()
		return op(in)
	}
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
	case errors.Is(err, fs.ErrPermission):
		code = abi.FileEACCES
	default:
		// os.Root's refusal of a path that escapes ("path escapes from parent") has no
		// errno: it is a path the guest may not use.
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent" {
			code = abi.FileEACCES
		} else {
			code = abi.FileEIO
		}
	}
	return coded(code, err)
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
func (m *Mounts) readFile(in []byte) ([]byte, error) {
	mt, name, err := m.lookup(string(in), false)
	if err != nil {
		return nil, err
	}
	f, err := mt.root.Open(name)
	if err != nil {
		return nil, classify(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, classify(err)
	}
	if st.IsDir() {
		return nil, coded(abi.FileEISDIR, fmt.Errorf("%s is a directory", in))
	}
	if st.Size() > abi.MaxReadFile {
		return nil, coded(abi.FileEFBIG, fmt.Errorf("%s has %d bytes, more than a whole read takes (%d); read it in ranges", in, st.Size(), abi.MaxReadFile))
	}
	data, err := io.ReadAll(io.LimitReader(f, abi.MaxReadFile+1))
	if err != nil {
		return nil, classify(err)
	}
	if len(data) > abi.MaxReadFile { // it grew while read
		return nil, coded(abi.FileEFBIG, fmt.Errorf("%s grew past %d bytes", in, abi.MaxReadFile))
	}
	return data, nil
}

// read: in = offset u64, length u32, path.
func (m *Mounts) read(in []byte) ([]byte, error) {
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
	f, err := mt.root.Open(name)
	if err != nil {
		return nil, classify(err)
	}
	defer f.Close()
	buf := make([]byte, n)
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
	f, err := mt.root.OpenFile(name, flags, 0o644)
	if err != nil {
		return nil, classify(err)
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
func (m *Mounts) stat(in []byte) ([]byte, error) {
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
func (m *Mounts) readDir(in []byte) ([]byte, error) {
	mt, name, err := m.lookup(string(in), false)
	if err != nil {
		return nil, err
	}
	f, err := mt.root.Open(name)
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
func (m *Mounts) mkdir(in []byte) ([]byte, error) {
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
func (m *Mounts) remove(in []byte) ([]byte, error) {
	mt, name, all, err := m.flagged(in)
	if err != nil {
		return nil, err
	}
	if name == "." {
		return nil, coded(abi.FileEACCES, fmt.Errorf("%s is a granted directory itself", in[1:]))
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
func (m *Mounts) rename(in []byte) ([]byte, error) {
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
