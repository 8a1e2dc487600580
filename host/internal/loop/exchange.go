package loop

import (
	"github.com/wasmloop/wasmloop/abi"
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

// exchange is one request and its response. Its handle (kind abi.KindRequest) is what the
// guest names it by; hc is nil once the connection is gone.
type exchange struct {
	handle    abi.Handle
	in        *instance // the instance answering it
	hc        *httpConn
	at        int64 // loop clock when it was dispatched
	isHead    bool
	minor     uint8
	keepAlive bool
	started   bool
	status    int // the response's, once started
	// For the access log only (Config.AccessLog): the request line's parts, and how much
	// the connection had produced (sent or queued) before the response.
	method, target string
	sentBefore     int64
	mode           framing
	remaining      int64
	body           []byte // body bytes that did not fit the inbox (owned)
	bodyOff        int

	// A streamed request body (listener with abi.ListenStreamBody).
	streaming bool   // the body is delivered through on_body
	bodyDone  bool   // its last bytes (end=1) were delivered
	paused    bool   // the guest paused it: the connection is not read
	expect100 bool   // "100 Continue" is owed on the first resume
	held      []byte // decoded body bytes not yet delivered when the guest paused (owned)
	heldEnd   bool   // the held bytes end the body
	needDrain bool   // a write reported AboveMark: on_drain is owed

	file bodyFileState // the body_file kept open while the guest waits for on_drain

	up *websocket.Upgrade // a valid WebSocket handshake, which ws_accept may take
}

// conn returns the exchange's connection, or nil once it is gone.
func (ex *exchange) conn() *Conn {
	if ex.hc == nil {
		return nil
	}
	return ex.hc.c
}

// packHead fills the loop's head with req's, without a body.
func (l *Loop) packHead(req *http1.Request) *abi.Head {
	h := &l.httpScratch.head
	h.Method, h.Target = req.Method, req.Target
	h.Major, h.Minor = uint8(req.Major), uint8(req.Minor)
	h.ContentLength = req.ContentLength
	if !req.Chunked && req.ContentLength < 0 {
		// Neither Content-Length nor chunked: the request has no body (RFC 9112 §6.3), and
		// its length, 0, is known; −1 is only for a chunked body (ABI.md §5).
		h.ContentLength = 0
	}
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

// dispatch hands one request to the guest: its packed head h and as much body as fits go into
// the inbox, and one call delivers them. A streamed body (startStream) follows in on_body.
func (hc *httpConn) dispatch(req *http1.Request, h *abi.Head, body []byte, streamed bool) {
	l, c, in := hc.l, hc.c, hc.l.cur
	if !in.live() {
		hc.replyError(503, "the application is restarting")
		return
	}
	inbox, ok := in.inbox()
	if !ok || !in.g.HasOnRequest() {
		hc.replyError(500, "the application cannot take requests")
		return
	}
	if req.Chunked && !streamed {
		h.ContentLength = int64(len(body)) // buffered: now the length is known
	}
	room := len(inbox) - h.Size()
	if room < 0 {
		hc.replyError(431, "the request head does not fit the application's inbox")
		return
	}
	var up *websocket.Upgrade
	if req.UpgradeField {
		var rejected bool
		if up, rejected = hc.checkUpgrade(req); rejected {
			return
		}
		if up != nil {
			h.Flags |= abi.HeadWebSocket
		}
	}
	ex := hc.newExchange(req)
	ex.up = up
	if streamed {
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
		hc.replyError(431, err.Error())
		return
	}
	rc, err := in.g.OnRequest(c.ln.handle, ex.handle, uint32(n))
	if err != nil {
		l.guestFailed(in, err, ex)
	} else if rc != 0 {
		l.logfFor(ex, "%s", callbackResult(abi.ExportOnRequest, rc))
		if _, live := l.exchanges.get(ex.handle); live {
			l.failExchange(ex, 500)
		} else if !c.closed() {
			l.closeWhenWritten(c) // answered already, but the guest says it failed
		}
	}
	l.afterCallback()
}

func (hc *httpConn) newExchange(req *http1.Request) *exchange {
	l := hc.l
	var ex *exchange
	if n := len(l.httpScratch.freeEx); n > 0 {
		ex = l.httpScratch.freeEx[n-1]
		l.httpScratch.freeEx = l.httpScratch.freeEx[:n-1]
	} else {
		ex = &exchange{}
	}
	*ex = exchange{in: l.cur, hc: hc, body: ex.body[:0], held: ex.held[:0],
		isHead: len(req.Method) == 4 && string(req.Method) == "HEAD",
		minor:  uint8(req.Minor), keepAlive: req.KeepAlive && !hc.last, at: l.clock()}
	if l.cfg.AccessLog != nil {
		ex.method, ex.target, ex.sentBefore = string(req.Method), string(req.Target), hc.c.produced()
	}
	ex.handle = l.exchanges.add(ex)
	hc.ex, hc.phase = ex, httpAnswering
	return ex
}

// finish ends an exchange whose response is complete: its handle goes stale and the
// connection moves on to its next request, after the current callback.
func (l *Loop) finish(ex *exchange) {
	if ex.started {
		l.answered(ex.status, ex.at, ex, ex.conn())
	}
	l.exchanges.remove(ex.handle)
	hc := ex.hc
	ex.hc = nil
	l.recycle(ex)
	if hc == nil {
		return
	}
	c := hc.c
	hc.ex, hc.phase = nil, httpIdle
	if c.closed() {
		return
	}
	c.since = l.clock()
	if ex.streaming && !ex.bodyDone {
		// Answered before the body was all read: the rest of it is still on the wire, and
		// only closing frees the connection from it.
		ex.keepAlive = false
		hc.chunks = nil
	}
	if !ex.keepAlive || ex.mode == frameClose || hc.last {
		l.closeWhenWritten(c)
	}
	l.queue.flush(c)
	if !c.serving {
		l.queue.resume(c)
	}
}

// recycle keeps an ended exchange's object for reuse, unless it holds a large buffer. A file
// it still holds is closed: a request that became a WebSocket may hold one from StatFile.
func (l *Loop) recycle(ex *exchange) {
	l.dropFile(ex)
	ex.up = nil
	if cap(ex.body) <= pooledBuf {
		l.httpScratch.freeEx = append(l.httpScratch.freeEx, ex)
	}
}

// abandon drops an exchange whose connection closed under it; the guest hears of it after
// the current callback.
func (l *Loop) abandon(ex *exchange, reason int32) {
	ex.hc = nil
	l.dropFile(ex)
	if in := ex.in; in.live() && in.g.HasOnClose() {
		l.queue.closeNotice(closeNote{in: in, h: ex.handle, reason: reason})
		return // the handle stays (answering ECLOSED) until on_close is delivered
	}
	l.exchanges.remove(ex.handle)
}

// deliverClose calls on_close for a request whose connection went. During the call the
// handle answers ECLOSED; it is stale afterwards (ABI.md).
func (l *Loop) deliverClose(n closeNote) {
	if _, ok := l.exchanges.get(n.h); !ok {
		return // the guest already let go of it
	}
	if n.in.live() {
		rc, err := n.in.g.OnClose(n.h, n.reason)
		l.exchanges.remove(n.h)
		l.checkResult(n.in, abi.ExportOnClose, rc, err)
		return
	}
	l.exchanges.remove(n.h)
}

// failExchange answers status (500 for a guest that failed, 503 for one stopped past its
// budget) if nothing was sent yet, and closes the connection.
func (l *Loop) failExchange(ex *exchange, status int) {
	hc := ex.hc
	if hc == nil || hc.c.closed() {
		l.exchanges.remove(ex.handle)
		return
	}
	started := ex.started
	ex.keepAlive = false
	if !started {
		l.answered(status, ex.at, ex, hc.c)
	}
	l.finish(ex)
	if !started {
		if status == 503 {
			hc.writeError(503, "the application took too long")
		} else {
			hc.writeError(500, "the application failed")
		}
		return
	}
	l.closeWhenWritten(hc.c)
}
