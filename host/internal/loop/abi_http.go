package loop

import (
	"math"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/http1"
	"github.com/wasmloop/wasmloop/host/internal/poll"
)

// The HTTP host functions: listen, respond, write, end, and body_read and pause for a request
// (abi_handles.go dispatches those two by handle kind).

// Listen opens (or, after an instance replacement, takes over) a listening socket.
func (a *hostCalls) Listen(addrBytes []byte, port, flags int32) int64 {
	l, in := a.l, a.in
	if in.g == nil || in.inboxLen == 0 || in.retired {
		return int64(abi.ESTATE)
	}
	if !in.g.HasOnRequest() {
		return int64(abi.ENOTSUP)
	}
	if flags&^abi.ListenStreamBody != 0 || port < 0 || port > 65535 {
		return int64(abi.EINVAL)
	}
	if flags&abi.ListenStreamBody != 0 && !in.g.HasOnBody() {
		return int64(abi.ENOTSUP)
	}
	addr, err := poll.ParseAddr(string(addrBytes))
	if err != nil {
		return int64(abi.EINVAL)
	}
	if l.draining || l.stopped {
		return int64(abi.ESTATE)
	}
	if l.cfg.AllowListen != nil && l.cfg.AllowListen(string(addrBytes), int(port)) != nil {
		return int64(abi.EDENIED) // the refusal is logged, once, by the check
	}
	if l.listeners.len() >= maxListeners {
		return int64(abi.ELIMIT)
	}
	return l.listen(addr, int(port), flags&abi.ListenStreamBody != 0)
}

// request finds the request h names for the instance in: EBADHANDLE for an unknown or stale
// handle or another instance's, ECLOSED once its connection is gone (on_close follows).
func (l *Loop) request(in *instance, h abi.Handle) (*exchange, abi.Errno) {
	ex, ok := l.exchanges.get(h)
	if !ok || ex.in != in {
		return nil, abi.EBADHANDLE
	}
	if ex.hc == nil {
		return nil, abi.ECLOSED
	}
	return ex, 0
}

// Respond starts a response; with abi.RespondEnd it is the whole response.
func (a *hostCalls) Respond(h abi.Handle, status int32, hdr, body []byte, flags int32) int32 {
	ex, e := a.l.request(a.in, h)
	switch {
	case e != 0:
		return errno(e)
	case ex.started:
		return errno(abi.ESTATE)
	case status < 200 || status > 999 || flags&^abi.RespondEnd != 0:
		return errno(abi.EINVAL)
	}
	info, err := http1.CheckHeaderBlock(hdr)
	if err != nil || info.HasTransferEncoding {
		return errno(abi.EINVAL)
	}
	return a.l.respond(ex, int(status), hdr, info, body, flags&abi.RespondEnd != 0)
}

// Write appends body bytes to a started response.
func (a *hostCalls) Write(h abi.Handle, data []byte) int32 {
	ex, e := a.l.request(a.in, h)
	switch {
	case e != 0:
		return errno(e)
	case !ex.started:
		return errno(abi.ESTATE)
	}
	return a.l.writeBody(ex, data)
}

// End completes a started response.
func (a *hostCalls) End(h abi.Handle) int32 {
	ex, e := a.l.request(a.in, h)
	switch {
	case e == abi.ECLOSED: // the connection is gone; the guest is done with the handle
		a.l.exchanges.remove(h)
		return 0
	case e != 0:
		return errno(e)
	case !ex.started:
		return errno(abi.ESTATE)
	}
	a.l.endBody(ex)
	return 0
}

// readRequestBody copies body bytes that did not fit the inbox.
func (l *Loop) readRequestBody(in *instance, h abi.Handle, dst []byte) int32 {
	ex, ok := l.exchanges.get(h)
	if !ok || ex.in != in {
		return errno(abi.EBADHANDLE)
	}
	n := copy(dst[:min(len(dst), math.MaxInt32)], ex.body[ex.bodyOff:])
	ex.bodyOff += n
	return int32(n)
}

// pauseRequest stops or resumes reading a streamed request body.
func (l *Loop) pauseRequest(in *instance, h abi.Handle, paused bool) int32 {
	ex, e := l.request(in, h)
	if e != 0 {
		return errno(e)
	}
	return l.pauseBody(ex, paused)
}
