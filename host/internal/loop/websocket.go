package loop

import (
	"time"

	"github.com/gobwas/ws"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/http1"
	"github.com/wasmloop/wasmloop/host/internal/websocket"
)

// WebSockets (ABI 1.3). A request whose head is a valid opening handshake reaches the guest
// flagged abi.HeadWebSocket; if the guest calls ws_accept, the host queues the 101 and the
// connection's protocol becomes a wsConn: its bytes go through a websocket.Reader, in the same
// read path and with the same back-pressure as requests, and come out as guest events. The
// handshake is checked from the connection's own buffer, so no byte read past it is lost.

const (
	// wsCloseTimeout bounds the wait for the peer's close frame after ours.
	wsCloseTimeout = 5 * time.Second
	// wsTrimAbove is the message buffer a connection keeps between messages.
	wsTrimAbove = 64 << 10
	// wsCompressMin is the smallest message worth compressing when deflate was negotiated.
	wsCompressMin = 64
)

// wsConn is the WebSocket protocol on one accepted connection. Its handle (kind
// abi.KindSocket) is what the guest names it by.
type wsConn struct {
	l         *Loop
	in        *instance // the instance it belongs to
	handle    abi.Handle
	conn      *Conn // nil once the connection is closed
	rd        websocket.Reader
	deflate   bool
	opened    bool  // on_ws_open was delivered
	closeSent bool  // our close frame is queued: nothing more may be sent
	ended     bool  // the guest has been told it closed (or will be, or need not be)
	paused    bool  // the guest paused reading
	needDrain bool  // a send answered AboveMark: on_drain is owed
	pinged    bool  // a ping went out and the peer has sent nothing since
	closeAt   int64 // loop clock when our close frame was queued
	rest      []byte
	held      int64 // the Reader's buffers as counted against the buffer budget
}

// wsShared is the WebSocket protocol's per-loop state, shared by every socket.
type wsShared struct {
	writer   websocket.Writer    // compresses messages; holds nothing between them
	inflater *websocket.Inflater // shared by every socket's Reader; made on first use
	frame    [16]byte            // a frame header written ahead of a large payload
}

// checkUpgrade looks at a request that asked to upgrade. A WebSocket handshake that is valid
// is returned (copied out of the read buffer: the guest may accept it later); an invalid one
// is answered here (400, or 426 for another version) and rejected is set. An upgrade to
// another protocol is the guest's plain request.
func (hc *httpConn) checkUpgrade(req *http1.Request) (up *websocket.Upgrade, rejected bool) {
	l, c := hc.l, hc.c
	if !websocket.Requested(req.Headers) {
		return nil, false
	}
	u, err := websocket.CheckUpgrade(req.Method, req.Major, req.Minor, req.Headers)
	if err != nil {
		l.answered(err.Status, l.clock(), nil, c)
		c.out = err.AppendResponse(l.outBuf(c))
		hc.phase = httpIdle
		l.closeWhenWritten(c)
		return nil, true
	}
	n := len(u.Key)
	for _, p := range u.Protocols {
		n += len(p)
	}
	buf := make([]byte, 0, n)
	up = &websocket.Upgrade{Deflate: u.Deflate, DeflateOffered: u.DeflateOffered, DeflateParams: u.DeflateParams}
	buf = append(buf, u.Key...)
	up.Key = buf[:len(buf):len(buf)]
	for _, p := range u.Protocols {
		s := len(buf)
		buf = append(buf, p...)
		up.Protocols = append(up.Protocols, buf[s:len(buf):len(buf)])
	}
	return up, false
}

