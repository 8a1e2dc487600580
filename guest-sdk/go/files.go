//go:build wasip1

package wasmloop

import (
	"encoding/binary"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/abi"
)

// Files, as Node's fs/promises with callbacks (ABI 1.5). Only the directories the host
// granted are visible (wasmloop run --dir HOST_PATH[:GUEST_PATH][:ro], host.Config.Dirs);
// paths are absolute, in the guest's view ("/www/index.html"). Every operation runs on the
// host, off the event loop, and its callback runs in a later callback, never inside the call
// that started it; a pending operation keeps the program alive. The starting call itself fails
// only when the operation cannot start (too many in flight, or a host without files).
//
// The same directories are also WASI preopens, read-only: os.ReadFile and os.Open work, but
// block the worker while they read — use them for start-up configuration, as Node programs use
// readFileSync, and these functions while serving.
//
// Errors are *fs.PathError values whose Err is a *FileError: errors.Is(err, fs.ErrNotExist),
// fs.ErrExist and fs.ErrPermission work as with package os.

// FileError is what a file operation failed with: the host's code (abi.FileENOENT...) and its
// message, which says what to do when the path was not granted.
type FileError struct {
	Code    string
	Message string
}

func (e *FileError) Error() string { return e.Message }

// Is makes errors.Is(err, fs.ErrNotExist) and its kind work.
func (e *FileError) Is(target error) bool {
	switch target {
	case fs.ErrNotExist:
		return e.Code == abi.FileENOENT
	case fs.ErrExist:
		return e.Code == abi.FileEEXIST
	case fs.ErrPermission:
		return e.Code == abi.FileEACCES
	}
	return false
}

// fileOp starts the host's file function name; done gets its result, or its error as a
// *fs.PathError for op and p.
func fileOp(name, op, p string, in []byte, done func([]byte, error)) error {
	err := Call(name, in, func(res []byte, err error) {
		if he, ok := err.(*HostError); ok {
			code, msg, _ := strings.Cut(he.Message, " ")
			err = &fs.PathError{Op: op, Path: p, Err: &FileError{Code: code, Message: msg}}
		}
		done(res, err)
	})
	if err == ErrNoFunction {
		return &fs.PathError{Op: op, Path: p, Err: &FileError{Code: abi.FileEACCES,
			Message: "the host has no file functions (ABI 1.5, wasmloop run --dir)"}}
	}
	return err
}

// ReadFile reads the whole file (at most 64 MiB; read larger ones with ReadAt).
func ReadFile(name string, fn func(data []byte, err error)) error {
	return fileOp(abi.FnReadFile, "readFile", name, []byte(name), fn)
}

// ReadAt reads up to n bytes (at most 16 MiB) from offset off; fewer at the end of the file.
func ReadAt(name string, off int64, n int, fn func(data []byte, err error)) error {
	if off < 0 || n < 0 || n > abi.MaxRead {
		return &fs.PathError{Op: "read", Path: name, Err: &FileError{Code: abi.FileEINVAL, Message: "offset or length out of range"}}
	}
	in := binary.LittleEndian.AppendUint64(nil, uint64(off))
	in = binary.LittleEndian.AppendUint32(in, uint32(n))
	return fileOp(abi.FnRead, "read", name, append(in, name...), fn)
}

// WriteFile creates or truncates the file and writes data to it.
func WriteFile(name string, data []byte, fn func(err error)) error {
	return fileOp(abi.FnWriteFile, "writeFile", name, pathThen(name, data), func(_ []byte, err error) { fn(err) })
}

// AppendFile creates the file or appends data to it.
func AppendFile(name string, data []byte, fn func(err error)) error {
	return fileOp(abi.FnAppendFile, "appendFile", name, pathThen(name, data), func(_ []byte, err error) { fn(err) })
}

func pathThen(p string, rest []byte) []byte {
	in := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(p)+len(rest)), uint32(len(p)))
	return append(append(in, p...), rest...)
}

// Stat describes the file, following symbolic links inside the grant.
func Stat(name string, fn func(info fs.FileInfo, err error)) error {
	return fileOp(abi.FnStat, "stat", name, []byte(name), func(res []byte, err error) {
		info, err := statInfo(name, res, err)
		fn(info, err)
	})
}

// StatSync describes the file at once: the host runs one stat(2) on the event loop while the
// program waits (ABI 1.6). On a local disk that is microseconds — a static file server's
// every request — but a slow disk or a network file system holds the worker meanwhile, as
// Node's fs.statSync does; Stat does not.
func StatSync(name string) (fs.FileInfo, error) {
	np, nn := stringPtr(name)
	res, err := callSync(abi.FnStat, np, nn, false) // decoded before the next host call
	if he, ok := err.(*HostError); ok {
		code, msg, _ := strings.Cut(he.Message, " ")
		err = &fs.PathError{Op: "stat", Path: name, Err: &FileError{Code: code, Message: msg}}
	} else if err == ErrNoFunction {
		err = &fs.PathError{Op: "stat", Path: name, Err: &FileError{Code: abi.FileEACCES,
			Message: "the host has no sync stat (ABI 1.6, wasmloop run --dir)"}}
	}
	return statInfo(name, res, err)
}

