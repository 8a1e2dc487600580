package loop

import (
	"math"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/http1"
	"github.com/wasmloop/wasmloop/host/internal/poll"
)

// This file is the loop's side of the ABI's host functions (ABI.md §3). Each runs on the
// loop's goroutine inside a guest callback; none calls back into the guest.

func errno(e abi.Errno) int32 { return int32(e) }

// Negotiate grants nothing: ABI 1.0 has no optional features.
func (l *Loop) Negotiate(want uint64) uint64 { return 0 }

// WorkerID is this loop's index.
func (l *Loop) WorkerID() int32 { return int32(l.id) }

// WorkerCount is the number of loops.
func (l *Loop) WorkerCount() int32 { return int32(len(l.g.loops)) }

// Inbox registers the guest's inbox.
func (l *Loop) Inbox(ptr, size uint32) int32 {
	if size < abi.MinInbox {
		return errno(abi.EINVAL)
	}
	l.inboxPtr, l.inboxLen = ptr, size
	return 0
}

// Listen opens (or, after an instance replacement, takes over) a listening socket.
func (l *Loop) Listen(addrBytes []byte, port, flags int32) int64 {
	if l.inst == nil || l.inboxLen == 0 {
		return int64(abi.ESTATE)
	}
	if !l.inst.HasOnRequest() {
		return int64(abi.ENOTSUP)
	}
	if flags&^abi.ListenStreamBody != 0 || port < 0 || port > 65535 {
		return int64(abi.EINVAL)
	}
	if flags&abi.ListenStreamBody != 0 && !l.inst.HasOnBody() {
		return int64(abi.ENOTSUP)
	}
	addr, err := poll.ParseAddr(string(addrBytes))
	if err != nil {
		return int64(abi.EINVAL)
	}
	if l.draining || l.stopped {
		return int64(abi.ESTATE)
	}
	key := listenKey{addr: addr, port: int(port)}
	if port == 0 {
		key.ordinal = l.ordinal
		l.ordinal++
	}
	ln := l.adopt(key)
	if ln == nil {
		ln = &listener{fd: -1, key: key}
		if !l.cfg.HandoffAccept || l.id == 0 {
			bound, err := l.g.portFor(key, func(p int) (int, error) {
				fd, bound, err := poll.Listen(addr, p, !l.cfg.HandoffAccept, unix.SOMAXCONN)
				ln.fd = fd
				return bound, err
			})
			if err != nil {
				l.cfg.Log.Printf("worker %d: listen %s:%d: %v", l.id, addr, port, err)
				return int64(abi.EADDR)
			}
			ln.port = bound
			if err := l.poll.AddListener(ln.fd); err != nil {
				unix.Close(ln.fd)
				return int64(abi.EADDR)
			}
		}
	}
	ln.ref = true
	ln.stream = flags&abi.ListenStreamBody != 0
	l.refs++
	ln.handle = l.listeners.add(ln)
	if l.id == 0 {
		l.g.startOthers()
	}
	if ln.fd >= 0 {
		// Connections may already wait in the backlog (an adopted socket, or a fast client):
		// an edge-triggered poller reports only new arrivals.
		l.pendingAccept = append(l.pendingAccept, ln)
	}
	return int64(ln.handle)
}

// adopt takes over a socket the previous instance listened on.
func (l *Loop) adopt(key listenKey) *listener {
	for i, ln := range l.orphans {
		if ln.key == key {
			l.orphans = append(l.orphans[:i], l.orphans[i+1:]...)
			return ln
		}
	}
	return nil
}

func (l *Loop) dropOrphans() {
	for _, ln := range l.orphans {
		ln.closed = true
		if ln.fd >= 0 {
			unix.Close(ln.fd)
		}
		l.retireConns(ln)
	}
	l.orphans = nil
}

func (l *Loop) closeListener(h abi.Handle, ln *listener) {
	if !l.listeners.remove(h) {
		return
	}
	if ln.ref {
		l.refs--
	}
	ln.closed = true
	if ln.fd >= 0 {
		unix.Close(ln.fd)
	}
	l.retireConns(ln)
}

// retireConns ends the connections of a listener that is gone, as Node's server.close() does
// since v19: idle ones close now, one with only output left closes once it is written, and
// one with a request under way or arriving answers it and then closes.
func (l *Loop) retireConns(ln *listener) {
	for _, c := range l.conns {
		if c == nil || c.ln != ln {
			continue
		}
		switch {
		case c.lingering:
			// Already closing; its linger protects a response still in flight to the client.
		case c.ws != nil:
			// A WebSocket outlives its listener, as in Node; a shutdown closes it (drain).
		case c.ex == nil && len(c.in) == 0 && !c.inBody && c.outLen() == 0:
			l.closeConn(c, abi.CloseHost)
		case c.ex == nil && len(c.in) == 0 && !c.inBody:
			c.closeAfter = true
		default:
			c.noMore = true
		}
	}
}

