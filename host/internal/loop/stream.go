package loop

import (
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/http1"
)

// Streaming (ABI 1.1): request bodies delivered to the guest as they arrive, with pause and
// resume, and write back-pressure with a drain event.

// receiving reports whether the exchange takes body bytes now.
func (ex *exchange) receiving() bool { return ex.streaming && !ex.bodyDone && !ex.paused }

// startStream prepares the body decoder for a request whose body is streamed; dispatch then
// marks its exchange.
func (l *Loop) startStream(c *Conn, req *http1.Request) {
	c.streamNext, c.heldEnd = true, false
	if req.Chunked {
		if c.chunks == nil {
			c.chunks = &http1.ChunkedDecoder{}
		}
		c.chunks.Reset()
		c.chunks.Limits = c.parser.Limits
		c.bodyNeed = 0
	} else {
		c.chunks = nil
		c.bodyNeed = req.ContentLength
	}
	c.since = l.clock()
}

// streamBody decodes body bytes from data and delivers them to the guest; it returns the
// bytes of data it consumed (0 when it can make no progress now).
func (l *Loop) streamBody(c *Conn, ex *exchange, data []byte) int {
	if len(ex.held) > 0 {
		l.deliverHeld(c, ex)
		if !ex.receiving() || c.closed || c.ex != ex {
			return 0
		}
	}
	c.since = l.clock()
	l.bodyAt = c.since
	var piece []byte
	var used int
	var fin bool
	if c.chunks != nil {
		var err error
		piece, used, fin, err = c.chunks.Next(data)
		if err != nil {
			l.streamFailed(c, ex, err)
			return len(data)
		}
		if used == 0 && !fin {
			return 0
		}
		// The chunks that follow in the same bytes go to the guest in the same call, up to an
		// inbox: a client sending tiny chunks must not cost a guest call per chunk.
		for gathered := false; !fin && used < len(data) && len(piece) < int(l.inboxLen); {
			more, n, f, err := c.chunks.Next(data[used:])
			if err != nil {
				l.streamFailed(c, ex, err)
				return len(data)
			}
			if n == 0 && !f {
				break
			}
			if !gathered {
				l.gather, gathered = append(l.gather[:0], piece...), true
			}
			l.gather = append(l.gather, more...)
			piece, used, fin = l.gather, used+n, f
		}
	} else {
		take := min(int64(len(data)), c.bodyNeed)
		piece, used = data[:take], int(take)
		c.bodyNeed -= take
		fin = c.bodyNeed == 0
	}
	if fin {
		c.chunks = nil
	}
	l.deliverBody(c, ex, piece, fin)
	return used
}

// deliverBody hands body bytes to the guest in inbox-sized calls. What the guest has not
// taken when it pauses is kept (held) and delivered on resume.
func (l *Loop) deliverBody(c *Conn, ex *exchange, piece []byte, fin bool) {
	for len(piece) > 0 || fin {
		if c.closed || c.ex != ex || ex.bodyDone || l.inst.Dead() {
			return // the exchange is over: the bytes have nowhere to go
		}
		if ex.paused {
			ex.held = append(ex.held, piece...) // a copy: piece may alias the read buffer
			c.heldEnd = c.heldEnd || fin
			return
		}
		inbox, ok := l.inboxView()
		if !ok {
			l.closeConn(c, abi.CloseHost)
			return
		}
		k := copy(inbox, piece)
		last := fin && k == len(piece)
		if last {
			ex.bodyDone = true
		}
		rc, err := l.inst.OnBody(ex.handle, uint32(k), last)
		if err != nil {
			l.guestFailed(err, ex)
			return
		}
		if rc != 0 {
			l.cfg.Log.Printf("worker %d: on_body returned %d", l.id, rc)
			l.failExchange(ex)
			return
		}
		piece = piece[k:]
		if last {
			return
		}
	}
}

// bodyTarget returns the guest's inbox, cut to the body's remaining length, when c's next read
// can go straight there: a streamed body of known length, taken now, with nothing buffered or
// held before it. That saves copying every body byte from the loop's read buffer into the
// inbox (6% of the host's CPU in a 100 MiB upload), and a read that never goes past the body
// leaves the next request's bytes to the parser. Otherwise it returns nil.
func (l *Loop) bodyTarget(c *Conn) []byte {
	ex := c.ex
	if ex == nil || !ex.receiving() || c.chunks != nil || c.bodyNeed <= 0 || len(c.in) > 0 ||
		len(ex.held) > 0 || c.lingering || l.inst.Dead() {
		return nil
	}
	inbox, ok := l.inboxView()
	if !ok {
		return nil
	}
	return inbox[:min(int64(len(inbox)), c.bodyNeed)]
}

// bodyRead delivers the n body bytes a read put in the inbox (see bodyTarget), as
// streamBody and deliverBody would have.
func (l *Loop) bodyRead(c *Conn, n int) {
	ex := c.ex
	c.since = l.clock()
	l.bodyAt = c.since
	c.bodyNeed -= int64(n)
	last := c.bodyNeed == 0
	if last {
		ex.bodyDone = true
	}
	c.processing = true
	rc, err := l.inst.OnBody(ex.handle, uint32(n), last)
	c.processing = false
	switch {
	case err != nil:
		l.guestFailed(err, ex)
	case rc != 0:
		l.cfg.Log.Printf("worker %d: on_body returned %d", l.id, rc)
		l.failExchange(ex)
	}
}

