package loop

import (
	"errors"
	"strconv"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/guest"
	"github.com/wasmloop/wasmloop/host/internal/http1"
	"github.com/wasmloop/wasmloop/host/internal/websocket"
)

// framing is how a response body is delimited on the wire.
type framing uint8

const (
	frameNone    framing = iota // no body may be sent (HEAD, 204, 304)
	frameLength                 // Content-Length: remaining counts down
	frameChunked                // Transfer-Encoding: chunked
	frameClose                  // HTTP/1.0 without a length: the close ends the body
)

// exchange is one request and its response.
type exchange struct {
	handle    abi.Handle
	conn      *Conn
	isHead    bool
	minor     uint8
	keepAlive bool
	started   bool
	mode      framing
	remaining int64
	body      []byte // body bytes that did not fit the inbox (owned)
	bodyOff   int

	// A streamed request body (listener with abi.ListenStreamBody).
	streaming bool   // the body is delivered through on_body
	bodyDone  bool   // its last bytes (end=1) were delivered
	paused    bool   // the guest paused it: the connection is not read
	expect100 bool   // "100 Continue" is owed on the first resume
	held      []byte // decoded body bytes not yet delivered when the guest paused (owned)
	needDrain bool   // a write reported AboveMark: on_drain is owed

	up *websocket.Upgrade // a valid WebSocket handshake, which ws_accept may take
}

// serve parses and dispatches as many requests from data as it can, one at a time, and
// returns the bytes it consumed. It stops at an incomplete request, at a request the guest
// has not answered yet (the next one waits, so responses leave in order), or at a rejection.
func (l *Loop) serve(c *Conn, data []byte) int {
	off := 0
	for !c.closed && off < len(data) {
		if w := c.ws; w != nil {
			return off + l.serveWS(c, w, data[off:])
		}
		if ex := c.ex; ex != nil {
			if !ex.receiving() {
				return off
			}
			n := l.streamBody(c, ex, data[off:])
			if n == 0 {
				return off
			}
			off += n
			continue
		}
		if c.closeAfter || l.behind(c) {
			// Closing, or the client is not reading its responses: take no more requests
			// until it does (flush resumes the connection), so output stays bounded.
			return off
		}
		if c.inBody {
			n, done := l.collectBody(c, data[off:])
			off += n
			if c.closed || !done {
				return off
			}
			continue
		}
		n, err := c.parser.Parse(data[off:], &l.req)
		if err != nil {
			l.reject(c, err)
			return len(data)
		}
		if n == 0 {
			if !c.inHead {
				c.inHead, c.since = true, l.clock()
			}
			return off
		}
		c.inHead = false
		req := &l.req
		head := data[off : off+n]
		off += n
		hasBody := req.Chunked || req.ContentLength > 0
		whole := !req.Chunked && int64(len(data)-off) >= req.ContentLength
		switch {
		case hasBody && c.ln.stream && !(whole && req.ContentLength <= int64(l.inboxRoom(req))):
			// Stream it: the guest gets the head now and the body through on_body, as it
			// arrives (what is already here follows at once, after on_request returns).
			c.parser.Reset()
			l.startStream(c, req)
			l.dispatch(c, req, nil)
		case req.Chunked:
			l.startBody(c, head, req)
		case req.ContentLength > 0 && int64(len(data)-off) >= req.ContentLength:
			// The whole body came with the head: dispatch straight from the read buffer.
			body := data[off : off+int(req.ContentLength)]
			off += int(req.ContentLength)
			c.parser.Reset()
			l.dispatch(c, req, body)
		case req.ContentLength > 0:
			l.startBody(c, head, req)
		default:
			c.parser.Reset()
			l.dispatch(c, req, nil)
		}
	}
	return off
}

// startBody begins collecting a body that did not arrive with its head.
func (l *Loop) startBody(c *Conn, head []byte, req *http1.Request) {
	c.inBody = true
	c.since = l.clock()
	c.headBuf = append(c.headBuf[:0], head...)
	c.body = c.body[:0]
	if req.Chunked {
		if c.chunks == nil {
			c.chunks = &http1.ChunkedDecoder{}
		}
		c.chunks.Reset()
		c.chunks.Limits = l.cfg.Limits
	} else {
		c.bodyNeed = req.ContentLength
	}
	if req.ExpectContinue {
		// The body is wanted (its size is within the limit, or the parser would have
		// refused with 413), so tell the client to send it rather than make it wait.
		c.out = append(l.outBuf(c), "HTTP/1.1 100 Continue\r\n\r\n"...)
		l.markDirty(c)
	}
}