// Respond starts a response; with abi.RespondEnd it is the whole response.
func (l *Loop) Respond(h abi.Handle, status int32, hdr, body []byte, flags int32) int32 {
	ex, ok := l.exchanges.get(h)
	if !ok {
		return errno(abi.EBADHANDLE)
	}
	if ex.conn == nil {
		return errno(abi.ECLOSED)
	}
	if ex.started {
		return errno(abi.ESTATE)
	}
	if status < 200 || status > 999 || flags&^abi.RespondEnd != 0 {
		return errno(abi.EINVAL)
	}
	info, err := http1.CheckHeaderBlock(hdr)
	if err != nil || info.HasTransferEncoding {
		return errno(abi.EINVAL)
	}
	end := flags&abi.RespondEnd != 0
	noBody := ex.isHead || status == 204 || status == 304
	if status == 204 && info.ContentLength >= 0 {
		return errno(abi.EINVAL)
	}
	if end && !noBody && info.ContentLength >= 0 && info.ContentLength != int64(len(body)) {
		return errno(abi.EINVAL)
	}
	if !end && !noBody && info.ContentLength >= 0 && int64(len(body)) > info.ContentLength {
		return errno(abi.EINVAL)
	}
	c := ex.conn
	if ex.expect100 || end && ex.streaming && !ex.bodyDone {
		// Answered in full before the body was read (or asked for): the rest of it may still
		// come, so the connection cannot be reused, and the response says so. (A response
		// that streams while the body arrives is usually reading it; if it ends first
		// anyway, finish closes the connection after it.)
		ex.expect100, ex.keepAlive = false, false
	}
	closeAfter := !ex.keepAlive || info.ConnectionClose || c.noMore
	out := http1.AppendStatusLine(l.outBuf(c), 1, int(status))
	out = append(out, hdr...)
	if !info.HasDate {
		out = l.date.Append(out, l.now)
	}
	switch {
	case noBody:
		ex.mode = frameNone
		if end && ex.isHead && info.ContentLength < 0 && status != 204 && status != 304 {
			out = appendContentLength(out, int64(len(body)))
		}
	case end && info.ContentLength < 0:
		ex.mode = frameLength
		out = appendContentLength(out, int64(len(body)))
	case info.ContentLength >= 0:
		ex.mode = frameLength
		ex.remaining = info.ContentLength
	case ex.minor >= 1:
		ex.mode = frameChunked
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	default: // HTTP/1.0 cannot be chunked: the body ends when the connection does
		ex.mode = frameClose
		closeAfter = true
	}
	if closeAfter {
		ex.keepAlive = false
		if !info.ConnectionClose {
			out = append(out, "Connection: close\r\n"...)
		}
	} else if ex.minor == 0 {
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	out = append(out, "\r\n"...)
	c.out = out
	ex.started = true
	if ex.mode == frameLength && !end {
		ex.remaining -= int64(len(body))
	}
	l.appendBody(ex, body, end)
	if c.closed {
		return errno(abi.ECLOSED) // on_close follows
	}
	if end {
		l.finish(ex)
		return l.checkOutput(c)
	}
	l.markDirty(c)
	if rc := l.checkOutput(c); rc != 0 {
		return rc
	}
	return l.aboveMark(c, &ex.needDrain)
}

func appendContentLength(out []byte, n int64) []byte {
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, n, 10)
	return append(out, "\r\n"...)
}

// directWrite is the body piece size from which the host writes straight from guest memory
// to the socket instead of copying into the connection's buffer first.
const directWrite = 16 << 10

// coalesceMax caps how much body output is gathered in a connection's buffer before it is
// written (see appendBody); the high-water mark caps it too.
const coalesceMax = 256 << 10

