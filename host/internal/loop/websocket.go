package loop

import (
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/http1"
	"github.com/wasmloop/wasmloop/host/internal/websocket"
)

// WebSockets (ABI 1.3). A request whose head is a valid opening handshake reaches the guest
// flagged abi.HeadWebSocket; if the guest calls ws_accept, the host queues the 101 and the
// connection stops being HTTP: its bytes go through a websocket.Reader, in the same read
// path and with the same back-pressure as requests, and come out as guest events. The
// handshake is checked from the connection's own buffer, so no byte read past it is lost.

const (
	// wsCloseTimeout bounds the wait for the peer's close frame after ours.
	wsCloseTimeout = 5 * time.Second
	// wsTrimAbove is the message buffer a connection keeps between messages.
	wsTrimAbove = 64 << 10
	// wsCompressMin is the smallest message worth compressing when deflate was negotiated.
	wsCompressMin = 64
)

// wsConn is one accepted WebSocket.
type wsConn struct {
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
}

// checkUpgrade looks at a request that asked to upgrade. A WebSocket handshake that is valid
// is returned (copied out of the read buffer: the guest may accept it later); an invalid one
// is answered here (400, or 426 for another version) and rejected is set. An upgrade to
// another protocol is the guest's plain request.
func (l *Loop) checkUpgrade(c *Conn, req *http1.Request) (up *websocket.Upgrade, rejected bool) {
	if !websocket.Requested(req.Headers) {
		return nil, false
	}
	u, err := websocket.CheckUpgrade(req.Method, req.Major, req.Minor, req.Headers)
	if err != nil {
		c.out = err.AppendResponse(l.outBuf(c))
		c.closeAfter, c.inBody = true, false
		l.markDirty(c)
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

// WSAccept answers a WebSocket handshake with 101 and turns the request's connection into a
// WebSocket; the request handle goes stale and the returned handle names the socket.
func (l *Loop) WSAccept(h abi.Handle, protocol, hdr []byte, flags int32) int64 {
	ex, ok := l.exchanges.get(h)
	if !ok {
		return int64(abi.EBADHANDLE)
	}
	c := ex.conn
	if c == nil {
		return int64(abi.ECLOSED)
	}
	if ex.up == nil || ex.started || c.noMore || l.draining {
		return int64(abi.ESTATE)
	}
	if flags&^abi.WSAcceptDeflate != 0 {
		return int64(abi.EINVAL)
	}
	if !l.inst.HasOnWSMessage() {
		return int64(abi.ENOTSUP)
	}
	deflate := flags&abi.WSAcceptDeflate != 0 && ex.up.Deflate
	out, err := websocket.AppendAccept(l.outBuf(c), ex.up, string(protocol), deflate, hdr)
	if err != nil {
		return int64(abi.EINVAL) // nothing was sent; the guest may still respond
	}
	c.out = out
	l.exchanges.remove(ex.handle)
	ex.conn, c.ex = nil, nil
	l.recycle(ex)
	w := &wsConn{conn: c, deflate: deflate}
	w.rd.MaxMessage = l.cfg.WSMaxMessage
	w.rd.Deflate = deflate
	if deflate {
		if l.inflater == nil {
			l.inflater = websocket.NewInflater()
		}
		w.rd.Inflater = l.inflater
	}
	w.handle = l.sockets.add(w)
	c.ws = w
	c.since = l.clock()
	c.headBuf, c.body, c.chunks = nil, nil, nil
	l.markDirty(c)
	l.queueResume(c) // on_ws_open, then the frames that may already be here
	return int64(w.handle)
}

// openWS delivers on_ws_open once, before any message.
func (l *Loop) openWS(w *wsConn) {
	if w.opened {
		return
	}
	w.opened = true
	if w.ended || l.inst == nil || l.inst.Dead() {
		return
	}
	rc, err := l.inst.OnWSOpen(w.handle)
	if err != nil {
		l.guestFailed(err, nil)
	} else if rc != 0 {
		l.cfg.Log.Printf("worker %d: on_ws_open returned %d", l.id, rc)
	}
	l.afterCallback()
}

// resumeWS continues a WebSocket after its accept or a resume: open it, take the bytes
// already here, then read what the kernel holds.
func (l *Loop) resumeWS(c *Conn, w *wsConn) {
	l.openWS(w)
	if !l.reading(c) {
		return
	}
	if len(c.in) > 0 {
		l.consume(c, c.in, false)
	}
	if l.reading(c) && c.unread {
		l.readConn(c)
	}
}

// serveWS turns received bytes into events and returns how many it used. It stops while the
// guest has the socket paused or the peer leaves our output unread.
func (l *Loop) serveWS(c *Conn, w *wsConn, data []byte) int {
	l.openWS(w)
	c.since, w.pinged = l.clock(), false
	off := 0
	for off < len(data) {
		if c.closed || w.ended {
			return len(data) // closing: what still arrives is discarded
		}
		if w.paused || l.behind(c) {
			return off
		}
		ev, n, err := w.rd.Next(data[off:])
		off += n
		if err != nil {
			l.failWS(c, w, err.Code, err.Reason)
			return len(data)
		}
		switch ev.Kind {
		case websocket.None:
			return off
		case websocket.Message:
			if !w.closeSent { // after our close, messages are dropped (RFC 6455 §1.4)
				l.deliverWS(c, w, &ev)
			}
		case websocket.Ping:
			if !w.closeSent {
				c.out = websocket.AppendFrame(l.outBuf(c), ws.OpPong, ev.Payload, true)
				l.markDirty(c)
			}
		case websocket.Close:
			if !w.closeSent {
				// Echo the code (AppendClose sends an empty body for 1005), then close:
				// the server closes the TCP connection first (RFC 6455 §7.1.1).
				c.out = websocket.AppendClose(l.outBuf(c), ev.Code, "")
				w.closeSent = true
			}
			c.closeAfter = true
			l.markDirty(c)
			l.endWS(w, int32(ev.Code), string(ev.Payload))
			return len(data)
		}
	}
	return off
}

// deliverWS hands one message to the guest: as much as fits the inbox, the rest through
// body_read during the call.
func (l *Loop) deliverWS(c *Conn, w *wsConn, ev *websocket.Event) {
	inbox, ok := l.inboxView()
	if !ok {
		l.failWS(c, w, ws.StatusInternalServerError, "the application has no inbox")
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
	rc, err := l.inst.OnWSMessage(w.handle, uint32(len(ev.Payload)), flags)
	w.rest = nil
	if err != nil {
		l.guestFailed(err, nil) // every socket of the instance is closed with 1011
		return
	}
	if rc != 0 {
		l.cfg.Log.Printf("worker %d: on_ws_message returned %d", l.id, rc)
		l.failWS(c, w, ws.StatusInternalServerError, "the application failed")
	}
	l.afterCallback()
	w.rd.Trim(wsTrimAbove)
}

// closeWS starts the closing handshake from our side.
func (l *Loop) closeWS(c *Conn, w *wsConn, code ws.StatusCode, reason string) {
	c.out = websocket.AppendClose(l.outBuf(c), code, reason)
	w.closeSent, w.closeAt = true, l.clock()
	l.markDirty(c)
}

// failWS fails the connection (RFC 6455 §7.1.7): a close frame with code, then the close.
func (l *Loop) failWS(c *Conn, w *wsConn, code ws.StatusCode, reason string) {
	if !w.closeSent {
		l.closeWS(c, w, code, reason)
	}
	c.closeAfter = true
	l.markDirty(c)
	l.endWS(w, int32(code), reason)
}

// endWS queues on_ws_close, delivered after the current callback; the handle stays valid
// (sends answer ECLOSED or ESTATE) until then.
func (l *Loop) endWS(w *wsConn, code int32, reason string) {
	if w.ended {
		return
	}
	w.ended = true
	l.closing = append(l.closing, closeNote{h: w.handle, code: code, text: reason})
}

// deliverWSClose calls on_ws_close for a queued notice; the handle is stale afterwards.
func (l *Loop) deliverWSClose(n closeNote) {
	if !l.sockets.remove(n.h) || l.inst == nil || l.inst.Dead() {
		return
	}
	size := 0
	if inbox, ok := l.inboxView(); ok {
		size = copy(inbox, n.text)
	}
	rc, err := l.inst.OnWSClose(n.h, n.code, uint32(size))
	if err != nil {
		l.guestFailed(err, nil)
	} else if rc != 0 {
		l.cfg.Log.Printf("worker %d: on_ws_close returned %d", l.id, rc)
	}
}

// failSockets closes every WebSocket of an instance that trapped, with 1011: the replacement
// knows nothing of them.
func (l *Loop) failSockets() {
	var all []*wsConn
	l.sockets.each(func(_ abi.Handle, w *wsConn) { all = append(all, w) })
	for _, w := range all {
		l.sockets.remove(w.handle)
		w.ended = true
		if c := w.conn; c != nil && !c.closed {
			if !w.closeSent {
				l.closeWS(c, w, ws.StatusInternalServerError, "the application failed")
			}
			c.closeAfter = true
			l.markDirty(c)
		}
	}
}

// sweepWS applies a WebSocket's timeouts: the closing handshake's, the idle timeout (a ping
// first, when pings are on), and a peer that reads nothing of what we send.
func (l *Loop) sweepWS(c *Conn, w *wsConn, now int64) {
	idle := time.Duration(now - c.since)
	switch {
	case c.closeAfter:
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
		l.closeWS(c, w, ws.StatusGoingAway, "idle timeout")
	case l.cfg.WSPingInterval > 0 && !w.pinged && idle > l.cfg.WSPingInterval:
		c.out = websocket.AppendFrame(l.outBuf(c), ws.OpPing, nil, true)
		w.pinged = true
		l.markDirty(c)
	}
}

// socket finds the open WebSocket h names: EBADHANDLE for an unknown or stale handle,
// ECLOSED once its connection is gone or failing.
func (l *Loop) socket(h abi.Handle) (*wsConn, *Conn, abi.Errno) {
	w, ok := l.sockets.get(h)
	if !ok {
		return nil, nil, abi.EBADHANDLE
	}
	if c := w.conn; c != nil && !c.closed && !w.ended {
		return w, c, 0
	}
	return nil, nil, abi.ECLOSED
}

// WSSend sends one message, text (valid UTF-8) or binary.
func (l *Loop) WSSend(h abi.Handle, data []byte, flags int32) int32 {
	w, c, e := l.socket(h)
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
	switch {
	case w.deflate && len(data) >= wsCompressMin:
		out, err := l.wsWriter.AppendMessage(l.outBuf(c), op, data)
		if err != nil {
			return errno(abi.EINVAL)
		}
		c.out = out
	case len(data) >= directWrite:
		l.writeThrough(c, websocket.AppendHeader(l.frame[:0], op, len(data)), data, nil)
	default:
		c.out = websocket.AppendFrame(l.outBuf(c), op, data, true)
	}
	if c.closed {
		return errno(abi.ECLOSED)
	}
	l.markDirty(c)
	if rc := l.checkOutput(c); rc != 0 {
		return rc
	}
	return l.aboveMark(c, &w.needDrain)
}

// WSClose starts the closing handshake: on_ws_close follows when the peer answers (or the
// wait times out, with 1006).
func (l *Loop) WSClose(h abi.Handle, code int32, reason []byte) int32 {
	w, c, e := l.socket(h)
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
	l.closeWS(c, w, ws.StatusCode(code), string(reason))
	return 0
}

// pauseWS stops (paused=1) or resumes (0) reading a WebSocket.
func (l *Loop) pauseWS(h abi.Handle, paused int32) int32 {
	w, c, e := l.socket(h)
	if e != 0 {
		return errno(e)
	}
	want := paused != 0
	if w.paused == want {
		return 0
	}
	w.paused = want
	if !want {
		c.since = l.clock()
		c.unread = true
		l.queueResume(c)
	}
	return 0
}

// queueResume has settle resume c after the current callback.
func (l *Loop) queueResume(c *Conn) {
	if !c.resumeQueued {
		c.resumeQueued = true
		l.resume = append(l.resume, c)
	}
}
