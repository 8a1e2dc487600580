package loop

import "github.com/wasmloop/wasmloop/abi"

// The host functions that take a handle of any kind and do what it means for that kind.

// BodyRead copies the part of a request body or WebSocket message that did not fit the inbox.
func (a *hostCalls) BodyRead(h abi.Handle, dst []byte) int32 {
	switch h.Kind() {
	case abi.KindSocket:
		return a.l.readMessage(a.in, h, dst)
	case abi.KindCall:
		return a.l.readCallPayload(a.in, h, dst)
	}
	return a.l.readRequestBody(a.in, h, dst)
}

// Pause stops (paused=1) or resumes (0) reading a streamed request body or a WebSocket.
func (a *hostCalls) Pause(h abi.Handle, paused int32) int32 {
	if h.Kind() == abi.KindSocket {
		return a.l.pauseSocket(a.in, h, paused != 0)
	}
	return a.l.pauseRequest(a.in, h, paused != 0)
}

// Close closes a listener, clears a timer, or aborts a request's or socket's connection; the
// guest asked for it, so no on_close or on_ws_close follows.
func (a *hostCalls) Close(h abi.Handle) int32 {
	l := a.l
	switch h.Kind() {
	case abi.KindListener:
		ln, ok := l.listeners.get(h)
		if !ok || a.in.retired {
			return errno(abi.EBADHANDLE)
		}
		l.closeListener(h, ln)
		return 0
	case abi.KindTimer:
		t, ok := l.timers.get(h)
		if !ok || t.in != a.in {
			return errno(abi.EBADHANDLE)
		}
		l.freeTimer(t)
		return 0
	case abi.KindRequest:
		ex, ok := l.exchanges.get(h)
		if !ok || ex.in != a.in {
			return errno(abi.EBADHANDLE)
		}
		l.exchanges.remove(h)
		l.dropFile(ex)
		if hc := ex.hc; hc != nil {
			hc.ex, hc.phase, ex.hc = nil, httpIdle, nil
			l.closeConn(hc.c, abi.CloseHost)
		}
		return 0
	case abi.KindCall:
		c, ok := l.calls.get(h)
		if !ok || c.in != a.in {
			return errno(abi.EBADHANDLE)
		}
		l.endCall(c, CallResult{Err: ErrCallDropped})
		return 0
	case abi.KindSocket:
		w, ok := l.sockets.get(h)
		if !ok || w.in != a.in {
			return errno(abi.EBADHANDLE)
		}
		l.sockets.remove(h)
		l.noteSockets()
		w.ended = true
		if c := w.conn; c != nil {
			l.closeConn(c, abi.CloseHost)
		}
		return 0
	}
	return errno(abi.EBADHANDLE)
}

// Ref sets whether a listener or timer keeps the process alive.
func (a *hostCalls) Ref(h abi.Handle, on int32) int32 {
	l := a.l
	var ref *bool
	switch h.Kind() {
	case abi.KindListener:
		ln, ok := l.listeners.get(h)
		if !ok || a.in.retired {
			return errno(abi.EBADHANDLE)
		}
		ref = &ln.ref
	case abi.KindTimer:
		t, ok := l.timers.get(h)
		if !ok || t.in != a.in {
			return errno(abi.EBADHANDLE)
		}
		ref = &t.ref
	default:
		return errno(abi.EBADHANDLE)
	}
	want := on != 0
	if *ref != want {
		*ref = want
		if want {
			l.refs++
		} else {
			l.refs--
		}
	}
	return 0
}