// acceptWS answers ex's handshake with 101 and makes its connection a WebSocket; the request
// handle goes stale and the socket's handle is returned. The arguments have been checked
// (abi_websocket.go).
func (l *Loop) acceptWS(ex *exchange, protocol string, hdr []byte, deflate bool) int64 {
	hc := ex.hc
	c := hc.c
	out, err := websocket.AppendAccept(l.outBuf(c), ex.up, protocol, deflate, hdr)
	if err != nil {
		return int64(abi.EINVAL) // nothing was sent; the guest may still respond
	}
	c.out = out
	l.answered(101, ex.at, ex, c)
	l.exchanges.remove(ex.handle)
	ex.hc, hc.ex, hc.phase = nil, nil, httpIdle
	hc.body = nil
	l.holdBuffered(&hc.held, 0) // the HTTP protocol is done with this connection
	l.recycle(ex)
	w := &wsConn{l: l, in: ex.in, conn: c, deflate: deflate}
	w.rd.MaxMessage = l.cfg.WSMaxMessage
	w.rd.Deflate = deflate
	if deflate {
		if l.wsScratch.inflater == nil {
			l.wsScratch.inflater = websocket.NewInflater()
		}
		w.rd.Inflater = l.wsScratch.inflater
	}
	w.handle = l.sockets.add(w)
	l.noteSockets()
	c.proto = w
	c.since = l.clock()
	l.queue.flush(c)
	l.queue.resume(c) // on_ws_open, then the frames that may already be here
	return int64(w.handle)
}

// serve turns received bytes into events and returns how many it used. It stops while the
// guest has the socket paused or the peer leaves our output unread.
func (w *wsConn) serve(data []byte) int {
	l, c := w.l, w.conn
	w.open()
	c.since, w.pinged = l.clock(), false
	off := 0
	for off < len(data) {
		if c.closed() || w.ended {
			return len(data) // closing: what still arrives is discarded
		}
		if w.paused && !w.closeSent || l.behind(c) {
			return off // after our close frame, the peer's answer is read paused or not
		}
		ev, n, err := w.rd.Next(data[off:])
		off += n
		if err != nil {
			w.fail(err.Code, err.Reason)
			return len(data)
		}
		if !l.holdBuffered(&w.held, w.rd.Held()) {
			w.rd.Reset()
			w.rd.Trim(0)
			l.holdBuffered(&w.held, 0)
			w.fail(statusTryAgainLater, "the server is holding too many messages; try again later")
			return len(data)
		}
		switch ev.Kind {
		case websocket.None:
			return off
		case websocket.Message:
			if !w.closeSent { // after our close, messages are dropped (RFC 6455 §1.4)
				w.deliver(&ev)
			}
		case websocket.Ping:
			if !w.closeSent {
				c.out = websocket.AppendFrame(l.outBuf(c), ws.OpPong, ev.Payload, true)
				l.queue.flush(c)
			}
		case websocket.Close:
			if !w.closeSent {
				// Echo the code (AppendClose sends an empty body for 1005), then close:
				// the server closes the TCP connection first (RFC 6455 §7.1.1).
				c.out = websocket.AppendClose(l.outBuf(c), ev.Code, "")
				w.closeSent = true
			}
			l.closeWhenWritten(c)
			w.end(int32(ev.Code), string(ev.Payload))
			return len(data)
		}
	}
	return off
}

func (w *wsConn) wantsInput() bool   { return !w.paused || w.closeSent }
func (w *wsConn) duplex() bool       { return false }
func (w *wsConn) readTarget() []byte { return nil }
func (w *wsConn) readInto(int)       {}

// resume continues a WebSocket after its accept or a resume: open it, take the bytes already
// here, then read what the kernel holds.
func (w *wsConn) resume() {
	w.open()
	c := w.conn
	if c == nil || c.closed() {
		return // on_ws_open closed it (Terminate, or a send past the output cap)
	}
	if w.l.reading(c) {
		w.l.serveBuffered(c)
	}
}

// peerEOF: gone without a close frame; on_ws_close says 1006.
func (w *wsConn) peerEOF() { w.l.closeConn(w.conn, abi.ClosePeer) }

func (w *wsConn) drained() {
	if w.needDrain {
		w.needDrain = false
		w.l.queue.drainNotice(w.handle)
	}
}

func (w *wsConn) flushed() {}

// listenerClosed: a WebSocket outlives its listener, as in Node; a shutdown closes it.
func (w *wsConn) listenerClosed() {}

// shutdown starts the closing handshake with 1001.
func (w *wsConn) shutdown() {
	if !w.closeSent && !w.ended {
		w.close(ws.StatusGoingAway, "server shutting down")
	}
}