// collectBody takes body bytes from data; done reports a complete request, dispatched.
func (l *Loop) collectBody(c *Conn, data []byte) (used int, done bool) {
	c.since = l.clock()
	if c.chunks != nil && c.bodyNeed == 0 {
		for used < len(data) {
			piece, n, fin, err := c.chunks.Next(data[used:])
			used += n
			if err != nil {
				l.reject(c, err)
				return len(data), false
			}
			c.body = append(c.body, piece...)
			if fin {
				l.finishBody(c)
				return used, true
			}
			if n == 0 {
				return used, false
			}
		}
		return used, false
	}
	take := int64(len(data))
	if take > c.bodyNeed {
		take = c.bodyNeed
	}
	c.body = append(c.body, data[:take]...)
	c.bodyNeed -= take
	if c.bodyNeed > 0 {
		return int(take), false
	}
	l.finishBody(c)
	return int(take), true
}

func (l *Loop) finishBody(c *Conn) {
	c.inBody = false
	c.chunks = nil
	c.parser.Reset()
	n, err := c.parser.Parse(c.headBuf, &l.req)
	c.parser.Reset()
	if err != nil || n != len(c.headBuf) { // the same bytes parsed before: cannot happen
		l.reject(c, &http1.Error{Status: 500, Reason: "request head changed"})
		return
	}
	l.dispatch(c, &l.req, c.body)
	if cap(c.body) > pooledBuf { // a connection that once posted a big body keeps none
		c.body, c.headBuf = nil, nil
	}
}

// packHead fills l.head with req's head, without a body.
func (l *Loop) packHead(req *http1.Request) *abi.Head {
	h := &l.head
	h.Method, h.Target = req.Method, req.Target
	h.Major, h.Minor = uint8(req.Major), uint8(req.Minor)
	h.ContentLength = req.ContentLength
	h.Flags = 0
	if req.KeepAlive {
		h.Flags |= abi.HeadKeepAlive
	}
	if req.Chunked {
		h.Flags |= abi.HeadChunked
	}
	if req.ExpectContinue {
		h.Flags |= abi.HeadExpect100
	}
	if req.Upgrade {
		h.Flags |= abi.HeadUpgrade
	}
	h.Headers = req.Headers
	h.Body = nil
	return h
}

// inboxRoom is how many body bytes fit in the inbox after req's head.
func (l *Loop) inboxRoom(req *http1.Request) int {
	return int(l.inboxLen) - l.packHead(req).Size()
}

// dispatch hands one request to the guest: the packed head and as much body as fits go into
// the inbox, and one call delivers them. A streamed body (startStream) follows in on_body.
func (l *Loop) dispatch(c *Conn, req *http1.Request, body []byte) {
	inbox, ok := l.inboxView()
	if !ok || !l.inst.HasOnRequest() {
		l.replyError(c, 500, "the application cannot take requests")
		return
	}
	h := l.packHead(req)
	if req.Chunked && !c.streamNext {
		h.ContentLength = int64(len(body)) // buffered: now the length is known
	}
	room := len(inbox) - h.Size()
	if room < 0 {
		l.replyError(c, 431, "the request head does not fit the application's inbox")
		return
	}
	var up *websocket.Upgrade
	if req.UpgradeField {
		var rejected bool
		if up, rejected = l.checkUpgrade(c, req); rejected {
			return
		}
		if up != nil {
			h.Flags |= abi.HeadWebSocket
		}
	}
	ex := l.newExchange(c, req)
	ex.up = up
	if c.streamNext {
		c.streamNext = false
		ex.streaming, ex.paused, ex.expect100 = true, req.ExpectContinue, req.ExpectContinue
		h.Flags |= abi.HeadBodyPending
	}
	inline := len(body)
	if inline > room {
		inline = room
		h.Flags |= abi.HeadBodyPending
		ex.body = append(ex.body[:0], body[inline:]...)
	}
	h.Body = body[:inline]
	n, err := h.Encode(inbox)
	if err != nil {
		l.finish(ex)
		l.replyError(c, 431, err.Error())
		return
	}
	rc, err := l.inst.OnRequest(c.ln.handle, ex.handle, uint32(n))
	if err != nil {
		l.guestFailed(err, ex)
	} else if rc != 0 {
		l.cfg.Log.Printf("worker %d: on_request returned %d", l.id, rc)
		if _, live := l.exchanges.get(ex.handle); live {
			l.failExchange(ex)
		} else if !c.closed {
			c.closeAfter = true // answered already, but the guest says it failed
			l.markDirty(c)
		}
	}
	l.afterCallback()
}

func (l *Loop) inboxView() ([]byte, bool) {
	if l.inboxLen == 0 {
		return nil, false
	}
	return l.inst.Memory().Read(l.inboxPtr, l.inboxLen)
}

func (l *Loop) newExchange(c *Conn, req *http1.Request) *exchange {
	var ex *exchange
	if n := len(l.freeEx); n > 0 {
		ex = l.freeEx[n-1]
		l.freeEx = l.freeEx[:n-1]
	} else {
		ex = &exchange{}
	}
	*ex = exchange{conn: c, body: ex.body[:0], held: ex.held[:0],
		isHead: len(req.Method) == 4 && string(req.Method) == "HEAD",
		minor:  uint8(req.Minor), keepAlive: req.KeepAlive && !c.noMore}
	ex.handle = l.exchanges.add(ex)
	c.ex = ex
	return ex
}

