//go:build wasip1

package wasmloop

import (
	"errors"

	"github.com/wasmloop/wasmloop/abi"
)

// Response is the answer to one request, Node's http.ServerResponse. The status line and
// headers go out with the first Write or with End; a response ended in one call gets a
// Content-Length, one written in pieces is sent chunked. A Response may be kept and ended
// later, from a timer or another event; once it has ended (and the callback that ended it has
// returned) its methods report ESTATE.
type Response struct {
	x   *exchange
	gen uint32
}

func (r Response) live() *exchange {
	if r.x == nil || r.x.gen != r.gen {
		return nil
	}
	return r.x
}

// SetHeader adds a header field to the response. It has no effect once the headers are sent.
func (r Response) SetHeader(name, value string) {
	x := r.live()
	if x == nil || x.sent {
		return
	}
	x.hdr = append(x.hdr, name...)
	x.hdr = append(x.hdr, ": "...)
	x.hdr = append(x.hdr, value...)
	x.hdr = append(x.hdr, "\r\n"...)
}

// WriteHead sets the status and adds header fields given as name, value pairs:
//
//	res.WriteHead(200, "Content-Type", "text/plain")
func (r Response) WriteHead(status int, nameValues ...string) {
	x := r.live()
	if x == nil {
		return
	}
	x.status = status
	for i := 0; i+1 < len(nameValues); i += 2 {
		r.SetHeader(nameValues[i], nameValues[i+1])
	}
}

// Write sends a piece of the body, sending the status and headers first if they are not out.
func (r Response) Write(p []byte) (int, error) {
	x := r.live()
	switch {
	case x == nil || x.ended:
		return 0, abi.ESTATE
	case x.closed:
		return 0, abi.ECLOSED
	}
	dp, dn := bytesPtr(p)
	var rc int32
	if !x.sent {
		hp, hn := bytesPtr(x.hdr)
		rc = hostRespond(x.h, int32(x.status), hp, hn, dp, dn, 0)
		x.sent = rc >= 0
	} else {
		rc = hostWrite(x.h, dp, dn)
	}
	if rc < 0 {
		return 0, abi.Errno(rc)
	}
	if rc == abi.AboveMark {
		x.full = true
	}
	return len(p), nil
}

// Full reports that the connection has more unsent output than the host's high-water mark
// (256 KiB by default): stop writing until OnDrain's function runs, or memory is spent holding
// what the client has not read yet (past a hard cap the host closes the connection).
func (r Response) Full() bool {
	x := r.live()
	return x != nil && x.full
}

// OnDrain registers fn to run once, when the unsent output falls back below the mark. If the
// response is not Full, fn runs right away.
func (r Response) OnDrain(fn func()) {
	x := r.live()
	if x == nil {
		return
	}
	if !x.full {
		fn()
		return
	}
	x.onDrain = append(x.onDrain, fn)
}

// WriteString is Write for a string.
func (r Response) WriteString(s string) (int, error) { return r.Write([]byte(s)) }

// End sends body (which may be empty) and completes the response.
func (r Response) End(body string) error {
	x := r.live()
	switch {
	case x == nil || x.ended:
		return abi.ESTATE
	case x.closed:
		x.ended = true
		return abi.ECLOSED
	}
	bp, bn := stringPtr(body)
	var rc int32
	if !x.sent {
		hp, hn := bytesPtr(x.hdr)
		rc = hostRespond(x.h, int32(x.status), hp, hn, bp, bn, abi.RespondEnd)
		if rc == int32(abi.EINVAL) {
			// A bad status or header: nothing was sent. Answer 500 rather than leave the
			// client waiting, and report the mistake.
			hostRespond(x.h, 500, nil, 0, nil, 0, abi.RespondEnd)
		}
		if rc < 0 {
			x.ended = true
			x.finished()
			return abi.Errno(rc)
		}
		x.sent = true
	} else {
		var wrc int32
		if bn > 0 {
			wrc = hostWrite(x.h, bp, bn)
		}
		// End even when the last write failed: a response left open would hold the
		// connection (and keep the process alive) for ever. Short of a declared length, the
		// host closes the connection, which is how the client learns it was cut short.
		rc = hostEnd(x.h)
		if wrc < 0 {
			rc = wrc
		}
	}
	x.ended = true
	x.finished()
	return errnoOrNil(rc)
}