// deliverHeld delivers body bytes kept while the guest was paused.
func (l *Loop) deliverHeld(c *Conn, ex *exchange) {
	held, fin := ex.held, c.heldEnd
	ex.held, c.heldEnd = nil, false // a new pause must not write into what is being delivered
	l.deliverBody(c, ex, held, fin)
}

// streamFailed handles a malformed streamed body: 400 if the guest has not answered yet,
// else a close; either way the guest hears on_close.
func (l *Loop) streamFailed(c *Conn, ex *exchange, err error) {
	if ex.started {
		l.closeConn(c, abi.CloseHost)
		return
	}
	c.ex = nil
	l.abandon(ex, abi.CloseHost)
	l.reject(c, err)
}

// Pause stops (paused=1) or resumes (0) reading a streamed request body. The first resume of
// an Expect: 100-continue request sends "100 Continue".
func (l *Loop) Pause(h abi.Handle, paused int32) int32 {
	if h.Kind() == abi.KindSocket {
		return l.pauseWS(h, paused)
	}
	ex, ok := l.exchanges.get(h)
	if !ok {
		return errno(abi.EBADHANDLE)
	}
	c := ex.conn
	if c == nil {
		return errno(abi.ECLOSED)
	}
	if !ex.streaming || ex.bodyDone && len(ex.held) == 0 {
		return errno(abi.ESTATE)
	}
	if paused != 0 {
		ex.paused = true
		return 0
	}
	if !ex.paused {
		return 0
	}
	ex.paused = false
	c.since = l.clock() // the body timeout counts from the resume, not from before the pause
	if ex.expect100 {
		ex.expect100 = false
		if !ex.started {
			c.out = append(l.outBuf(c), "HTTP/1.1 100 Continue\r\n\r\n"...)
			l.markDirty(c)
		}
	}
	// Delivery resumes after this callback (never inside a host function).
	if !c.processing {
		l.queueResume(c)
	}
	return 0
}

// aboveMark is called after output was queued for a request or socket: past the high-water
// mark it tries to write at once, and if the output stays above, tells the guest to wait for
// on_drain (needDrain is the request's or the socket's flag).
func (l *Loop) aboveMark(c *Conn, needDrain *bool) int32 {
	if c.outLen() <= l.cfg.WriteHighWater {
		return 0
	}
	l.flush(c)
	if c.closed {
		return errno(abi.ECLOSED)
	}
	if c.outLen() <= l.cfg.WriteHighWater {
		return 0
	}
	*needDrain = true
	return abi.AboveMark
}

// checkDrain queues on_drain once the output of a connection whose guest was told to wait
// has fallen to half the high-water mark (hysteresis, so a writer is not woken per segment).
func (l *Loop) checkDrain(c *Conn) {
	if c.outLen() > l.cfg.WriteHighWater/2 {
		return
	}
	if ex := c.ex; ex != nil && ex.needDrain {
		ex.needDrain = false
		l.drains = append(l.drains, ex.handle)
	}
	if w := c.ws; w != nil && w.needDrain {
		w.needDrain = false
		l.drains = append(l.drains, w.handle)
	}
}

// deliverDrains calls on_drain for the exchanges queued by checkDrain.
func (l *Loop) deliverDrains() {
	for len(l.drains) > 0 && !l.stopped {
		h := l.drains[0]
		l.drains = l.drains[1:]
		live := false
		if h.Kind() == abi.KindSocket {
			_, live = l.sockets.get(h)
		} else {
			_, live = l.exchanges.get(h)
		}
		if !live || l.inst.Dead() {
			continue
		}
		if _, err := l.inst.OnDrain(h); err != nil {
			l.guestFailed(err, nil)
		}
		l.afterCallback()
		l.flushDirty()
	}
	l.drains = l.drains[:0]
}

const (
	streamSpin   = 50 * time.Microsecond // see wait
	streamRecent = int64(time.Millisecond)
)

// wait is the poller's wait, except that a loop that received streamed body bytes within the
// last millisecond first polls without blocking, for up to streamSpin, before it sleeps. A
// client streaming a body over loopback otherwise pays for waking the loop after nearly every
// send (the wake-up runs in its send): a 100 MiB upload made 4–13 waits per MiB. Polling for
// 50 µs took uploads from 1.04× net/http's throughput to 1.19× (Go's scheduler spins before
// it parks, too), for ~0.16 s more host CPU per GiB (RATIONALE.md). Idle loops and requests
// without a streamed body never spin.
func (l *Loop) wait(timeout int) (int, error) {
	if timeout != 0 && l.bodyAt > 0 && l.clock()-l.bodyAt < streamRecent {
		for start := time.Now(); time.Since(start) < streamSpin; {
			if n, woken, err := l.poll.Wait(l.events, 0); n > 0 || woken || err != nil {
				return n, err
			}
		}
	}
	n, _, err := l.poll.Wait(l.events, timeout)
	return n, err
}