// appendBody frames body bytes for the wire; last says no more body follows. Small pieces are
// copied into the connection's buffer, which is written when the callback returns. Pieces of
// directWrite or more are gathered there too while the pending output stays under the
// coalescing limit; the piece that reaches it (or the last one) goes out with them in one
// writev, straight from guest memory. A streamed download spends most of its CPU in writev,
// much of it per call (the loopback's delivery, the client's wake-up): one 256 KiB write
// instead of four 64 KiB ones costs less than the copy that gathers them (RATIONALE.md).
func (l *Loop) appendBody(ex *exchange, data []byte, last bool) {
	if len(data) == 0 || ex.mode == frameNone {
		return
	}
	c := ex.conn
	if len(data) >= directWrite {
		limit := min(coalesceMax, l.cfg.WriteHighWater)
		if last || c.outLen()+len(data) >= limit {
			var pre, post []byte
			if ex.mode == frameChunked {
				pre = append(strconv.AppendUint(l.frame[:0], uint64(len(data)), 16), "\r\n"...)
				post = crlf
			}
			l.writeThrough(c, pre, data, post)
			return
		}
		l.outRoom(c, limit-c.outLen()+512) // the whole gathering, chunk framing included
	}
	if ex.mode == frameChunked {
		c.out = http1.AppendChunk(l.outBuf(c), data)
	} else {
		c.out = append(l.outBuf(c), data...)
	}
}

var crlf = []byte("\r\n")

// outRoom makes room for n more bytes in c's output buffer. One that must grow moves to a
// pooled buffer of at least twice its size, so a streaming connection stops allocating.
func (l *Loop) outRoom(c *Conn, n int) {
	out := l.outBuf(c)
	if cap(out)-len(out) >= n {
		return
	}
	grown := l.getBufN(max(2*cap(out), len(out)-c.outOff+n))
	grown = append(grown, out[c.outOff:]...)
	l.putBuf(out)
	c.out, c.outOff = grown, 0
}

// writeThrough sends the connection's pending output, then pre, data and post, with one
// writev, and keeps in the connection's buffer only what the socket did not take. A large body
// piece thus goes from guest memory to the kernel without a copy in the host (copying it into
// a growing buffer cost an allocation per piece and half the CPU of a download).
func (l *Loop) writeThrough(c *Conn, pre, data, post []byte) {
	pending := c.outLen()
	iov := l.iov[:0]
	for _, b := range [...][]byte{c.out[c.outOff:], pre, data, post} {
		if len(b) > 0 {
			iov = append(iov, b)
		}
	}
	if c.out == nil {
		c.wrote = l.clock() // output starts: the stall clock starts with it
	}
	n, err := poll.Writev(c.fd, iov)
	if n > 0 {
		c.wrote = l.clock()
	}
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		clear(iov)
		l.iov = iov[:0]
		l.closeConn(c, abi.ClosePeer)
		return
	}
	n = max(n, 0)
	rest := len(pre) + len(data) + len(post) + pending - n
	if rest > l.cfg.MaxOutput { // do not copy what the cap would refuse anyway
		clear(iov)
		l.iov = iov[:0]
		l.closeConn(c, abi.CloseHost)
		return
	}
	if n < pending {
		// Not even the pending output went: it stays, and the new bytes follow it (copying
		// it again with every piece made a full socket cost quadratic time).
		c.outOff += n
		l.outRoom(c, rest-(pending-n))
		c.out = append(append(append(c.out, pre...), data...), post...)
	} else {
		// The pending output went; keep what the socket left of the new bytes.
		n -= pending
		out := c.out
		if rest > cap(out) {
			l.putBuf(out)
			out = l.getBufN(rest)
		}
		out = out[:0]
		if rest > 0 {
			for _, b := range [...][]byte{pre, data, post} {
				skip := min(n, len(b))
				n -= skip
				out = append(out, b[skip:]...)
			}
		} else if out != nil {
			l.putBuf(out)
			out = nil
		}
		c.out, c.outOff = out, 0
	}
	clear(iov)
	l.iov = iov[:0]
	if rest > 0 {
		l.markDirty(c)
	}
}

// checkOutput closes a connection whose unsent output passed the hard cap: a peer that does
// not read must not make the host grow without bound.
func (l *Loop) checkOutput(c *Conn) int32 {
	if c.outLen() > l.cfg.MaxOutput {
		l.cfg.Log.Printf("worker %d: closing a connection with %d bytes unsent (cap %d)", l.id, c.outLen(), l.cfg.MaxOutput)
		l.closeConn(c, abi.CloseHost)
		return errno(abi.ECLOSED)
	}
	return 0
}

// Write appends body bytes to a streaming response.
func (l *Loop) Write(h abi.Handle, data []byte) int32 {
	ex, ok := l.exchanges.get(h)
	if !ok {
		return errno(abi.EBADHANDLE)
	}
	if ex.conn == nil {
		return errno(abi.ECLOSED)
	}
	if !ex.started {
		return errno(abi.ESTATE)
	}
	if ex.mode == frameLength {
		if int64(len(data)) > ex.remaining {
			return errno(abi.EINVAL)
		}
		ex.remaining -= int64(len(data))
	}
	c := ex.conn
	l.appendBody(ex, data, false)
	if c.closed {
		return errno(abi.ECLOSED)
	}
	l.markDirty(c)
	if rc := l.checkOutput(c); rc != 0 {
		return rc
	}
	return l.aboveMark(c, &ex.needDrain)
}