// StatFile is StatSync for a file this response's SendFile will send: a regular file is also
// held open for the response, and a SendFile of the same name sends that file's bytes, even
// if the path is renamed over in between (a deployment) — so that a Content-Length, ETag or
// Last-Modified made from what StatFile returns describes what goes out, as Go's
// http.ServeFile makes its head from the file it opened. The file is closed when the
// response ends. On a host before ABI 1.8 it is StatSync. Errors are StatSync's.
func (r Response) StatFile(name string) (fs.FileInfo, error) {
	x := r.live()
	if x == nil {
		return StatSync(name)
	}
	in, took := takeInput()
	in = binary.LittleEndian.AppendUint64(in, uint64(x.h))
	in = append(in, name...)
	ip, n := bytesPtr(in)
	res, err := callSync(abi.FnStatForBody, ip, n, false) // decoded before the next host call
	giveInput(in, took)
	if err == ErrNoFunction {
		return StatSync(name)
	}
	if he, ok := err.(*HostError); ok {
		code, msg, _ := strings.Cut(he.Message, " ")
		err = &fs.PathError{Op: "stat", Path: name, Err: &FileError{Code: code, Message: msg}}
	}
	return statInfo(name, res, err)
}

// statInfo decodes a stat record.
func statInfo(name string, res []byte, err error) (fs.FileInfo, error) {
	if err == nil && len(res) < abi.StatSize {
		err = &fs.PathError{Op: "stat", Path: name, Err: &FileError{Code: abi.FileEIO, Message: "a short stat record"}}
	}
	if err != nil {
		return nil, err
	}
	// Read before allocating: res may be the host's answer buffer, which another goroutine's
	// sync call could overwrite while an allocation parks this one (stream.go, callInput).
	size := int64(binary.LittleEndian.Uint64(res[abi.StatSizeAt:]))
	mtime := int64(binary.LittleEndian.Uint64(res[abi.StatMtimeAt:]))
	mode := fs.FileMode(binary.LittleEndian.Uint32(res[abi.StatModeAt:])) | kindMode(res[abi.StatKindAt])
	return &fileInfo{name: path.Base(name), size: size, mtime: time.Unix(0, mtime), mode: mode}, nil
}

// ReadDir lists the directory, sorted by name.
func ReadDir(name string, fn func(entries []fs.DirEntry, err error)) error {
	return fileOp(abi.FnReadDir, "readDir", name, []byte(name), func(res []byte, err error) {
		var entries []fs.DirEntry
		for err == nil && len(res) > 0 {
			if len(res) < 3 || len(res) < 3+int(binary.LittleEndian.Uint16(res[1:])) {
				err = &fs.PathError{Op: "readDir", Path: name, Err: &FileError{Code: abi.FileEIO, Message: "a short directory entry"}}
				break
			}
			n := int(binary.LittleEndian.Uint16(res[1:]))
			entries = append(entries, dirEntry{name: string(res[3 : 3+n]), mode: kindMode(res[0])})
			res = res[3+n:]
		}
		fn(entries, err)
	})
}

// Mkdir makes a directory; with all, its missing parents too, and no error if it exists.
func Mkdir(name string, all bool, fn func(err error)) error {
	return fileOp(abi.FnMkdir, "mkdir", name, append([]byte{flag(all)}, name...), func(_ []byte, err error) { fn(err) })
}

// Remove removes a file or an empty directory; with all, a directory and everything in it.
func Remove(name string, all bool, fn func(err error)) error {
	return fileOp(abi.FnRemove, "remove", name, append([]byte{flag(all)}, name...), func(_ []byte, err error) { fn(err) })
}

// Rename renames (moves) a file or directory within one granted directory.
func Rename(from, to string, fn func(err error)) error {
	return fileOp(abi.FnRename, "rename", from, pathThen(from, []byte(to)), func(_ []byte, err error) { fn(err) })
}

func flag(b bool) byte {
	if b {
		return abi.FlagRecursive
	}
	return 0
}

func kindMode(kind byte) fs.FileMode {
	switch kind {
	case abi.KindDir:
		return fs.ModeDir
	case abi.KindSymlink:
		return fs.ModeSymlink
	case abi.KindOther:
		return fs.ModeIrregular
	}
	return 0
}

// fileInfo is Stat's answer.
type fileInfo struct {
	name  string
	size  int64
	mtime time.Time
	mode  fs.FileMode
}

func (f *fileInfo) Name() string       { return f.name }
func (f *fileInfo) Size() int64        { return f.size }
func (f *fileInfo) Mode() fs.FileMode  { return f.mode }
func (f *fileInfo) ModTime() time.Time { return f.mtime }
func (f *fileInfo) IsDir() bool        { return f.mode.IsDir() }
func (f *fileInfo) Sys() any           { return nil }

// dirEntry is one of ReadDir's entries.
type dirEntry struct {
	name string
	mode fs.FileMode
}

func (d dirEntry) Name() string               { return d.name }
func (d dirEntry) IsDir() bool                { return d.mode.IsDir() }
func (d dirEntry) Type() fs.FileMode          { return d.mode.Type() }
func (d dirEntry) Info() (fs.FileInfo, error) { return nil, fs.ErrInvalid } // use Stat
