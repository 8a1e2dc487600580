package loop

import (
	"math"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/http1"
	"github.com/wasmloop/wasmloop/host/internal/poll"
)

// Conn is one accepted connection. An idle keep-alive connection holds no buffers: bytes are
// read into the loop's shared buffer and only a partial request is copied into the
// connection's own.
type Conn struct {
	fd int
	// ln is the listener the connection came from; its handle is current even after an
	// instance replacement gave the listener a new one.
	ln *listener

	in     []byte // received bytes not yet consumed (owned), nil when empty
	out    []byte // bytes to send; out[outOff:] is still pending
	outOff int

	parser http1.Parser
	ex     *exchange // the request being answered; the next one waits (pipelining is in order)
	ws     *wsConn   // set once a WebSocket handshake was accepted: no more HTTP

	// A request whose body did not arrive with its head: the head is kept and the body
	// collected until complete, then the head is parsed again from headBuf.
	headBuf  []byte
	body     []byte
	bodyNeed int64 // Content-Length bytes still to come
	chunks   *http1.ChunkedDecoder
	inBody   bool
	inHead   bool // part of a request head has arrived
	// streamNext marks the request being dispatched as streamed (set by startStream).
	streamNext bool
	heldEnd    bool // the held body bytes end the body

	// since is when the connection's current wait began on the loop clock: the first byte
	// of a request head, the last body bytes, or the end of the last response. The sweep
	// (timeouts.go) compares it with the timeout of the state the connection is in.
	since int64

	closeAfter   bool  // close once the pending output is written
	outStalled   bool  // serving stopped because the output is above the mark
	lingering    bool  // our side is shut; input is discarded until EOF or lingerTime
	wrote        int64 // loop clock of the last write progress, while output is pending
	noMore       bool  // answer the request in progress (maybe still arriving), then close
	readEOF      bool  // the peer shut its write side (read returned 0)
	peerHup      bool  // the poller reported a hang-up: read on to EOF
	unread       bool  // bytes may wait in the kernel: reading stopped before EAGAIN
	closed       bool
	dirty        bool
	readQueued   bool
	resumeQueued bool
	processing   bool
}

func (c *Conn) outLen() int { return len(c.out) - c.outOff }

type listener struct {
	fd      int // -1 for a worker that receives descriptors from loop 0 (handoff)
	key     listenKey
	port    int
	ref     bool
	stream  bool // requests' bodies are streamed (abi.ListenStreamBody)
	closed  bool
	waiting bool  // accept failed for lack of descriptors; a retry timer is set
	full    bool  // the loop is at its connection cap; accepting resumes when one closes
	delay   int64 // ns before that retry; doubles while it keeps failing
	handle  abi.Handle
	next    int // handoff round-robin
}

func (l *Loop) addConn(fd int, ln *listener) {
	poll.SetNoDelay(fd)
	if err := l.poll.Add(fd); err != nil {
		unix.Close(fd)
		return
	}
	for fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*Conn, len(l.conns)+64)...)
	}
	c := &Conn{fd: fd, ln: ln, since: l.clock()}
	c.parser.Limits = l.cfg.Limits
	if ln.stream {
		// The body limit caps what the host buffers; a streamed body is the guest's to take.
		c.parser.Limits.MaxBodyBytes = math.MaxInt64
	}
	l.conns[fd] = c
	l.nconns++
}

// acceptAll accepts until EAGAIN, or until this listener's share of the wake-up is used.
func (l *Loop) acceptAll(ln *listener) {
	if ln.waiting || ln.closed {
		return // a retry timer is pending
	}
	for i := 0; i < acceptPerWake; i++ {
		if l.atConnCap() {
			// Leave the rest in the backlog: the connections we have keep being served, and
			// accepting resumes when one of them closes (closeConn).
			ln.full = true
			return
		}
		fd, err := poll.Accept(ln.fd)
		switch {
		case err == nil:
			ln.delay = 0
		case err == unix.EAGAIN:
			return
		case poll.IsAbortedAccept(err):
			continue
		case poll.IsTemporaryAcceptError(err):
			// Out of descriptors: leave the connections in the backlog, keep serving the
			// ones we have, and try again later (gnet stops its whole engine here).
			if ln.delay == 0 {
				ln.delay = int64(5 * time.Millisecond)
				l.cfg.Log.Printf("worker %d: accept: %v; backing off while open connections are served", l.id, err)
			} else {
				ln.delay = min(2*ln.delay, int64(time.Second))
			}
			ln.waiting = true
			l.addHostTimer(time.Duration(ln.delay), func() {
				ln.waiting = false
				l.acceptAll(ln)
			})
			return
		default:
			l.cfg.Log.Printf("worker %d: accept: %v", l.id, err)
			return
		}
		if l.cfg.HandoffAccept && len(l.g.loops) > 1 {
			l.handoff(ln, fd)
			continue
		}
		l.addConn(fd, ln)
	}
	l.pendingAccept = append(l.pendingAccept, ln)
}