// End completes a streaming response.
func (l *Loop) End(h abi.Handle) int32 {
	ex, ok := l.exchanges.get(h)
	if !ok {
		return errno(abi.EBADHANDLE)
	}
	if ex.conn == nil { // the connection is gone; the guest is done with the handle
		l.exchanges.remove(h)
		return 0
	}
	if !ex.started {
		return errno(abi.ESTATE)
	}
	switch {
	case ex.mode == frameChunked:
		ex.conn.out = http1.AppendLastChunk(l.outBuf(ex.conn))
	case ex.mode == frameLength && ex.remaining > 0:
		ex.keepAlive = false // short of the declared length: only a close tells the client
	}
	l.finish(ex)
	return 0
}

// BodyRead copies body bytes that did not fit the inbox.
func (l *Loop) BodyRead(h abi.Handle, dst []byte) int32 {
	if h.Kind() == abi.KindSocket { // the rest of the message being delivered
		w, ok := l.sockets.get(h)
		if !ok {
			return errno(abi.EBADHANDLE)
		}
		n := copy(dst[:min(len(dst), math.MaxInt32)], w.rest)
		w.rest = w.rest[n:]
		return int32(n)
	}
	ex, ok := l.exchanges.get(h)
	if !ok {
		return errno(abi.EBADHANDLE)
	}
	n := copy(dst[:min(len(dst), math.MaxInt32)], ex.body[ex.bodyOff:])
	ex.bodyOff += n
	return int32(n)
}

const maxTimers = 1 << 20

// addSat adds without overflowing: a deadline past the end of time stays there.
func addSat(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// TimerStart starts a guest timer.
func (l *Loop) TimerStart(delayNs, intervalNs int64) int64 {
	if l.inst == nil {
		return int64(abi.ESTATE)
	}
	if !l.inst.HasOnTimer() {
		return int64(abi.ENOTSUP)
	}
	if l.timers.len() >= maxTimers {
		return int64(abi.ELIMIT)
	}
	// At least 1 ns: a timer never fires in the pass that started it, so a timer that starts
	// a timer of delay 0 cannot keep the loop from polling (ABI.md §1).
	delayNs = max(delayNs, 1)
	if intervalNs < 0 {
		intervalNs = 0
	} else if intervalNs > 0 && intervalNs < 1e6 {
		intervalNs = 1e6
	}
	t := &timer{when: addSat(l.clock(), delayNs), interval: intervalNs, ref: true, index: -1}
	t.handle = l.timers.add(t)
	l.heap.add(t)
	l.refs++
	return int64(t.handle)
}

// Close closes a listener, clears a timer, or aborts a request's connection.
func (l *Loop) Close(h abi.Handle) int32 {
	switch h.Kind() {
	case abi.KindListener:
		ln, ok := l.listeners.get(h)
		if !ok {
			return errno(abi.EBADHANDLE)
		}
		l.closeListener(h, ln)
		return 0
	case abi.KindTimer:
		t, ok := l.timers.get(h)
		if !ok {
			return errno(abi.EBADHANDLE)
		}
		l.freeTimer(t)
		return 0
	case abi.KindRequest:
		ex, ok := l.exchanges.get(h)
		if !ok {
			return errno(abi.EBADHANDLE)
		}
		l.exchanges.remove(h)
		if c := ex.conn; c != nil {
			c.ex = nil // the guest asked for it: no on_close
			ex.conn = nil
			l.closeConn(c, abi.CloseHost)
		}
		return 0
	case abi.KindSocket:
		w, ok := l.sockets.get(h)
		if !ok {
			return errno(abi.EBADHANDLE)
		}
		l.sockets.remove(h)
		w.ended = true // the guest asked for it: no on_ws_close
		if c := w.conn; c != nil {
			l.closeConn(c, abi.CloseHost)
		}
		return 0
	}
	return errno(abi.EBADHANDLE)
}

// Ref sets whether a listener or timer keeps the process alive.
func (l *Loop) Ref(h abi.Handle, on int32) int32 {
	var ref *bool
	switch h.Kind() {
	case abi.KindListener:
		ln, ok := l.listeners.get(h)
		if !ok {
			return errno(abi.EBADHANDLE)
		}
		ref = &ln.ref
	case abi.KindTimer:
		t, ok := l.timers.get(h)
		if !ok {
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

// Exit ends the process with code once the current callback returns.
func (l *Loop) Exit(code int32) int32 {
	l.g.exit(code)
	l.stopped = true // no further callbacks on this loop, even in this batch
	return 0
}
