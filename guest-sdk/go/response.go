//go:build wasip1

package wasmloop

import (
	"github.com/wasmloop/wasmloop/abi"
)

// Response is the answer to one request, Node's http.ServerResponse. The status line and
// headers go out with the first Write or with End; a response ended in one call gets a
// Content-Length, one written in pieces is sent chunked.
type Response struct {
	h       int64
	status  int
	hdr     []byte // header lines in wire form, "Name: value\r\n"
	sent    bool   // status and headers are out
	ended   bool
	closed  bool // the connection went away first
	isHead  bool
	onClose []func()
}

// SetHeader adds a header field to the response. It has no effect once the headers are sent.
func (r *Response) SetHeader(name, value string) {
	if r.sent {
		return
	}
	r.hdr = append(r.hdr, name...)
	r.hdr = append(r.hdr, ": "...)
	r.hdr = append(r.hdr, value...)
	r.hdr = append(r.hdr, "\r\n"...)
}

// WriteHead sets the status and adds header fields given as name, value pairs:
//
//	res.WriteHead(200, "Content-Type", "text/plain")
func (r *Response) WriteHead(status int, nameValues ...string) {
	r.status = status
	for i := 0; i+1 < len(nameValues); i += 2 {
		r.SetHeader(nameValues[i], nameValues[i+1])
	}
}

// Write sends a piece of the body, sending the status and headers first if they are not out.
func (r *Response) Write(p []byte) (int, error) {
	if r.ended {
		return 0, abi.ESTATE
	}
	if r.closed {
		return 0, abi.ECLOSED
	}
	if !r.sent {
		if err := r.respond(p, 0); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	dp, dn := bytesPtr(p)
	if rc := hostWrite(r.h, dp, dn); rc < 0 {
		return 0, abi.Errno(rc)
	}
	return len(p), nil
}

// WriteString is Write for a string.
func (r *Response) WriteString(s string) (int, error) { return r.Write([]byte(s)) }

// End sends body (which may be empty) and completes the response.
func (r *Response) End(body string) error {
	if r.ended {
		return abi.ESTATE
	}
	if r.closed {
		r.ended = true
		return abi.ECLOSED
	}
	if !r.sent {
		p, n := stringPtr(body)
		hp, hn := bytesPtr(r.hdr)
		rc := hostRespond(r.h, int32(r.status), hp, hn, p, n, abi.RespondEnd)
		if rc < 0 {
			return abi.Errno(rc)
		}
		r.sent, r.ended = true, true
		return nil
	}
	if len(body) > 0 {
		bp, bn := stringPtr(body)
		if rc := hostWrite(r.h, bp, bn); rc < 0 {
			return abi.Errno(rc)
		}
	}
	r.ended = true
	open.del(r.h)
	return errnoOrNil(hostEnd(r.h))
}

// OnClose registers fn to run if the connection closes before the response ends.
func (r *Response) OnClose(fn func()) { r.onClose = append(r.onClose, fn) }

func (r *Response) respond(body []byte, flags int32) error {
	p, n := bytesPtr(body)
	hp, hn := bytesPtr(r.hdr)
	if rc := hostRespond(r.h, int32(r.status), hp, hn, p, n, flags); rc < 0 {
		return abi.Errno(rc)
	}
	r.sent = true
	return nil
}
