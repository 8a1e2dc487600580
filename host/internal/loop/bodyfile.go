package loop

import (
	"github.com/wasmloop/wasmloop/abi"
)

// body_file (ABI 1.6): a response's body from a granted file, read by the host on the loop
// into the connection's output, so that the bytes never enter guest memory and no goroutine
// carries them — what a static file server spends most of its time on otherwise. The read is
// a pread(2) on the loop: microseconds for a file in the page cache, but a file on a slow
// disk blocks the worker for as long as it takes, as nginx's reads do (RATIONALE.md, "Files").

// FileBody is a file opened for body_file (Config.OpenFile).
type FileBody interface {
	ReadAt(p []byte, off int64) (int, error)
	Close() error
}

// fileScratch is the most body_file reads at a time; the loop's scratch buffer for it.
const fileScratch = 256 << 10

// BodyFile appends up to length bytes of the file at path (a guest path in a granted
// directory) from offset to a started response's body. The result is the count appended,
// with abi.BodyFileAboveMark set when the output passed the high-water mark: the guest waits
// for on_drain and asks for the rest. A count short of length, without the bit, means the
// file ended.
func (a *hostCalls) BodyFile(h abi.Handle, path []byte, offset, length int64) int64 {
	l := a.l
	ex, e := l.request(a.in, h)
	switch {
	case e != 0:
		return int64(e)
	case !ex.started:
		return int64(abi.ESTATE)
	case offset < 0 || length < 0:
		return int64(abi.EINVAL)
	case ex.mode == frameNone || length == 0:
		return 0 // a HEAD, a 304: no body goes out
	case ex.mode == frameLength && length > ex.remaining:
		return int64(abi.EINVAL)
	case l.cfg.OpenFile == nil:
		return int64(abi.EDENIED)
	}
	f, errno := l.cfg.OpenFile(string(path))
	if errno != 0 {
		return int64(errno)
	}
	defer f.Close()
	return l.bodyFile(ex, f, offset, length)
}

// bodyFile copies the file's bytes a scratch buffer at a time until length is sent, the
// file ends, or the output is above the mark.
func (l *Loop) bodyFile(ex *exchange, f FileBody, offset, length int64) int64 {
	if l.fileBuf == nil {
		l.fileBuf = make([]byte, fileScratch)
	}
	c := ex.hc.c
	var sent int64
	for sent < length {
		n := min(int64(len(l.fileBuf)), length-sent)
		got, err := f.ReadAt(l.fileBuf[:n], offset+sent)
		if got > 0 {
			rc := l.writeBody(ex, l.fileBuf[:got])
			sent += int64(got)
			if rc < 0 {
				return int64(rc)
			}
			if rc == abi.AboveMark {
				return sent | abi.BodyFileAboveMark
			}
		}
		if err != nil || c.closed() { // the end of the file (or a read error: the count says)
			break
		}
	}
	return sent
}