// Abort closes the request's connection at once, without ending the response: a client
// reading a response that has started sees it cut short (a chunked body without its last
// chunk, or fewer bytes than its Content-Length), as Go's net/http does when a handler
// panics. A response that has not started gets nothing. The response counts as ended.
func (r Response) Abort() {
	x := r.live()
	if x == nil || x.ended {
		return
	}
	if !x.closed {
		hostClose(x.h)
		x.closed = true
	}
	x.ended = true
	x.finished()
}

// OnClose registers fn to run if the connection closes before the response ends.
func (r Response) OnClose(fn func()) {
	if x := r.live(); x != nil {
		x.onClose = append(x.onClose, fn)
	}
}

// SendFile sends length bytes of the file at path (in a granted directory, --dir) from
// offset as the response's body, and ends the response; done, if not nil, then gets nil, or
// the error that cut it short (the file shrank, the client left). A response cut short is
// aborted, its connection closed, so the client sees it incomplete even when it is chunked.
// The host reads the file
// into the connection itself (ABI 1.6, body_file; from 64 KiB, with sendfile(2) on Linux):
// the bytes never pass through the program's memory, and a large file goes out as the client
// takes it. Set the head first (WriteHead with a Content-Length of length): without one the
// body is chunked, and always copied. The reads run on the event loop — microseconds for a
// file in the page cache (RATIONALE.md, "Files"). A file that goes at once costs the program
// no allocation. Take the head's length and validators from StatFile: the file it held open
// is the one sent, even if the path is replaced in between.
func (r Response) SendFile(path string, offset, length int64, done func(err error)) {
	x := r.live()
	switch {
	case x == nil || x.ended:
		if done != nil {
			done(abi.ESTATE)
		}
		return
	}
	s := fileSend{r: r, x: x, path: path, offset: offset, length: length, done: done}
	if x.closed {
		s.finish(abi.ECLOSED)
		return
	}
	if !x.sent {
		hp, hn := bytesPtr(x.hdr)
		if rc := hostRespond(x.h, int32(x.status), hp, hn, nil, 0, 0); rc < 0 {
			s.finish(abi.Errno(rc))
			return
		}
		x.sent = true
	}
	if !s.send() {
		// The host asks to wait for room: only now does the send need to outlive this call
		// (a file that goes at once allocates nothing).
		h := new(fileSend)
		*h = s
		r.OnDrain(h.resume)
	}
}

// fileSend is a file being sent as a response's body (SendFile).
type fileSend struct {
	r              Response
	x              *exchange
	path           string
	offset, length int64
	done           func(err error)
}

// send asks the host for the rest of the file until it is all sent or the response ends
// (true), or the host asks to wait for on_drain (false).
func (s *fileSend) send() bool {
	for {
		if s.r.live() == nil || s.x.closed {
			s.finish(abi.ECLOSED)
			return true
		}
		pp, pn := stringPtr(s.path)
		rc := hostBodyFile(s.x.h, pp, pn, s.offset, s.length)
		if rc < 0 {
			s.finish(abi.Errno(rc))
			return true
		}
		n := rc &^ abi.BodyFileAboveMark
		s.offset, s.length = s.offset+n, s.length-n
		switch {
		case s.length == 0:
			s.finish(nil)
			return true
		case rc&abi.BodyFileAboveMark != 0:
			s.x.full = true
			return false
		case n == 0:
			s.finish(errFileShrank)
			return true
		}
		// else the host stopped at its scratch buffer's size: ask for the rest
	}
}

// resume goes on after on_drain.
func (s *fileSend) resume() {
	if !s.send() {
		s.r.OnDrain(s.resume)
	}
}

// finish ends the response and tells done. After an error the response is aborted, not
// ended: a chunked body that ended would look whole to the client, with its last chunk.
func (s *fileSend) finish(err error) {
	if err != nil {
		s.r.Abort()
	} else {
		err = s.r.End("")
	}
	if s.done != nil {
		s.done(err)
	}
}

var errFileShrank = errors.New("wasmloop: the file ended before the length sent")

// ErrClosed is what a response's methods return once its client has gone (abi.ECLOSED).
var ErrClosed error = abi.ECLOSED
