package loop

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/http1"
)

// httpPhase is where an HTTP/1.1 connection is between requests.
type httpPhase uint8

const (
	httpIdle      httpPhase = iota // waiting for a request's first byte
	httpHead                       // part of a request head has arrived
	httpBody                       // collecting a body that did not arrive with its head
	httpAnswering                  // a request is with the guest (ex); the next one waits
)

// httpConn is the HTTP/1.1 server protocol on one connection: it parses requests strictly,
// dispatches them to the guest one at a time (responses leave in order, so a pipelined
// request waits for the one before), buffers or streams their bodies, and holds the exchange
// being answered.
type httpConn struct {
	l      *Loop
	c      *Conn
	phase  httpPhase
	parser http1.Parser
	ex     *exchange // the request being answered, in httpAnswering
	stream bool      // the listener streams bodies (abi.ListenStreamBody)
	// last says: answer the request in progress (perhaps still arriving), then close; the
	// listener is gone.
	last bool

	// A buffered body that did not arrive with its head (httpBody), or a streamed one being
	// decoded.
	kept     http1.Request // the head, its bytes copied into headBuf (keepHead)
	headBuf  []byte
	body     []byte
	bodyNeed int64 // Content-Length bytes still to come
	chunks   *http1.ChunkedDecoder
	held     int64 // cap(body) as counted against the buffer budget (buffers.go)
	bodyAt   int64 // loop clock when the body began (BodyDeadline)
}

// httpShared is the HTTP protocol's per-loop scratch space, reused by every request.
type httpShared struct {
	req    http1.Request
	head   abi.Head
	date   http1.DateCache
	frame  [24]byte    // a chunk-size line
	gather []byte      // chunked body pieces gathered for one on_body call
	freeEx []*exchange // exchange objects for reuse
}

func (l *Loop) newHTTPConn(c *Conn, stream bool) *httpConn {
	hc := &httpConn{l: l, c: c, stream: stream}
	hc.parser.Limits = l.cfg.Limits
	if stream {
		// The body limit caps what the host buffers; a streamed body is the guest's to take.
		hc.parser.Limits.MaxBodyBytes = math.MaxInt64
	}
	return hc
}

// serve parses and dispatches as many requests from data as it can, one at a time, and
// returns the bytes it consumed. It stops at an incomplete request, at a request the guest
// has not answered yet (the next one waits, so responses leave in order), or at a rejection.
func (hc *httpConn) serve(data []byte) int {
	l, c := hc.l, hc.c
	off := 0
	for c.phase == connOpen && off < len(data) {
		if c.proto != protocol(hc) {
			// The guest accepted a WebSocket during this call: the rest is frames.
			return off + c.proto.serve(data[off:])
		}
		switch hc.phase {
		case httpAnswering:
			ex := hc.ex
			if !ex.receiving() {
				return off
			}
			n := hc.streamBody(ex, data[off:])
			if n == 0 {
				return off
			}
			off += n
			continue
		case httpBody:
			n, done := hc.collectBody(data[off:])
			off += n
			if c.closed() || !done {
				return off
			}
			continue
		}
		if l.behind(c) {
			// The client is not reading its responses: take no more requests until it does
			// (flush resumes the connection), so output stays bounded.
			return off
		}
		req := &l.httpScratch.req
		n, err := hc.parser.Parse(data[off:], req)
		if err != nil {
			hc.reject(err)
			return len(data)
		}
		if n == 0 {
			if hc.phase == httpIdle {
				hc.phase, c.since = httpHead, l.clock()
			}
			return off
		}
		hc.phase = httpIdle
		off += n
		h := l.packHead(req)
		hasBody := req.Chunked || req.ContentLength > 0
		whole := !req.Chunked && int64(len(data)-off) >= req.ContentLength
		switch {
		case hasBody && hc.stream && !(whole && req.ContentLength <= int64(int(l.cur.inboxLen)-h.Size())):
			// Stream it: the guest gets the head now and the body through on_body, as it
			// arrives (what is already here follows at once, after on_request returns).
			hc.parser.Reset()
			hc.startStream(req)
			hc.dispatch(req, h, nil, true)
		case req.Chunked:
			hc.startBody(req)
		case req.ContentLength > 0 && int64(len(data)-off) >= req.ContentLength:
			// The whole body came with the head: dispatch straight from the read buffer.
			body := data[off : off+int(req.ContentLength)]
			off += int(req.ContentLength)
			hc.parser.Reset()
			hc.dispatch(req, h, body, false)
		case req.ContentLength > 0:
			hc.startBody(req)
		default:
			hc.parser.Reset()
			hc.dispatch(req, h, nil, false)
		}
	}
	return off
}