// closed: the guest hears on_ws_close with 1006 unless it was told already.
func (w *wsConn) closed(int32) {
	w.conn = nil
	w.rd.Trim(0)
	w.l.holdBuffered(&w.held, 0)
	w.end(int32(ws.StatusAbnormalClosure), "")
}

// sweep applies a WebSocket's timeouts: the closing handshake's, the idle timeout (a ping
// first, when pings are on), and a peer that reads nothing of what we send.
func (w *wsConn) sweep(now int64) {
	l, c := w.l, w.conn
	idle := time.Duration(now - c.since)
	switch {
	case c.phase == connClosing:
		if c.outLen() > 0 && time.Duration(now-c.wrote) > wsCloseTimeout {
			l.closeConn(c, abi.CloseHost)
		}
	case w.closeSent:
		if time.Duration(now-w.closeAt) > wsCloseTimeout {
			l.closeConn(c, abi.CloseHost)
		}
	case c.outLen() > 0 && time.Duration(now-c.wrote) > l.cfg.WSIdleTimeout:
		l.closeConn(c, abi.CloseHost) // it has read nothing for that long
	case w.paused:
		// The guest holds it: silence is expected.
	case idle > l.cfg.WSIdleTimeout:
		w.close(ws.StatusGoingAway, "idle timeout")
	case l.cfg.WSPingInterval > 0 && !w.pinged && idle > l.cfg.WSPingInterval:
		c.out = websocket.AppendFrame(l.outBuf(c), ws.OpPing, nil, true)
		w.pinged = true
		l.queue.flush(c)
	}
}

// open delivers on_ws_open once, before any message.
func (w *wsConn) open() {
	if w.opened {
		return
	}
	w.opened = true
	l := w.l
	if w.ended || !w.in.live() {
		return
	}
	rc, err := w.in.g.OnWSOpen(w.handle)
	if err != nil {
		l.guestFailed(w.in, err, nil)
	} else if rc != 0 {
		l.logf("%s", callbackResult(abi.ExportOnWSOpen, rc))
	}
	l.afterCallback()
}

// deliver hands one message to the guest: as much as fits the inbox, the rest through
// body_read during the call.
func (w *wsConn) deliver(ev *websocket.Event) {
	l := w.l
	inbox, ok := w.in.inbox()
	if !ok {
		w.fail(ws.StatusInternalServerError, "the application has no inbox")
		return
	}
	k := copy(inbox, ev.Payload)
	var flags int32
	if ev.Op == ws.OpBinary {
		flags |= abi.WSBinary
	}
	if k < len(ev.Payload) {
		flags |= abi.WSMore
		w.rest = ev.Payload[k:]
	}
	rc, err := w.in.g.OnWSMessage(w.handle, uint32(len(ev.Payload)), flags)
	w.rest = nil
	if err != nil {
		l.guestFailed(w.in, err, nil) // every socket of the instance is closed with 1011
		return
	}
	if rc != 0 {
		l.logf("%s", callbackResult(abi.ExportOnWSMessage, rc))
		w.fail(ws.StatusInternalServerError, "the application failed")
	}
	l.afterCallback()
	w.rd.Trim(wsTrimAbove)
	l.holdBuffered(&w.held, w.rd.Held())
}

// statusTryAgainLater is RFC 6455's 1013 (registered by IANA): the server is overloaded.
const statusTryAgainLater ws.StatusCode = 1013

// send queues one message (text already checked to be UTF-8). A message that could take the
// unsent output past the cap closes the connection before any work is done on it: compressing
// 512 MiB first, to see whether it fits, would cost that much memory.
func (w *wsConn) send(op ws.OpCode, data []byte) int32 {
	l, c := w.l, w.conn
	if c.outLen()+len(data) > l.cfg.MaxOutput {
		l.logf("closing a WebSocket: a %d-byte message with %d bytes unsent passes the output cap (%d)", len(data), c.outLen(), l.cfg.MaxOutput)
		l.closeConn(c, abi.CloseHost)
		return errno(abi.ECLOSED)
	}
	switch {
	case w.deflate && len(data) >= wsCompressMin:
		out, err := l.wsScratch.writer.AppendMessage(l.outBuf(c), op, data)
		if err != nil {
			return errno(abi.EINVAL)
		}
		c.out = out
	case len(data) >= directWrite:
		l.writeThrough(c, websocket.AppendHeader(l.wsScratch.frame[:0], op, len(data)), data, nil)
	default:
		c.out = websocket.AppendFrame(l.outBuf(c), op, data, true)
	}
	return l.queued(c, &w.needDrain)
}