// finish ends an exchange whose response is complete: its handle goes stale and the
// connection moves on to its next request, after the current callback.
func (l *Loop) finish(ex *exchange) {
	l.exchanges.remove(ex.handle)
	c := ex.conn
	ex.conn = nil
	l.recycle(ex)
	if c == nil || c.closed {
		return
	}
	c.ex = nil
	c.since = l.clock()
	if ex.streaming && !ex.bodyDone {
		// Answered before the body was all read: the rest of it is still on the wire, and
		// only closing frees the connection from it.
		ex.keepAlive = false
		c.inBody, c.chunks = false, nil
	}
	if !ex.keepAlive || ex.mode == frameClose || c.noMore {
		c.closeAfter = true
	}
	l.markDirty(c)
	if !c.processing {
		l.queueResume(c)
	}
}

// recycle keeps an ended exchange's object for reuse, unless it holds a large buffer.
func (l *Loop) recycle(ex *exchange) {
	ex.up = nil
	if cap(ex.body) <= pooledBuf {
		l.freeEx = append(l.freeEx, ex)
	}
}

// abandon drops an exchange whose connection closed under it; the guest hears of it after
// the current callback.
func (l *Loop) abandon(ex *exchange, reason int32) {
	ex.conn = nil
	if l.inst != nil && !l.inst.Dead() && l.inst.HasOnClose() {
		l.closing = append(l.closing, closeNote{h: ex.handle, reason: reason})
		return // the handle stays (answering ECLOSED) until on_close is delivered
	}
	l.exchanges.remove(ex.handle)
}

// failExchange answers 500 if nothing was sent yet, and closes the connection.
func (l *Loop) failExchange(ex *exchange) {
	c := ex.conn
	if c == nil || c.closed {
		l.exchanges.remove(ex.handle)
		return
	}
	started := ex.started
	ex.keepAlive = false
	l.finish(ex)
	if !started {
		l.replyError(c, 500, "the application failed")
		return
	}
	c.closeAfter = true
	l.markDirty(c)
}

// reject answers a request the parser refused, and closes: after a framing error the rest of
// the stream cannot be trusted.
func (l *Loop) reject(c *Conn, err error) {
	var perr *http1.Error
	if errors.As(err, &perr) {
		l.replyError(c, perr.Status, perr.Reason)
		return
	}
	l.replyError(c, 400, err.Error())
}

// replyError queues a short plain-text error response and closes the connection after it.
func (l *Loop) replyError(c *Conn, status int, reason string) {
	out := http1.AppendStatusLine(l.outBuf(c), 1, status)
	out = l.date.Append(out, l.now)
	msg := strconv.Itoa(status) + " " + reason + "\n"
	out = append(out, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(msg)), 10)
	out = append(out, "\r\n\r\n"...)
	c.out = append(out, msg...)
	c.closeAfter = true
	c.inBody = false
	l.markDirty(c)
}

func (l *Loop) outBuf(c *Conn) []byte {
	if c.out == nil {
		c.out = l.getBuf()
		c.wrote = l.clock() // output starts: the stall clock starts with it
	}
	return c.out
}

// guestFailed handles a callback that trapped or exited. A trap poisons the instance: the
// request it was handling (ex, may be nil) gets a 500, every other request of the instance is
// failed the same way, its timers are dropped, and a fresh instance takes over the listeners.
func (l *Loop) guestFailed(err error, ex *exchange) {
	var exit *guest.ExitError
	if errors.As(err, &exit) && exit.Code == 0 {
		l.g.exit(0)
		return
	}
	if exit != nil {
		l.cfg.Log.Printf("worker %d: the guest died (proc_exit %d in a callback); replacing the instance", l.id, exit.Code)
	} else {
		l.cfg.Log.Printf("worker %d: %v", l.id, err)
	}
	if ex != nil {
		l.failExchange(ex)
	}
	var open []*exchange
	l.exchanges.each(func(_ abi.Handle, e *exchange) { open = append(open, e) })
	for _, e := range open {
		l.failExchange(e)
	}
	l.closing = l.closing[:0]
	l.failSockets()
	var ts []*timer
	l.timers.each(func(_ abi.Handle, t *timer) { ts = append(ts, t) })
	for _, t := range ts {
		l.freeTimer(t)
	}
	l.listeners.each(func(h abi.Handle, ln *listener) {
		l.listeners.remove(h)
		if ln.ref {
			l.refs--
		}
		l.orphans = append(l.orphans, ln)
	})
	l.inst.Close()
	l.inboxPtr, l.inboxLen = 0, 0
	l.ordinal = 0 // the replacement's port-0 listens match the same keys
	if err := l.startInstance(); err != nil {
		l.cfg.Log.Printf("worker %d: the replacement instance failed to start: %v; this worker stops", l.id, err)
		l.g.setExit(1)
		l.stopped = true
		l.dropOrphans()
		return
	}
	l.dropOrphans()
	l.cfg.Log.Printf("worker %d: the instance was replaced", l.id)
}