// wantsInput: not while a request is with the guest, unless its body is being streamed and
// not paused.
func (hc *httpConn) wantsInput() bool { return hc.ex == nil || hc.ex.receiving() }
func (hc *httpConn) duplex() bool     { return false }

// resume continues after a request ended outside its own read, or its body was resumed:
// deliver the body bytes held while it was paused, serve the pipelined bytes already here,
// then read what the kernel holds.
func (hc *httpConn) resume() {
	l, c := hc.l, hc.c
	if ex := hc.ex; ex != nil {
		if !ex.receiving() {
			return
		}
		if len(ex.held) > 0 {
			c.serving = true
			hc.deliverHeld(ex)
			c.serving = false
			if !l.reading(c) {
				return
			}
		}
	}
	if len(c.in) > 0 {
		l.consume(c, c.in, false)
	}
	if !l.reading(c) {
		return
	}
	if c.eof && len(c.in) == 0 && hc.ex == nil {
		l.closeWhenWritten(c)
		return
	}
	if c.unread {
		l.readConn(c)
	}
}

// peerEOF: the client will send no more. Answer what it asked, then close. A streamed body
// cut short ends the request, and so does an EOF while the guest holds a request and no
// other is waiting, unless its response is on its way: a full close and a half close look
// the same until a write fails, so a request whose answer has not begun is taken for one whose
// client has gone — the guest hears on_close and stops working for nobody, as Go's net/http
// cancels a request's context — while a response with bytes in flight goes on to its end,
// for a client that only half-closed, and a client that has gone resets it at the next
// segment. A client that pipelined more requests before it half-closed gets every response
// (RATIONALE.md, "A client that half-closes").
func (hc *httpConn) peerEOF() {
	c := hc.c
	switch ex := hc.ex; {
	case ex == nil:
		hc.l.closeWhenWritten(c)
	case ex.streaming && !ex.bodyDone:
		hc.l.closeConn(c, abi.ClosePeer)
	case len(c.in) > 0:
		// Requests wait behind it: each is answered in turn, then the connection closes.
	case ex.started && (c.outLen() > 0 || c.sockFull || ex.needDrain || hc.l.queue.drainQueued(ex.handle) || ex.file.f != nil && ex.file.next != anyOffset):
		// Bytes of the response are in flight, or the guest waits for room to send more
		// (of a file, say: one StatFile holds with no send under way is not), or has it and
		// is about to hear so (on_drain queued: the drain and the EOF can come in one
		// event): the response goes on, and the connection closes after it.
		hc.last = true
	default:
		hc.l.closeConn(c, abi.ClosePeer)
	}
}

func (hc *httpConn) drained() {
	if ex := hc.ex; ex != nil && ex.needDrain {
		ex.needDrain = false
		hc.l.queue.drainNotice(ex.handle)
	}
}

// flushed: once the request in progress is answered on a connection whose listener is gone,
// nothing more comes.
func (hc *httpConn) flushed() {
	if hc.last && hc.ex == nil && hc.phase == httpIdle && len(hc.c.in) == 0 {
		hc.l.closeWhenWritten(hc.c)
	}
}

// listenerClosed ends the connection as Node's server.close() does since v19: an idle one
// closes now, one with only output left closes once it is written, and one with a request
// under way or arriving answers it and then closes.
func (hc *httpConn) listenerClosed() {
	l, c := hc.l, hc.c
	idle := hc.ex == nil && len(c.in) == 0 && hc.phase != httpBody
	switch {
	case idle && c.outLen() == 0:
		l.closeConn(c, abi.CloseHost)
	case idle:
		l.closeWhenWritten(c)
	default:
		hc.last = true
	}
}

// shutdown is listenerClosed: every listener closes as a shutdown starts, so this only
// reaches connections whose listener had closed already.
func (hc *httpConn) shutdown() {}

