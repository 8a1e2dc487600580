package loop

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/poll"
)

// body_file (ABI 1.6): a response's body from a granted file, read by the host on the loop
// into the connection's output, so that the bytes never enter guest memory and no goroutine
// carries them — what a static file server spends most of its time on otherwise. The read is
// a pread(2) on the loop: microseconds for a file in the page cache, but a file on a slow
// disk blocks the worker for as long as it takes, as nginx's reads do (RATIONALE.md, "Files").
// A large body on a socket goes with sendfile(2) instead (sendFile): from the page cache to
// the socket, never through a buffer of the host's.

// FileBody is a file opened for body_file (Config.OpenFile).
type FileBody interface {
	ReadAt(p []byte, off int64) (int, error)
	Fd() uintptr // for sendfile(2)
	Close() error
}

// sendfileMin is the body from which sendFile is used: below it, the head and the body go
// out in one write, which costs less than a write for the head and a sendfile for the body.
const sendfileMin = 64 << 10

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
	f, errno := l.continuedFile(ex, path, offset)
	if errno != 0 {
		return int64(errno)
	}
	reused := f != nil
	if f == nil {
		if f, errno = l.cfg.OpenFile(string(path)); errno != 0 {
			return int64(errno)
		}
	}
	sent := l.bodyFile(ex, f, offset, length)
	if sent >= 0 && sent&abi.BodyFileAboveMark != 0 && l.keepFile(ex, f, path, offset+sent&^abi.BodyFileAboveMark) {
		return sent // the guest asks for the rest after on_drain
	}
	switch {
	case ex.file.f == f && ex.file.held:
		// The response's file until it ends: a next part of it (a multipart range answer)
		// is sent from the same version.
		ex.file.next, ex.file.sent = anyOffset, true
	case ex.file.f == f:
		l.dropFile(ex)
	case !reused: // a kept file the connection's close dropped already is not closed again
		f.Close()
	}
	return sent
}

// The file of a response that waits for room stays open until the guest asks for the rest
// (exchange.file): opened again by path, a file replaced meanwhile (renamed over, as a
// deployment does) sent the new file's bytes after the old one's, under the old one's length
// and validators. Kept open, the response is the old file's to the end; a file changed in
// place (same inode, new size or modification time) cuts the response (EINVAL), since no
// bytes of one version would follow those of the other.

// bodyFileState is the file a response's body is being sent from, kept between body_file
// calls while the guest waits for on_drain, or held for the response by statForBody.
type bodyFileState struct {
	f    FileBody
	path string
	next int64 // the offset the guest's next call continues from, or anyOffset
	id   fileID
	held bool // statForBody's: the response's file until it ends or another path is sent
	sent bool // some of it went out: the next call checks it was not changed in place
}

// anyOffset is bodyFileState.next for a held file with no send under way: the response's
// next body_file of its path may start at any offset.
const anyOffset = -1

// fileID is what tells one version of a file from another.
type fileID struct {
	dev, ino    uint64
	size, mtime int64
}

func statID(f FileBody) (fileID, bool) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileID{}, false
	}
	return idOf(&st), true
}

func idOf(st *unix.Stat_t) fileID {
	return fileID{uint64(st.Dev), uint64(st.Ino), st.Size, st.Mtim.Nano()}
}

// openStatted is a FileBody that kept the fstat(2) its open made (files' openat2 path).
type openStatted interface{ OpenStat() *unix.Stat_t }

// statForBody is wasmloop:fs.statForBody (ABI 1.8): in = request handle u64, path; the
// result is the file's stat record, and a regular file stays open, held by the request, for
// its body_file of the same path. A head's Content-Length, ETag and Last-Modified then
// describe the bytes that go: a stat by path and an open by path, as Node's send makes them,
// may meet two versions of a file renamed over between them (a deployment). Go's
// http.ServeFile and nginx stat the file they opened, as this does. Whatever cannot be
// opened as a regular file — a directory, something missing, a refusal — is answered by
// the path's stat (wasmloop:fs.stat), with its precise error.
func (a *hostCalls) statForBody(in []byte) ([]byte, bool) {
	l := a.l
	if len(in) < 8 {
		return []byte(abi.FileEINVAL + " the input is shorter than a request handle"), true
	}
	ex, e := l.request(a.in, abi.Handle(binary.LittleEndian.Uint64(in)))
	if e != 0 {
		return []byte(abi.FileEINVAL + " no such request open: " + e.Error()), true
	}
	path := in[8:]
	name := string(path) // once: the open and the held file share it
	f, errno := l.cfg.OpenFile(name)
	if errno != 0 {
		st, ok := l.hostFunc(statName)
		if !ok || st.Sync == nil {
			return []byte(abi.FileEACCES + " no directory is granted (wasmloop run --dir)"), true
		}
		return l.runHostFunc(a.in.ctx, statName, st.Sync, path)
	}
	var st unix.Stat_t
	if o, ok := f.(openStatted); ok {
		st = *o.OpenStat()
	} else if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return []byte(abi.FileEIO + " " + err.Error()), true
	}
	l.dropFile(ex)
	ex.file = bodyFileState{f: f, path: name, next: anyOffset, id: idOf(&st), held: true}
	rec := make([]byte, abi.StatSize)
	binary.LittleEndian.PutUint64(rec[abi.StatSizeAt:], uint64(st.Size))
	binary.LittleEndian.PutUint64(rec[abi.StatMtimeAt:], uint64(st.Mtim.Nano()))
	binary.LittleEndian.PutUint32(rec[abi.StatModeAt:], uint32(st.Mode)&0o777)
	rec[abi.StatKindAt] = abi.KindFile
	return rec, false
}

