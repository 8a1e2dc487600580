//go:build wasip1

package wasmloop

import (
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

// OnClose registers fn to run if the connection closes before the response ends.
func (r Response) OnClose(fn func()) {
	if x := r.live(); x != nil {
		x.onClose = append(x.onClose, fn)
	}
}