// closed drops the exchange of a connection that closed under it; the guest hears of it
// (on_close) after the current callback.
func (hc *httpConn) closed(reason int32) {
	hc.body = nil
	hc.l.holdBuffered(&hc.held, 0)
	if ex := hc.ex; ex != nil {
		hc.ex = nil
		if ex.started {
			hc.l.answered(ex.status, ex.at, ex, hc.c) // cut short, but answered
		}
		hc.l.abandon(ex, reason)
	}
}

// sweep closes a connection that waited too long for what it is waiting for. A request that
// is with the guest has no timeout here: answering is the program's business.
func (hc *httpConn) sweep(now int64) {
	l, c := hc.l, hc.c
	if (c.outLen() > 0 || c.sockFull) && time.Duration(now-c.wrote) > l.cfg.IdleTimeout {
		// The client has read nothing for that long: it is not coming back for it.
		l.closeConn(c, abi.CloseHost)
		return
	}
	if c.phase == connClosing {
		return // closing already, once its output is written
	}
	waited := time.Duration(now - c.since)
	switch hc.phase {
	case httpAnswering:
		// The guest's turn, unless it is waiting for more of a streamed body, or has not
		// begun to answer within the response timeout (off by default, as in Node).
		ex := hc.ex
		switch {
		case ex.receiving() && waited > l.cfg.BodyTimeout:
			hc.streamFailed(ex, errBodyStalled)
		case !ex.started && time.Duration(now-ex.at) > l.cfg.ResponseTimeout:
			hc.ex, hc.phase = nil, httpIdle
			l.answered(503, ex.at, ex, c)
			l.abandon(ex, abi.CloseHost) // on_close: the guest stops working for nobody
			hc.writeError(503, "the application did not answer in time")
		}
	case httpBody:
		switch {
		case waited > l.cfg.BodyTimeout:
			hc.replyError(408, "the request body stopped arriving")
		case time.Duration(now-hc.bodyAt) > l.cfg.BodyDeadline:
			// Trickled a byte at a time it would never stop arriving: it must also end.
			hc.replyError(408, "the request body took too long")
		}
	case httpHead:
		if waited > l.cfg.HeaderTimeout {
			hc.replyError(408, "the request head took too long")
		}
	case httpIdle:
		if c.outLen() == 0 && waited > l.cfg.IdleTimeout {
			l.closeConn(c, abi.CloseHost)
		}
	}
}

var errBodyStalled = &http1.Error{Status: 408, Reason: "the request body stopped arriving"}

// startBody begins collecting a body that did not arrive with its head. The head is kept
// (keepHead) and dispatched when the body is complete.
func (hc *httpConn) startBody(req *http1.Request) {
	l, c := hc.l, hc.c
	hc.keepHead(req)
	hc.phase = httpBody
	c.since = l.clock()
	hc.bodyAt = c.since
	hc.body = hc.body[:0]
	if req.Chunked {
		if hc.chunks == nil {
			hc.chunks = &http1.ChunkedDecoder{}
		}
		hc.chunks.Reset()
		hc.chunks.Limits = l.cfg.Limits
	} else {
		hc.bodyNeed = req.ContentLength
		// The whole body is coming: hold room for it now, so that the budget refuses it at
		// its head (a client that declares 1 MiB and trickles it holds 1 MiB) and the buffer
		// never grows past it.
		if int64(cap(hc.body)) < req.ContentLength {
			hc.body = make([]byte, 0, req.ContentLength)
		}
		if !hc.holdBody() {
			return
		}
	}
	if req.ExpectContinue {
		// The body is wanted (its size is within the limit, or the parser would have
		// refused with 413), so tell the client to send it rather than make it wait.
		c.out = append(l.outBuf(c), "HTTP/1.1 100 Continue\r\n\r\n"...)
		l.queue.flush(c)
	}
}

