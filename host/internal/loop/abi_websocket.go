package loop

import (
	"math"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/websocket"
)

// The WebSocket host functions: ws_accept, ws_send, ws_close, and body_read and pause for a
// socket (abi_handles.go dispatches those two by handle kind).

// WSAccept answers a WebSocket handshake with 101 and turns the request's connection into a
// WebSocket; the request handle goes stale and the returned handle names the socket.
func (a *hostCalls) WSAccept(h abi.Handle, protocol, hdr []byte, flags int32) int64 {
	l := a.l
	ex, e := l.request(a.in, h)
	switch {
	case e != 0:
		return int64(e)
	case ex.up == nil || ex.started || ex.hc.last || l.draining:
		return int64(abi.ESTATE)
	case flags&^abi.WSAcceptDeflate != 0:
		return int64(abi.EINVAL)
	case !a.in.g.HasOnWSMessage():
		return int64(abi.ENOTSUP)
	}
	deflate := flags&abi.WSAcceptDeflate != 0 && ex.up.Deflate
	return l.acceptWS(ex, string(protocol), hdr, deflate)
}

// WSSend sends one message, text (valid UTF-8) or binary.
func (a *hostCalls) WSSend(h abi.Handle, data []byte, flags int32) int32 {
	w, e := a.l.socket(a.in, h)
	switch {
	case e != 0:
		return errno(e)
	case flags&^abi.WSBinary != 0:
		return errno(abi.EINVAL)
	case w.closeSent:
		return errno(abi.ESTATE)
	}
	op := ws.OpText
	if flags&abi.WSBinary != 0 {
		op = ws.OpBinary
	} else if !utf8.Valid(data) {
		return errno(abi.EINVAL) // the peer would have to fail the connection (1007)
	}
	return w.send(op, data)
}

// WSClose starts the closing handshake: on_ws_close follows when the peer answers (or the
// wait times out, with 1006).
func (a *hostCalls) WSClose(h abi.Handle, code int32, reason []byte) int32 {
	w, e := a.l.socket(a.in, h)
	switch {
	case e != 0:
		return errno(e)
	case w.closeSent:
		return errno(abi.ESTATE)
	case code == 0 && len(reason) > 0,
		code != 0 && (code < 0 || code > 4999 || !websocket.ValidCloseCode(ws.StatusCode(code))),
		len(reason) > ws.MaxControlFramePayloadSize-2 || !utf8.Valid(reason):
		return errno(abi.EINVAL)
	}
	w.close(ws.StatusCode(code), string(reason))
	return 0
}

// readMessage copies the rest of the message being delivered that did not fit the inbox.
func (l *Loop) readMessage(in *instance, h abi.Handle, dst []byte) int32 {
	w, ok := l.sockets.get(h)
	if !ok || w.in != in {
		return errno(abi.EBADHANDLE)
	}
	n := copy(dst[:min(len(dst), math.MaxInt32)], w.rest)
	w.rest = w.rest[n:]
	return int32(n)
}

// pauseSocket stops or resumes reading a WebSocket.
func (l *Loop) pauseSocket(in *instance, h abi.Handle, paused bool) int32 {
	w, e := l.socket(in, h)
	if e != 0 {
		return errno(e)
	}
	w.pause(paused)
	return 0
}