// handoff gives an accepted descriptor to the next worker in turn.
func (l *Loop) handoff(ln *listener, fd int) {
	w := ln.next % len(l.g.loops)
	ln.next++
	target := l.g.loops[w]
	if target == l {
		l.addConn(fd, ln)
		return
	}
	key := ln.key
	if !target.post(func(t *Loop) {
		if own := t.listenerFor(key); own != nil && !t.draining && !t.stopped {
			t.addConn(fd, own)
		} else {
			unix.Close(fd)
		}
	}) {
		unix.Close(fd) // that worker has ended
	}
}

// listenerFor finds this loop's listener for key (handoff mode).
func (l *Loop) listenerFor(key listenKey) *listener {
	var found *listener
	l.listeners.each(func(_ abi.Handle, ln *listener) {
		if ln.key == key && !ln.closed {
			found = ln
		}
	})
	return found
}

// readConn reads until EAGAIN, this connection's share of the wake-up, or a request that
// must be answered before the next one is read.
func (l *Loop) readConn(c *Conn) {
	budget := readPerWake
	for l.reading(c) {
		if budget <= 0 {
			c.unread = true
			if !c.readQueued {
				c.readQueued = true
				l.pending = append(l.pending, c)
			}
			return
		}
		direct := l.bodyTarget(c)
		var buf []byte
		if direct != nil {
			buf = direct
		} else if len(c.in) == 0 {
			buf = l.readBuf
		} else {
			if cap(c.in)-len(c.in) < 4096 {
				grown := make([]byte, len(c.in), 2*cap(c.in)+4096)
				copy(grown, c.in)
				l.putBuf(c.in)
				c.in = grown
			}
			buf = c.in[len(c.in):cap(c.in)]
		}
		n, err := unix.Read(c.fd, buf)
		if n > 0 && c.lingering {
			budget -= n // discarded: the connection is closing
			continue
		}
		if n > 0 {
			budget -= n
			if direct != nil {
				l.bodyRead(c, n)
			} else if len(c.in) == 0 {
				l.consume(c, buf[:n], true)
			} else {
				c.in = c.in[:len(c.in)+n]
				l.consume(c, c.in, false)
			}
			if n < len(buf) && !c.peerHup {
				// A short read took everything the socket held, and bytes that arrive later
				// raise a new edge: the read that would only say EAGAIN is one syscall per
				// request saved. A hang-up is the exception: its edge came with this wake-up,
				// so read on to see the EOF.
				c.unread = false
				return
			}
			continue
		}
		switch {
		case err == unix.EAGAIN:
			c.unread = false
			return
		case err == unix.EINTR:
			continue
		case err == nil && c.lingering:
			l.closeConn(c, abi.CloseHost)
			return
		case err == nil: // EOF: the peer will send no more; answer what it asked, then close
			c.readEOF = true
			c.unread = false
			switch {
			case c.ws != nil:
				l.closeConn(c, abi.ClosePeer) // gone without a close frame: on_ws_close says 1006
			case c.ex == nil:
				c.closeAfter = true
				l.markDirty(c)
			case c.ex.streaming && !c.ex.bodyDone:
				l.closeConn(c, abi.ClosePeer) // the body was cut short
			}
			return
		default:
			l.closeConn(c, abi.ClosePeer)
			return
		}
	}
	if c.ex != nil && !c.closed {
		c.unread = true // reading resumes when the request ends or its body is resumed
	}
}

// reading reports whether the loop should read the connection now: not while a request is
// with the guest (unless its body is being streamed and not paused), not once it is closing,
// and not while the client leaves its responses unread (the kernel's buffers then push back).
func (l *Loop) reading(c *Conn) bool {
	if c.lingering {
		return !c.closed
	}
	if c.closed || c.readEOF || c.closeAfter || l.behind(c) {
		return false
	}
	if c.ws != nil {
		return !c.ws.paused
	}
	return c.ex == nil || c.ex.receiving()
}

// behind reports a connection whose client leaves more than the mark of its responses unread.
// Serving and reading stop; marking it stalled makes the flush that brings the output back
// under half the mark resume it, whether or not a write ever had to wait.
func (l *Loop) behind(c *Conn) bool {
	if c.outLen() <= l.cfg.WriteHighWater {
		return false
	}
	c.outStalled, c.unread = true, true
	return true
}

// consume hands data to the HTTP layer and keeps what it did not take. fromShared says data
// is the loop's read buffer, which the next read overwrites.
func (l *Loop) consume(c *Conn, data []byte, fromShared bool) {
	c.processing = true
	used := l.serve(c, data)
	c.processing = false
	if c.closed {
		return
	}
	rest := data[used:]
	switch {
	case len(rest) == 0:
		if c.in != nil {
			l.putBuf(c.in)
			c.in = nil
		}
	case fromShared:
		if cap(rest) > 0 && c.in == nil {
			c.in = l.getBuf()
		}
		c.in = append(c.in[:0], rest...)
	default:
		c.in = c.in[:copy(c.in, rest)]
	}
}