// close starts the closing handshake from our side.
func (w *wsConn) close(code ws.StatusCode, reason string) {
	l, c := w.l, w.conn
	c.out = websocket.AppendClose(l.outBuf(c), code, reason)
	w.closeSent, w.closeAt = true, l.clock()
	l.queue.flush(c)
	if w.paused {
		// The peer's answer ends the handshake: a paused socket reads it too (messages
		// after our close are dropped anyway), or the close waited for its timeout and the
		// program heard 1006 rather than the peer's code.
		c.unread = true
		l.queue.resume(c)
	}
}

// fail fails the connection (RFC 6455 §7.1.7): a close frame with code, then the close.
func (w *wsConn) fail(code ws.StatusCode, reason string) {
	if !w.closeSent {
		w.close(code, reason)
	}
	w.l.closeWhenWritten(w.conn)
	w.end(int32(code), reason)
}

// end queues on_ws_close, delivered after the current callback; the handle stays valid
// (sends answer ECLOSED or ESTATE) until then.
func (w *wsConn) end(code int32, reason string) {
	if w.ended {
		return
	}
	w.ended = true
	w.l.queue.closeNotice(closeNote{in: w.in, h: w.handle, code: code, text: reason})
}

// deliverWSClose calls on_ws_close for a queued notice. During the call the handle answers
// ECLOSED (the socket has ended); it is stale afterwards (ABI.md).
func (l *Loop) deliverWSClose(n closeNote) {
	if _, ok := l.sockets.get(n.h); !ok {
		return // the guest already let go of it
	}
	if !n.in.live() {
		l.sockets.remove(n.h)
		l.noteSockets()
		return
	}
	size := 0
	if inbox, ok := n.in.inbox(); ok {
		size = copy(inbox, n.text)
	}
	rc, err := n.in.g.OnWSClose(n.h, n.code, uint32(size))
	l.sockets.remove(n.h)
	l.noteSockets()
	if err != nil {
		l.guestFailed(n.in, err, nil)
	} else if rc != 0 {
		l.logf("%s", callbackResult(abi.ExportOnWSClose, rc))
	}
}

// failSockets closes every WebSocket of an instance that trapped, with 1011: the replacement
// knows nothing of them.
func (l *Loop) failSockets(in *instance) {
	var all []*wsConn
	l.sockets.each(func(_ abi.Handle, w *wsConn) {
		if w.in == in {
			all = append(all, w)
		}
	})
	for _, w := range all {
		l.sockets.remove(w.handle)
		l.noteSockets()
		w.ended = true
		if c := w.conn; c != nil && !c.closed() {
			if !w.closeSent {
				w.close(ws.StatusInternalServerError, "the application failed")
			}
			l.closeWhenWritten(c)
		}
	}
}

// socket finds the open WebSocket h names: EBADHANDLE for an unknown or stale handle,
// ECLOSED once its connection is gone or failing.
func (l *Loop) socket(in *instance, h abi.Handle) (*wsConn, abi.Errno) {
	w, ok := l.sockets.get(h)
	if !ok || w.in != in {
		return nil, abi.EBADHANDLE
	}
	if c := w.conn; c != nil && !c.closed() && !w.ended {
		return w, 0
	}
	return nil, abi.ECLOSED
}

// pause stops or resumes reading a WebSocket.
func (w *wsConn) pause(paused bool) {
	if w.paused == paused {
		return
	}
	w.paused = paused
	if !paused {
		c := w.conn
		c.since = w.l.clock()
		c.unread = true
		w.l.queue.resume(c)
	}
}