// statName is wasmloop:fs.stat, as hostFunc takes it.
var statName = []byte(abi.FnStat)

// continuedFile returns the kept file when this call continues where the last stopped (the
// same path, from the offset it reached), or nil: any other kept file is closed. EINVAL: the
// file changed since (the response must be cut).
func (l *Loop) continuedFile(ex *exchange, path []byte, offset int64) (FileBody, abi.Errno) {
	k := &ex.file
	if k.f == nil {
		return nil, 0
	}
	if k.path != string(path) || k.next != offset && !k.held {
		l.dropFile(ex)
		return nil, 0
	}
	if !k.sent {
		// Opened for this response and nothing sent yet: the version its head describes, as
		// it was when opened (nginx does not look again either).
		return k.f, 0
	}
	if id, ok := statID(k.f); !ok || id != k.id {
		l.dropFile(ex)
		return nil, abi.EINVAL
	}
	return k.f, 0
}

// keepFile keeps f open for the guest's next call, from offset next; false if it cannot be
// identified (the caller closes it).
func (l *Loop) keepFile(ex *exchange, f FileBody, path []byte, next int64) bool {
	k := &ex.file
	if k.f == f {
		k.next, k.sent = next, true
		return true
	}
	id, ok := statID(f)
	if !ok {
		return false
	}
	l.dropFile(ex)
	*k = bodyFileState{f: f, path: string(path), next: next, id: id, sent: true}
	return true
}

// dropFile closes the file an exchange kept, if any: its response ended, or went.
func (l *Loop) dropFile(ex *exchange) {
	if ex.file.f != nil {
		ex.file.f.Close()
		ex.file = bodyFileState{}
	}
}

// bodyFile copies the file's bytes a scratch buffer at a time until length is sent, the
// file ends, or the output is above the mark.
func (l *Loop) bodyFile(ex *exchange, f FileBody, offset, length int64) int64 {
	if poll.HasSendfile && ex.hc.c.fd >= 0 && ex.mode != frameChunked && length >= sendfileMin {
		if sent, ok := l.sendFile(ex, f, offset, length); ok {
			return sent
		}
	}
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

// sendFile writes the pending output (the head), then sends the file from offset to the
// socket with sendfile(2) until length is sent, the file ends or the socket is full. A full
// socket answers like a full output (abi.BodyFileAboveMark, then on_drain), but the drain
// waits for the socket's writable edge (Conn.sockFull): nothing is kept in the host. ok is
// false, with nothing of the file sent, where the file has no sendfile; the caller copies.
func (l *Loop) sendFile(ex *exchange, f FileBody, offset, length int64) (result int64, ok bool) {
	c := ex.hc.c
	if c.outLen() > 0 {
		// The head (and any answer before it) goes first, held by the kernel for the file's
		// first bytes (MSG_MORE) so that they share full segments.
		n, err := poll.WriteMore(c.fd, c.out[c.outOff:])
		if n > 0 {
			c.outOff += n
			l.countSent(c, n)
			c.wrote = l.clock()
		}
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			l.closeConn(c, abi.ClosePeer)
			return int64(abi.ECLOSED), true
		}
		if c.outLen() > 0 { // the head waits for room: so does the file
			ex.needDrain = true
			return abi.BodyFileAboveMark, true
		}
		l.putBuf(c.out)
		c.out, c.outOff = nil, 0
	}
	var sent int64
	for sent < length {
		off := offset + sent
		n, err := poll.Sendfile(c.fd, int(f.Fd()), &off, int(min(length-sent, 1<<30)))
		if n > 0 {
			sent += int64(n)
			if ex.mode == frameLength {
				ex.remaining -= int64(n)
			}
			l.countSent(c, n)
			c.wrote = l.clock()
		}
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			c.sockFull, ex.needDrain = true, true
			c.wrote = l.clock() // the stall clock starts (httpConn.sweep)
			return sent | abi.BodyFileAboveMark, true
		case (err == unix.ENOSYS || err == unix.EINVAL) && sent == 0:
			return 0, false // no sendfile for this file or system
		case err != nil:
			l.closeConn(c, abi.ClosePeer)
			return int64(abi.ECLOSED), true
		case n == 0:
			return sent, true // the file ended
		}
	}
	return sent, true
}