// resumeConn continues a connection after its request ended outside its own read: serve the
// pipelined bytes already here, then read what the kernel holds (no new edge will come).
func (l *Loop) resumeConn(c *Conn) {
	if w := c.ws; w != nil && !c.closed {
		l.resumeWS(c, w)
		return
	}
	if c.closed || c.ex != nil && !c.ex.receiving() {
		return
	}
	if ex := c.ex; ex != nil && len(ex.held) > 0 {
		c.processing = true
		l.deliverHeld(c, ex)
		c.processing = false
		if !l.reading(c) {
			return
		}
	}
	if len(c.in) > 0 {
		l.consume(c, c.in, false)
	}
	if !l.reading(c) {
		return
	}
	if c.readEOF && len(c.in) == 0 && c.ex == nil {
		c.closeAfter = true
		l.markDirty(c)
		return
	}
	if c.unread {
		l.readConn(c)
	}
}

// checkStall stops serving a connection whose unsent output is above the mark and resumes
// it once the output is at half the mark again.
func (l *Loop) checkStall(c *Conn) {
	switch {
	case !c.outStalled && c.outLen() > l.cfg.WriteHighWater:
		c.outStalled = true // serve and reading stop; the writable edge brings us back
	case c.outStalled && c.outLen() <= l.cfg.WriteHighWater/2:
		c.outStalled = false
		c.unread = true
		l.queueResume(c)
	}
}

func (l *Loop) markDirty(c *Conn) {
	if !c.dirty && !c.closed {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
}

func (l *Loop) flushDirty() {
	for i := 0; i < len(l.dirty); i++ {
		c := l.dirty[i]
		l.dirty[i] = nil
		c.dirty = false
		if !c.closed {
			l.flush(c)
		}
	}
	l.dirty = l.dirty[:0]
}

// flush writes pending output until it is gone or the socket is full; the writable edge
// brings the loop back for the rest.
func (l *Loop) flush(c *Conn) {
	for c.outLen() > 0 {
		n, err := unix.Write(c.fd, c.out[c.outOff:])
		if n > 0 {
			c.outOff += n
			c.wrote = l.clock()
			continue
		}
		if err == unix.EAGAIN {
			l.checkDrain(c)
			l.checkStall(c)
			return
		}
		if err == unix.EINTR {
			continue
		}
		l.closeConn(c, abi.ClosePeer)
		return
	}
	if c.out != nil {
		l.putBuf(c.out)
		c.out, c.outOff = nil, 0
	}
	l.checkDrain(c)
	l.checkStall(c)
	if c.noMore && c.ex == nil && !c.inHead && !c.inBody && len(c.in) == 0 {
		c.closeAfter = true // the request in progress was answered; nothing more comes
	}
	if c.closeAfter && c.ex == nil {
		l.lingerClose(c)
	}
}

// lingerTime bounds how long a closing connection's input is drained.
const lingerTime = 500 * time.Millisecond

// lingerClose closes a connection whose last response is written. Closing a socket with
// unread input makes the kernel send a reset, which can destroy the response before the client
// reads it (a 413 to a client still uploading is the usual victim). So, like Go's net/http,
// shut our side first, discard what still arrives, and close at EOF or after lingerTime.
func (l *Loop) lingerClose(c *Conn) {
	if c.readEOF || c.lingering {
		l.closeConn(c, abi.CloseHost)
		return
	}
	c.lingering = true
	c.since = l.clock()
	if c.in != nil {
		l.putBuf(c.in)
		c.in = nil
	}
	if unix.Shutdown(c.fd, unix.SHUT_WR) != nil {
		l.closeConn(c, abi.CloseHost)
		return
	}
	l.readConn(c)
}

// closeConn closes at once. A request still open on it is reported to the guest after the
// current callback (on_close), never from inside a host function.
func (l *Loop) closeConn(c *Conn, reason int32) {
	if c.closed {
		return
	}
	c.closed = true
	unix.Close(c.fd)
	l.conns[c.fd] = nil
	l.nconns--
	if l.cfg.MaxConns > 0 {
		l.listeners.each(func(_ abi.Handle, ln *listener) {
			if ln.full {
				ln.full = false
				l.pendingAccept = append(l.pendingAccept, ln)
			}
		})
	}
	if ex := c.ex; ex != nil {
		c.ex = nil
		l.abandon(ex, reason)
	}
	if w := c.ws; w != nil {
		w.conn = nil
		l.endWS(w, int32(ws.StatusAbnormalClosure), "") // unless it was told already
	}
	if c.in != nil {
		l.putBuf(c.in)
		c.in = nil
	}
	if c.out != nil {
		l.putBuf(c.out)
		c.out = nil
	}
}