// collectBody takes body bytes from data; done reports a complete request, dispatched.
func (hc *httpConn) collectBody(data []byte) (used int, done bool) {
	hc.c.since = hc.l.clock()
	if hc.chunks != nil && hc.bodyNeed == 0 {
		for used < len(data) {
			piece, n, fin, err := hc.chunks.Next(data[used:])
			used += n
			if err != nil {
				hc.reject(err)
				return len(data), false
			}
			hc.body = append(hc.body, piece...)
			if !hc.holdBody() {
				return len(data), false
			}
			if fin {
				hc.finishBody()
				return used, true
			}
			if n == 0 {
				return used, false
			}
		}
		return used, false
	}
	take := min(int64(len(data)), hc.bodyNeed)
	hc.body = append(hc.body, data[:take]...)
	if !hc.holdBody() {
		return len(data), false
	}
	hc.bodyNeed -= take
	if hc.bodyNeed > 0 {
		return int(take), false
	}
	hc.finishBody()
	return int(take), true
}

// finishBody dispatches a request whose buffered body is complete.
func (hc *httpConn) finishBody() {
	hc.phase = httpIdle
	hc.chunks = nil
	hc.parser.Reset()
	hc.dispatch(&hc.kept, hc.l.packHead(&hc.kept), hc.body, false)
	if cap(hc.body) > pooledBuf { // a connection that once posted a big body keeps none
		hc.body, hc.headBuf = nil, nil
		hc.l.holdBuffered(&hc.held, 0)
	}
}

// holdBody counts the body buffer against the process's buffer budget; past it the request
// is answered 503 and the buffer let go.
func (hc *httpConn) holdBody() bool {
	if hc.l.holdBuffered(&hc.held, cap(hc.body)) {
		return true
	}
	hc.body = nil
	hc.l.holdBuffered(&hc.held, 0)
	hc.replyError(503, "the server is holding too many request bodies; try again later")
	return false
}

// keepHead copies the parts of req that dispatch uses into the connection's headBuf, and
// points hc.kept at them: the parser's slices alias the read buffer, which the body's bytes
// overwrite.
func (hc *httpConn) keepHead(req *http1.Request) {
	n := len(req.Method) + len(req.Target)
	for i := range req.Headers {
		n += len(req.Headers[i].Name) + len(req.Headers[i].Value)
	}
	buf := hc.headBuf[:0]
	if cap(buf) < n {
		buf = make([]byte, 0, n)
	}
	keep := func(b []byte) []byte {
		s := len(buf)
		buf = append(buf, b...)
		return buf[s:len(buf):len(buf)]
	}
	headers := hc.kept.Headers[:0]
	hc.kept = *req
	hc.kept.Method, hc.kept.Target = keep(req.Method), keep(req.Target)
	for _, f := range req.Headers {
		f.Name, f.Value = keep(f.Name), keep(f.Value)
		headers = append(headers, f)
	}
	hc.kept.Headers = headers
	hc.headBuf = buf
}

// reject answers a request the parser refused, and closes: after a framing error the rest of
// the stream cannot be trusted.
func (hc *httpConn) reject(err error) {
	hc.replyError(rejection(err))
}

// rejection is the status and reason that answer a parse error.
func rejection(err error) (int, string) {
	var perr *http1.Error
	if errors.As(err, &perr) {
		return perr.Status, perr.Reason
	}
	return 400, err.Error()
}

// replyError queues a short plain-text error response and closes the connection after it.
func (hc *httpConn) replyError(status int, reason string) {
	l, c := hc.l, hc.c
	at := c.since // the head began (httpHead)
	switch {
	case hc.ex != nil:
		at = hc.ex.at
	case hc.phase == httpIdle:
		at = l.clock() // the request arrived in this turn: c.since is when the connection went idle
	case hc.phase == httpBody:
		at = hc.bodyAt
	}
	l.answered(status, at, hc.ex, c)
	hc.writeError(status, reason)
}

// writeError is replyError for a response already counted (answered).
func (hc *httpConn) writeError(status int, reason string) {
	l, c := hc.l, hc.c
	out := http1.AppendStatusLine(l.outBuf(c), 1, status)
	out = l.httpScratch.date.Append(out, l.now)
	msg := strconv.Itoa(status) + " " + reason + "\n"
	out = append(out, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(msg)), 10)
	out = append(out, "\r\n\r\n"...)
	c.out = append(out, msg...)
	if hc.phase == httpBody {
		hc.phase = httpIdle
	}
	l.closeWhenWritten(c)
}
